//! `fruits serve` as a process on loopback: every endpoint, every bad input,
//! the limits, and graceful shutdown.

use std::io::Cursor;
use std::time::Duration;

use crate::common::require;
use crate::common::server::Server;
use crate::common::{DISTINCT_CLASSES, test_photo, trained};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response, multipart};
use serde_json::Value;

fn client() -> Client {
    // reqwest is built without a TLS provider of its own; fruits uses ring.
    fruits_location::init_tls();
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn post(server: &Server, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Response {
    let mut req = client().post(server.at(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().expect("request")
}

/// Status and JSON body; asserts the body is JSON.
/// POSTs `bytes` to `/v1/identify` as a form's `file` field, as the upload page does.
fn post_file(server: &Server, name: &str, bytes: Vec<u8>) -> Response {
    let part = multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str("image/jpeg")
        .expect("mime");
    client()
        .post(server.at("/v1/identify"))
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .expect("multipart")
}

/// The `/metrics` page.
fn metrics(server: &Server) -> String {
    client()
        .get(server.at("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("text")
}

/// Waits (up to 30 s) until `/metrics` shows an identification in flight or answered.
fn wait_for_a_request(server: &Server) {
    let taken = |page: &str| {
        page.lines().any(|l| {
            (l.starts_with("fruits_in_flight ") || l.starts_with("fruits_requests_total{"))
                && l.rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<f64>().ok())
                    .is_some_and(|n| n >= 1.0)
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !taken(&metrics(server)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no request reached the server in 30 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn answer(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().expect("body");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"));
    (status, json)
}

fn assert_error(r: Response, status: StatusCode, code: &str, says: &str) {
    let (got, body) = answer(r);
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(says),
        "{message:?} should mention {says:?}"
    );
}

fn png_bomb() -> Vec<u8> {
    let mut c = Cursor::new(Vec::new());
    image::DynamicImage::from(image::RgbImage::new(1, 1))
        .write_to(&mut c, image::ImageFormat::Png)
        .expect("png");
    let mut bomb = c.into_inner();
    bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    bomb
}

#[test]
fn endpoints_answer_and_bad_inputs_get_clear_json_errors() {
    require!(Shared);
    let t = trained();
    let server = Server::start(&t.classifier, &["--max-body-mib", "1"]);
    let kiwi = std::fs::read(test_photo("Kiwi 1")).expect("kiwi");

    // The SageMaker health check and the upload page.
    let (status, body) = answer(client().get(server.at("/ping")).send().expect("ping"));
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("healthy"))
    );
    let page = client().get(server.at("/")).send().expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html")
    );
    let html = page.text().expect("html");
    assert!(
        html.contains("id=\"photo\"") && html.contains("viewport"),
        "{html}"
    );

    // Raw body, each class.
    for class in DISTINCT_CLASSES {
        let photo = std::fs::read(test_photo(class)).expect("photo");
        let (status, body) = answer(post(&server, "/v1/identify", Some("image/jpeg"), photo));
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["top"][0]["class"], class, "{body}");
        assert_eq!(
            body["top"].as_array().expect("top").len(),
            4,
            "5 asked, 4 classes"
        );
        assert!(body["top"][0]["info"]["botanical"].is_string(), "{body}");
        assert_eq!(
            (body["width"].as_u64(), body["height"].as_u64()),
            (Some(100), Some(100))
        );
    }
    // ?top=, octet-stream, SageMaker's /invocations with application/x-image.
    let (status, body) = answer(post(
        &server,
        "/v1/identify?top=2",
        Some("application/octet-stream"),
        kiwi.clone(),
    ));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["top"].as_array().expect("top").len(), 2);
    let (status, body) = answer(post(
        &server,
        "/invocations",
        Some("application/x-image"),
        kiwi.clone(),
    ));
    assert_eq!(
        (status, body["top"][0]["class"].as_str()),
        (StatusCode::OK, Some("Kiwi 1"))
    );
    // Multipart, as the browser's form would send it.
    let r = post_file(&server, "kiwi.jpg", kiwi.clone());
    let (status, body) = answer(r);
    assert_eq!(
        (status, body["top"][0]["class"].as_str()),
        (StatusCode::OK, Some("Kiwi 1"))
    );

    // Every bad input: a clear JSON error, and the service keeps serving.
    assert_error(
        post(&server, "/v1/identify", Some("image/jpeg"), Vec::new()),
        StatusCode::BAD_REQUEST,
        "empty_body",
        "empty",
    );
    assert_error(
        post(
            &server,
            "/v1/identify",
            Some("image/jpeg"),
            b"this is not a picture".to_vec(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "not_an_image",
        "not a supported image",
    );
    assert_error(
        post(
            &server,
            "/v1/identify",
            Some("image/jpeg"),
            kiwi[..kiwi.len() / 2].to_vec(),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "truncated_image",
        "truncated",
    );
    assert_error(
        post(&server, "/v1/identify", Some("image/png"), png_bomb()),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_pixels",
        "60000x60000",
    );
    assert_error(
        post(&server, "/v1/identify", Some("text/plain"), kiwi.clone()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
        "Content-Type text/plain",
    );
    assert_error(
        post(&server, "/v1/identify", None, kiwi.clone()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
        "no Content-Type",
    );
    assert_error(
        post(
            &server,
            "/v1/identify",
            Some("application/json"),
            b"{\"url\": \"x\"}".to_vec(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
        "application/json",
    );
    let big = vec![0xFFu8; 1024 * 1024 + 10];
    assert_error(
        post(&server, "/v1/identify", Some("image/jpeg"), big.clone()),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "1.0 MiB",
    );
    let r = post_file(&server, "big.jpg", big);
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "");
    let form = multipart::Form::new().text("comment", "no file here");
    let r = client()
        .post(server.at("/v1/identify"))
        .multipart(form)
        .send()
        .expect("form");
    assert_error(r, StatusCode::BAD_REQUEST, "no_file", "named `file`");
    let r = post(
        &server,
        "/v1/identify",
        Some("multipart/form-data; boundary=x"),
        b"garbage".to_vec(),
    );
    let (status, body) = answer(r);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let r = client().get(server.at("/v2/identify")).send().expect("404");
    assert_error(r, StatusCode::NOT_FOUND, "not_found", "POST /v1/identify");

    let (status, body) = answer(post(&server, "/v1/identify", Some("image/jpeg"), kiwi));
    assert_eq!(
        (status, body["top"][0]["class"].as_str()),
        (StatusCode::OK, Some("Kiwi 1"))
    );

    // Metrics saw all of it.
    let metrics = metrics(&server);
    for needle in [
        "fruits_requests_total{endpoint=\"identify\",status=\"200\"}",
        "fruits_requests_total{endpoint=\"identify\",status=\"413\"}",
        "fruits_requests_total{endpoint=\"invocations\",status=\"200\"}",
        "fruits_request_duration_seconds_bucket",
        "fruits_batch_size_count",
        "fruits_in_flight 0",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("every request in flight was answered"),
        "{log}"
    );
}

/// With --errors-as-records (what a Batch Transform job's container is told),
/// a bad photo on /invocations is a 200 error record; /v1/identify and busy
/// answers keep their statuses.
#[test]
fn batch_transform_gets_error_records_for_bad_photos() {
    require!(Shared);
    let t = trained();
    let server = Server::start(&t.classifier, &["--errors-as-records"]);
    let r = post(
        &server,
        "/invocations",
        Some("application/x-image"),
        b"this is not a picture".to_vec(),
    );
    assert_eq!(
        r.headers()
            .get("x-fruits-error-status")
            .and_then(|v| v.to_str().ok()),
        Some("415")
    );
    let (status, body) = answer(r);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error"]["code"], "not_an_image", "{body}");
    let kiwi = std::fs::read(test_photo("Kiwi 1")).expect("kiwi");
    let (status, body) = answer(post(
        &server,
        "/invocations",
        Some("application/x-image"),
        kiwi,
    ));
    assert_eq!(
        (status, body["top"][0]["class"].as_str()),
        (StatusCode::OK, Some("Kiwi 1"))
    );
    assert_error(
        post(
            &server,
            "/v1/identify",
            Some("image/jpeg"),
            b"this is not a picture".to_vec(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "not_an_image",
        "not a supported image",
    );
}

/// The limits an asynchronous SageMaker endpoint raises through the model's
/// environment (deploy.py): the body and pixel limits read it.
#[test]
fn the_body_and_pixel_limits_read_the_environment() {
    require!(Shared);
    let t = trained();
    let kiwi = std::fs::read(test_photo("Kiwi 1")).expect("kiwi");
    // 100 x 100 is 0.01 megapixels.
    let server = Server::start_with_env(
        &t.classifier,
        &[],
        &[
            ("FRUITS_MAX_MEGAPIXELS", "0.005"),
            ("FRUITS_MAX_BODY_MIB", "1"),
        ],
    );
    assert_error(
        post(&server, "/invocations", Some("image/jpeg"), kiwi.clone()),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_pixels",
        "100x100",
    );
    assert_error(
        post(
            &server,
            "/invocations",
            Some("image/jpeg"),
            vec![0u8; 1024 * 1024 + 1],
        ),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "",
    );
}

#[test]
fn limits_turn_requests_away_and_shutdown_finishes_the_ones_in_flight() {
    require!(Shared);
    let t = trained();
    let kiwi = std::fs::read(test_photo("Kiwi 1")).expect("kiwi");

    // A timeout shorter than any inference: 503 with the reason.
    let server = Server::start(&t.classifier, &["--timeout", "0.001"]);
    assert_error(
        post(&server, "/v1/identify", Some("image/jpeg"), kiwi.clone()),
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "within 0.0 s",
    );
    drop(server);

    // One request at a time: a burst gets some 503 busy (with Retry-After), the rest answers.
    let server = Server::start(&t.classifier, &["--max-in-flight", "1", "--max-batch", "1"]);
    let barrier = std::sync::Barrier::new(12);
    let results: Vec<(StatusCode, Option<String>, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let r = post(&server, "/v1/identify", Some("image/jpeg"), kiwi.clone());
                    let retry = r
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap_or("").to_string());
                    let (status, body) = answer(r);
                    (status, retry, body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let busy = results
        .iter()
        .filter(|r| r.0 == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let ok = results.iter().filter(|r| r.0 == StatusCode::OK).count();
    assert!(busy >= 1 && ok >= 1 && busy + ok == 12, "{results:?}");
    for (status, retry, body) in &results {
        if *status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["error"]["code"], "busy");
            assert_eq!(retry.as_deref(), Some("1"));
        }
    }
    drop(server);

    // Graceful shutdown: requests in flight when SIGTERM arrives are answered.
    let server = Server::start(&t.classifier, &["--max-batch", "1"]);
    let url = server.at("/v1/identify");
    let started = std::sync::Barrier::new(9);
    let (statuses, (status, log)) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    started.wait();
                    client()
                        .post(&url)
                        .header("content-type", "image/jpeg")
                        .body(kiwi.clone())
                        .send()
                        .map(|r| r.status())
                })
            })
            .collect();
        started.wait();
        // SIGTERM once the server has taken a request (in flight or answered):
        // a fixed sleep lost the race on a loaded machine, every client still
        // connecting when the listener closed.
        wait_for_a_request(&server);
        let end = server.terminate();
        let statuses: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        (statuses, end)
    });
    assert!(status.success(), "{log}");
    assert!(
        log.contains("shutting down") && log.contains("every request in flight was answered"),
        "{log}"
    );
    // Every request the server accepted got its answer; none was cut off.
    let answered: Vec<_> = statuses.iter().filter_map(|s| s.as_ref().ok()).collect();
    assert!(!answered.is_empty(), "{statuses:?}");
    assert!(
        answered.iter().all(|s| **s == StatusCode::OK),
        "{statuses:?}"
    );
}

/// Reads until the server closes the connection (or `limit` passes): true
/// when it closed.
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

fn connect(server: &Server) -> std::net::TcpStream {
    let addr = server.url.trim_start_matches("http://").to_string();
    std::net::TcpStream::connect(addr).expect("connect")
}

#[test]
fn abusive_clients_cannot_hold_the_service() {
    require!(Shared);
    use std::io::Write;
    let t = trained();
    let kiwi = std::fs::read(test_photo("Kiwi 1")).expect("kiwi");
    let server = Server::start(
        &t.classifier,
        &[
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
            "--max-in-flight",
            "1",
            "--shutdown-grace",
            "2",
            "--max-connections",
            "4",
        ],
    );

    // Half a header: the connection is closed after the header timeout.
    let mut half = connect(&server);
    half.write_all(b"POST /v1/identify HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .expect("write");
    assert!(closed_within(&mut half, Duration::from_secs(5)));

    // As many half-open connections as --max-connections: new clients wait
    // (the process keeps its file descriptors) and are served once the header
    // timeout frees the slots.
    let mut stuck: Vec<_> = (0..4)
        .map(|_| {
            let mut c = connect(&server);
            c.write_all(b"GET /ping HTTP/1.1\r\nHo").expect("write");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let waited = std::time::Instant::now();
    let ping = client().get(server.at("/ping")).send().expect("ping");
    assert_eq!(ping.status(), StatusCode::OK);
    let waited = waited.elapsed();
    assert!(
        waited > Duration::from_millis(400) && waited < Duration::from_secs(5),
        "served after {waited:?}: the limit held it until a slot was freed"
    );
    for c in &mut stuck {
        assert!(closed_within(c, Duration::from_secs(5)));
    }

    // A slow upload holds a connection, not one of the --max-in-flight slots:
    // others are answered meanwhile; the slow one gets 408 after the body timeout.
    let mut slow = connect(&server);
    slow.write_all(
        format!(
            "POST /v1/identify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            kiwi.len()
        )
        .as_bytes(),
    )
    .expect("head");
    slow.write_all(&kiwi[..10]).expect("a few bytes");
    let (status, body) = answer(post(
        &server,
        "/v1/identify",
        Some("image/jpeg"),
        kiwi.clone(),
    ));
    assert_eq!(status, StatusCode::OK, "{body}");
    {
        use std::io::Read;
        slow.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut text = String::new();
        let _ = slow.read_to_string(&mut text);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("body_timeout"), "{text}");
    }

    // Clients that hang up mid-request leave no request counted in flight.
    for _ in 0..8 {
        let mut gone = connect(&server);
        gone.write_all(
            format!(
                "POST /v1/identify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                kiwi.len()
            )
            .as_bytes(),
        )
        .expect("head");
        gone.write_all(&kiwi).expect("body");
        drop(gone);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = metrics(&server);
    assert!(
        metrics.lines().any(|l| l == "fruits_in_flight 0"),
        "{metrics}"
    );

    // Every error is the documented JSON: bad query strings, wrong methods.
    for query in [
        "?top=abc", "?top=-1", "?top=", "?top=0", "?top=51", "?nope=1",
    ] {
        let r = post(
            &server,
            &format!("/v1/identify{query}"),
            Some("image/jpeg"),
            kiwi.clone(),
        );
        assert_error(r, StatusCode::BAD_REQUEST, "bad_query", "top");
    }
    let r = client().get(server.at("/v1/identify")).send().expect("get");
    assert_eq!(
        r.headers().get("allow").map(|v| v.to_str().unwrap_or("")),
        Some("POST")
    );
    assert_error(
        r,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "POST",
    );

    // Hardening headers on the page and the API.
    let page = client().get(server.at("/")).send().expect("page");
    let h = page.headers();
    assert_eq!(
        h.get("x-content-type-options").map(|v| v.as_bytes()),
        Some(&b"nosniff"[..])
    );
    assert_eq!(
        h.get("x-frame-options").map(|v| v.as_bytes()),
        Some(&b"DENY"[..])
    );
    let csp = h
        .get("content-security-policy")
        .expect("CSP")
        .to_str()
        .expect("ascii");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let api = post(&server, "/v1/identify", Some("image/jpeg"), kiwi.clone());
    assert_eq!(
        api.headers()
            .get("x-content-type-options")
            .map(|v| v.as_bytes()),
        Some(&b"nosniff"[..])
    );
    assert!(
        api.headers().get("access-control-allow-origin").is_none(),
        "no CORS unless asked"
    );

    // Shutdown is bounded: a client holding a connection open does not keep
    // the service up beyond the grace period.
    let mut holder = connect(&server);
    holder
        .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("ping");
    let stopping = std::time::Instant::now();
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(stopping.elapsed() < Duration::from_secs(10), "{log}");
    drop(holder);
}

#[test]
fn cors_answers_only_the_configured_origins() {
    require!(Shared);
    let t = trained();
    let server = Server::start(
        &t.classifier,
        &["--cors-origin", "https://app.fruits.example"],
    );
    let preflight = |origin: &str| {
        client()
            .request(reqwest::Method::OPTIONS, server.at("/v1/identify"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .expect("preflight")
    };
    let allowed = preflight("https://app.fruits.example");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"https://app.fruits.example"[..])
    );
    let other = preflight("https://evil.example");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// Sends `request` (raw bytes) on a new connection and reads the whole answer
/// (the server closes the connection after a protocol error).
fn raw_exchange(server: &Server, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut c = connect(server);
    // The server may answer and close before every byte is sent.
    let _ = c.write_all(request);
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn hostile_photos_and_protocol_errors_get_json_and_the_service_stays_up() {
    require!(Shared);
    let t = trained();
    let server = Server::start(&t.classifier, &["--cors-origin", "*"]);
    // A 375-byte PNG of 100000x1 pixels: it once aborted the whole service.
    let mut strip = Cursor::new(Vec::new());
    image::DynamicImage::from(image::RgbImage::new(100_000, 1))
        .write_to(&mut strip, image::ImageFormat::Png)
        .expect("png");
    assert_error(
        post(
            &server,
            "/v1/identify",
            Some("image/png"),
            strip.into_inner(),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_aspect_ratio",
        "100000x1",
    );
    let (status, _) = answer(client().get(server.at("/ping")).send().expect("ping"));
    assert_eq!(status, StatusCode::OK, "the service is still up");

    // `--cors-origin '*'` (which once panicked at start) allows any origin.
    let preflight = client()
        .request(reqwest::Method::OPTIONS, server.at("/v1/identify"))
        .header("origin", "https://anywhere.example")
        .header("access-control-request-method", "POST")
        .send()
        .expect("preflight");
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"*"[..])
    );

    // The wrong method on /metrics names the method it takes.
    let r = client().post(server.at("/metrics")).send().expect("post");
    assert_eq!(
        r.headers().get("allow").map(|v| v.as_bytes()),
        Some(&b"GET"[..])
    );
    assert_error(
        r,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "GET",
    );

    // Requests hyper cannot parse: the documented JSON and headers, not an
    // empty body.
    let many_headers: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_url = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(1 << 20));
    for (request, status, code) in [
        ("GARBAGE\r\n\r\n".to_string(), 400, "bad_request"),
        ("GET /ping\r\n\r\n".to_string(), 400, "bad_request"),
        (
            "POST /v1/identify HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_string(),
            400,
            "bad_request",
        ),
        (
            "POST /v1/identify HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                .to_string(),
            400,
            "bad_request",
        ),
        ("GET /ping HTTP/1.1\r\nHo\u{1}st: x\r\n\r\n".to_string(), 400, "bad_request"),
        (
            format!("GET /ping HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
        (long_url, 431, "headers_too_large"),
    ] {
        let answer = raw_exchange(&server, request.as_bytes());
        let shown = &request[..request.len().min(60)];
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{shown:?}: {answer}"
        );
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("x-content-type-options: nosniff"), "{answer}");
        assert!(lower.contains("content-type: application/json"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(json["error"]["code"], code, "{shown:?}");
    }
    let (status, _) = answer(client().get(server.at("/ping")).send().expect("ping"));
    assert_eq!(status, StatusCode::OK, "the service is still up");
}

#[test]
fn uploads_share_one_memory_budget_whatever_the_connections() {
    require!(Shared);
    use std::io::Write;
    let t = trained();
    let server = Server::start(
        &t.classifier,
        &["--max-body-mib", "8", "--max-buffered-mib", "10"],
    );
    // One client sends most of a 6 MiB body and stops: it holds 6 MiB of
    // the 10 MiB budget.
    let size = 6 << 20;
    let mut holder = connect(&server);
    holder
        .write_all(
            format!(
                "POST /v1/identify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {size}\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("head");
    holder
        .write_all(&vec![0u8; size - 1])
        .expect("most of the body");
    std::thread::sleep(Duration::from_millis(500));
    // A second 6 MiB upload would go over the budget: 503 busy, at once.
    assert_error(
        post(&server, "/v1/identify", Some("image/jpeg"), vec![0u8; size]),
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "as many photos as it holds",
    );
    // Small photos still fit beside it, and once the first body is done the
    // budget is back.
    let kiwi = std::fs::read(test_photo("Kiwi 1")).expect("kiwi");
    let (status, _) = answer(post(&server, "/v1/identify", Some("image/jpeg"), kiwi));
    assert_eq!(status, StatusCode::OK);
    holder.write_all(&[0]).expect("last byte");
    holder
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let n = std::io::Read::read(&mut holder, &mut buf).expect("the first body's answer");
    let first = String::from_utf8_lossy(&buf[..n]);
    assert!(
        first.starts_with("HTTP/1.1 415"),
        "zeros are not a photo: {first}"
    );
    drop(holder);
    let r = post(&server, "/v1/identify", Some("image/jpeg"), vec![0u8; size]);
    assert_ne!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(metrics(&server).contains("reason=\"buffered_bytes\""));
}
