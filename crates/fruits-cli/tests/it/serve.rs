//! `fruits serve` as a process on loopback: every endpoint, every bad input,
//! the limits, and graceful shutdown.

use std::io::Cursor;
use std::time::Duration;

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
    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(kiwi.clone())
            .file_name("kiwi.jpg")
            .mime_str("image/jpeg")
            .expect("mime"),
    );
    let r = client()
        .post(server.at("/v1/identify"))
        .multipart(form)
        .send()
        .expect("multipart");
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
    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(big)
            .file_name("big.jpg")
            .mime_str("image/jpeg")
            .expect("mime"),
    );
    let r = client()
        .post(server.at("/v1/identify"))
        .multipart(form)
        .send()
        .expect("big form");
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
    let metrics = client()
        .get(server.at("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
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

#[test]
fn limits_turn_requests_away_and_shutdown_finishes_the_ones_in_flight() {
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
        std::thread::sleep(Duration::from_millis(30));
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
