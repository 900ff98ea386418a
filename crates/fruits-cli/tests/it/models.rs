//! `fruits models`: fetching the pinned model files from a web server into the
//! user's cache, refusing a tampered download, and a bundle that then answers
//! from any folder with no flag.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::require;
use crate::common::{copy_dir, describe, models_dir, test_photo, trained};

const INT8: &str = "mobilenetv2-12-int8.onnx";

/// A web server on loopback answering `GET /NAME` with `files`' bytes (404
/// otherwise), until the test process ends. Returns its base URL.
fn serve_files(files: Vec<(String, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // Skip the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let body = files
                .iter()
                .find(|(name, _)| path == format!("/{name}"))
                .map(|(_, bytes)| bytes.as_slice());
            let _ = match body {
                Some(bytes) => write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                )
                .and_then(|()| stream.write_all(bytes)),
                None => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    url
}

/// `fruits ARGS` from `/` with the user's cache in `cache` and no models
/// folder named: what a user who just installed the binary has.
fn fruits_in(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fruits"))
        .current_dir("/")
        .env_remove("FRUITS_MODELS_DIR")
        .env_remove("FRUITS_MODEL")
        .env_remove("FRUITS_MODELS_URL")
        .env("XDG_CACHE_HOME", cache)
        .args(args)
        .output()
        .expect("spawn fruits")
}

/// A copy of the trained bundle whose recorded model path no longer exists,
/// so only a search by sha256 finds its image model.
fn bundle_with_a_moved_model(dest: &Path) {
    copy_dir(&trained().classifier, dest);
    let file = dest.join("classifier.json");
    let text = std::fs::read_to_string(&file).expect("read classifier.json");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json["features"]["model_source"] = format!("/nonexistent/{INT8}").into();
    std::fs::write(&file, serde_json::to_string_pretty(&json).expect("json")).expect("write");
}

/// True when `../shared/models` lies beside the binary or one of its folders:
/// then every bundle finds the shared models without any fetch.
fn binary_sits_beside_the_shared_models() -> bool {
    Path::new(env!("CARGO_BIN_EXE_fruits"))
        .ancestors()
        .any(|dir| dir.join("../shared/models").is_dir())
}

#[test]
fn fetched_models_are_verified_and_found_from_any_folder() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let cache = tmp.path().join("cache");
    let bundle = tmp.path().join("bundle");
    bundle_with_a_moved_model(&bundle);
    let photo = std::fs::canonicalize(test_photo("Kiwi 1")).expect("photo");
    let identify = [
        "identify",
        photo.to_str().expect("utf8"),
        "--model",
        bundle.to_str().expect("utf8"),
    ];

    if !binary_sits_beside_the_shared_models() {
        let o = fruits_in(&cache, &identify);
        assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("sha256"),
            "names the model it looks for: {}",
            describe(&o)
        );
    }

    let bytes = std::fs::read(models_dir().join(INT8)).expect("int8 model");
    let url = serve_files(vec![(INT8.into(), bytes)]);
    let o = fruits_in(&cache, &["models", "fetch", "int8", "--from", &url]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("sha256 verified"));
    let cached = cache.join("fruits/models").join(INT8);
    assert!(cached.is_file(), "{}", describe(&o));

    // A second fetch finds it there and downloads nothing.
    let o = fruits_in(&cache, &["models", "fetch", "int8", "--from", &url]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("already there"));

    // From `/`, no flag: the bundle finds its model in the cache by sha256.
    let o = fruits_in(&cache, &identify);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Kiwi 1"),
        "{}",
        describe(&o)
    );

    let o = fruits_in(&cache, &["models", "list"]);
    assert!(o.status.success(), "{}", describe(&o));
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(listing.contains(&cached.display().to_string()), "{listing}");
    assert!(listing.contains("Apache-2.0"), "{listing}");
    let o = fruits_in(&cache, &["models", "verify"]);
    assert!(o.status.success(), "{}", describe(&o));
}

#[test]
fn a_tampered_download_is_refused_and_leaves_nothing() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let cache = tmp.path().join("cache");
    let mut bytes = std::fs::read(models_dir().join(INT8)).expect("int8 model");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let url = serve_files(vec![(INT8.into(), bytes.clone())]);
    let o = fruits_in(&cache, &["models", "fetch", "int8", "--from", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("sha256") && stderr.contains("refused"),
        "{stderr}"
    );
    let models = cache.join("fruits/models");
    let left: Vec<_> = std::fs::read_dir(&models)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing left behind: {left:?}");

    // A missing file on the server, no source at all, and a copy changed in
    // place (reported by verify): each a clear failure.
    std::fs::create_dir_all(&models).expect("mkdir");
    std::fs::write(models.join("mobilenetv2-12-dequant-fp32.onnx"), &bytes).expect("write");
    let url_fp32: &str = &url;
    for (args, says) in [
        (
            &["models", "fetch", "fp32", "--from", url_fp32][..],
            "HTTP 404",
        ),
        (&["models", "fetch"][..], "--from"),
        (&["models", "verify"][..], "DIFFERENT"),
    ] {
        let o = fruits_in(&cache, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", describe(&o));
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains(says), "{args:?}: {}", describe(&o));
    }
}
