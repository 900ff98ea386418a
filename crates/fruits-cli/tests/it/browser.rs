//! A real browser (Debian's chromium, headless, driven through chromedriver)
//! opens the upload page, uploads sample photos and reads the answer.
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them);
//! FRUITS_CHROMIUM and FRUITS_CHROMEDRIVER override their paths.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::server::Server;
use crate::common::{test_photo, trained};
use fantoccini::{ClientBuilder, Locator};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn path_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// Starts chromedriver on a free loopback port and waits until it answers.
fn start_driver() -> (Driver, String) {
    let exe = path_from_env("FRUITS_CHROMEDRIVER", "/usr/bin/chromedriver");
    assert!(
        exe.is_file(),
        "{} not found: install Debian's chromium and chromium-driver (.ci/run does)",
        exe.display()
    );
    let port = free_port();
    let child = Command::new(&exe)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (driver, format!("http://127.0.0.1:{port}"))
}

#[test]
fn the_upload_page_identifies_a_photo_in_a_real_browser() {
    let t = trained();
    let server = Server::start(&t.classifier, &[]);
    let (_driver, webdriver) = start_driver();
    let chromium = path_from_env("FRUITS_CHROMIUM", "/usr/bin/chromium");
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-upload.png");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-extensions",
                    "--no-first-run", "--window-size=412,915",
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .expect("a chromium session");
        browser.goto(&server.at("/")).await.expect("open the page");
        assert_eq!(
            browser.title().await.expect("title"),
            "Fruits! - what fruit is this?"
        );

        // Upload a kiwi the way a phone user picks a photo.
        let input = browser
            .find(Locator::Id("photo"))
            .await
            .expect("file input");
        let kiwi = test_photo("Kiwi 1").canonicalize().expect("canonical path");
        input
            .send_keys(kiwi.to_str().expect("utf-8"))
            .await
            .expect("choose the photo");
        browser
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css("#result:not([hidden])"))
            .await
            .expect("an answer appears");
        let answer = browser
            .find(Locator::Id("answer"))
            .await
            .expect("answer")
            .text()
            .await
            .expect("text");
        assert!(answer.starts_with("Kiwifruit ("), "{answer:?}");
        let names = browser
            .find(Locator::Id("names"))
            .await
            .expect("names")
            .text()
            .await
            .expect("text");
        assert!(names.contains("Actinidia deliciosa"), "{names:?}");
        let png = browser.screenshot().await.expect("screenshot");
        std::fs::write(&screenshot, png).expect("save screenshot");

        // A file that is not a photo: the page says why, in words.
        let junk = t
            .run
            .canonicalize()
            .expect("canonical")
            .join("not-a-photo.jpg");
        std::fs::write(&junk, b"hello").expect("write");
        let input = browser
            .find(Locator::Id("photo"))
            .await
            .expect("file input");
        input
            .send_keys(junk.to_str().expect("utf-8"))
            .await
            .expect("choose the file");
        browser
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("#status.error"))
            .await
            .expect("an error appears");
        let status = browser
            .find(Locator::Id("status"))
            .await
            .expect("status")
            .text()
            .await
            .expect("text");
        assert!(status.contains("not a supported image"), "{status:?}");
        browser.close().await.expect("close");
    });
    eprintln!("screenshot: {}", screenshot.display());
}
