//! A real browser (Debian's chromium, headless, driven through chromedriver)
//! opens the upload page, uploads sample photos and reads the answer: a
//! confident answer in English, the same in French after the switch, a
//! "not sure" answer with the guesses, and an error. Each state is saved as a
//! screenshot in the test target's tmp folder (`browser-*.png`).
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them);
//! FRUITS_CHROMIUM and FRUITS_CHROMEDRIVER override their paths.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::require;
use crate::common::server::Server;
use crate::common::{test_photo, trained};
use fantoccini::{Client, ClientBuilder, Locator};

/// The text of the element with id `id`.
async fn text_of(browser: &Client, id: &str) -> String {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("#{id} text: {e}"))
}

/// Saves a screenshot of the page as `browser-{name}.png`.
async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("browser-{name}.png"));
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(&path, png).expect("save screenshot");
    path
}

/// Chooses `file` in the page's photo input, as a phone user picks a photo.
async fn choose(browser: &Client, file: &std::path::Path) {
    let input = browser
        .find(Locator::Id("photo"))
        .await
        .expect("file input");
    input
        .send_keys(file.to_str().expect("utf-8"))
        .await
        .expect("choose the file");
}

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
    require!(Shared, Browser);
    let t = trained();
    let server = Server::start(&t.classifier, &[]);
    // The same classifier with a threshold no answer reaches: always "not sure".
    let unsure = t.run.join("classifier-unsure");
    let _ = std::fs::remove_dir_all(&unsure);
    crate::common::copy_dir(&t.classifier, &unsure);
    let file = unsure.join("classifier.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    json["abstain_below"] = serde_json::json!(1.5);
    std::fs::write(&file, json.to_string()).expect("write");
    let unsure_server = Server::start(&unsure, &[]);
    let (_driver, webdriver) = start_driver();
    let chromium = path_from_env("FRUITS_CHROMIUM", "/usr/bin/chromium");
    let mut shots = Vec::new();

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
                    "--no-first-run", "--window-size=412,915", "--lang=en-GB",
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
        let kiwi = test_photo("Kiwi 1").canonicalize().expect("canonical path");
        choose(&browser, &kiwi).await;
        browser
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css("#result:not([hidden])"))
            .await
            .expect("an answer appears");
        let answer = text_of(&browser, "answer").await;
        assert!(answer.starts_with("Kiwifruit ("), "{answer:?}");
        let names = text_of(&browser, "names").await;
        assert!(names.contains("Actinidia deliciosa"), "{names:?}");
        assert!(
            browser
                .find(Locator::Css("#preview[src^='blob:']"))
                .await
                .is_ok(),
            "the photo's preview is shown"
        );
        shots.push(screenshot(&browser, "answer-en").await);

        // The language switch: names and words in French, the same answer.
        browser
            .find(Locator::Id("lang"))
            .await
            .expect("switch")
            .click()
            .await
            .expect("click");
        assert_eq!(text_of(&browser, "title").await, "Quel est ce fruit ?");
        let answer = text_of(&browser, "answer").await;
        assert!(answer.starts_with("Kiwi ("), "{answer:?}");
        assert!(text_of(&browser, "names").await.starts_with("Kiwifruit"));
        shots.push(screenshot(&browser, "answer-fr").await);
        browser
            .find(Locator::Id("lang"))
            .await
            .expect("switch")
            .click()
            .await
            .expect("click");
        assert_eq!(text_of(&browser, "title").await, "What fruit is this?");

        // A file that is not a photo: the page says why, in words.
        let junk = t
            .run
            .canonicalize()
            .expect("canonical")
            .join("not-a-photo.jpg");
        std::fs::write(&junk, b"hello").expect("write");
        choose(&browser, &junk).await;
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
        shots.push(screenshot(&browser, "error").await);

        // Below the classifier's threshold: "not sure", the guesses, no name as the answer.
        browser
            .goto(&unsure_server.at("/"))
            .await
            .expect("open the page");
        choose(&browser, &kiwi).await;
        browser
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css("#result.unsure:not([hidden])"))
            .await
            .expect("a not-sure answer appears");
        assert_eq!(text_of(&browser, "answer").await, "Not sure");
        assert_eq!(text_of(&browser, "others-title").await, "Best guesses:");
        let guesses = text_of(&browser, "others").await;
        assert!(guesses.starts_with("Kiwifruit"), "{guesses:?}");
        // Every class of the fixture's classifier, best first, none as "the answer".
        let classes = crate::common::DISTINCT_CLASSES.len().min(5);
        assert_eq!(guesses.lines().count(), classes, "{guesses:?}");
        shots.push(screenshot(&browser, "not-sure").await);
        browser.close().await.expect("close");
    });
    for shot in shots {
        eprintln!("screenshot: {}", shot.display());
    }
}
