//! The model files fruits knows, pinned by size and sha256, and where a user's
//! copies of them are: listing, verifying and fetching them.
//!
//! A bundle records the sha256 of the image model it was trained with, so a
//! model file is trusted by its hash, never by its name: `fetch` refuses a
//! download whose hash differs from the pinned one, and `verify` reports any
//! file of a known name whose bytes changed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::paths::{self, Precision};

/// One model file fruits knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// File name (what bundles and `--precision` look for).
    pub name: &'static str,
    /// Which `--precision` it is.
    pub precision: Precision,
    /// Size in bytes.
    pub bytes: u64,
    /// sha256 of the file, lowercase hex.
    pub sha256: &'static str,
    /// Where the weights come from (the public original).
    pub source: &'static str,
    /// What was changed from the original.
    pub derivation: &'static str,
    /// Licence of the weights.
    pub licence: &'static str,
}

/// The ONNX Model Zoo page of the MobileNetV2 models.
const ZOO: &str =
    "https://github.com/onnx/models/tree/main/validated/vision/classification/mobilenet";

/// Every model file fruits knows, pinned: the only table of them.
pub const KNOWN_MODELS: [KnownModel; 2] = [
    KnownModel {
        name: paths::INT8_MODEL,
        precision: Precision::Int8,
        bytes: 3_655_219,
        sha256: "3faa2bbd550cb191dd54e62eccb905bed80eca1c11c7309980edd2f388dab86f",
        source: ZOO,
        derivation: "the zoo's mobilenetv2-12-int8.onnx (sha256 cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f) with a `features` output [N,1280] added",
        licence: "Apache-2.0",
    },
    KnownModel {
        name: paths::FP32_MODEL,
        precision: Precision::Fp32,
        bytes: 13_966_399,
        sha256: "1258977a06602d965ecf40793ac41ad5cef4fde2d56aa54e361c4709ee65c838",
        source: ZOO,
        derivation: "the zoo's int8 model dequantised (standard ONNX operators only), with the same `features` output",
        licence: "Apache-2.0",
    },
];

/// Environment variable naming where `fruits models fetch` downloads from: a
/// base URL (`https://...`, `http://...`) or a folder holding the files.
pub const MODELS_URL_ENV: &str = "FRUITS_MODELS_URL";

/// The known model called `name` (a file name, or a precision: `int8`, `fp32`).
pub fn find(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS
        .iter()
        .find(|m| m.name == name || m.precision.as_str() == name)
}

/// The known model with this sha256, if any.
pub fn by_sha256(sha256: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|m| m.sha256 == sha256)
}

/// What can go wrong fetching or checking a model file.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No known model has this name.
    #[error("no known model is called {name:?} (known: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The known names.
        known: String,
    },
    /// `fetch` was not told where to download from.
    #[error(
        "no download location: give --from URL (or set {MODELS_URL_ENV}) to a web server or folder holding the model files"
    )]
    NoSource,
    /// The location is neither an http(s) URL nor a folder.
    #[error("cannot fetch from {0:?}: give an http:// or https:// URL, or a folder")]
    BadSource(String),
    /// The server could not be reached.
    #[error("cannot download {url}: {detail}")]
    Unreachable {
        /// What was asked for.
        url: String,
        /// Why it failed.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("cannot download {url}: HTTP {status}")]
    Status {
        /// What was asked for.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The download is not the pinned size.
    #[error("{name}: the download has {got} bytes where the pinned file has {expected}; refused")]
    Size {
        /// The model file.
        name: String,
        /// Pinned size.
        expected: u64,
        /// Bytes received (at least).
        got: u64,
    },
    /// The download is not the pinned file.
    #[error("{name}: the download's sha256 is {got}, the pinned file's is {expected}; refused")]
    Checksum {
        /// The model file.
        name: String,
        /// Pinned hash.
        expected: String,
        /// Hash of the bytes received.
        got: String,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CatalogError + '_ {
    move |source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The known models called `names` (all of them when empty).
pub fn select(names: &[String]) -> Result<Vec<&'static KnownModel>, CatalogError> {
    if names.is_empty() {
        return Ok(KNOWN_MODELS.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            find(n).ok_or_else(|| CatalogError::Unknown {
                name: n.clone(),
                known: KNOWN_MODELS
                    .iter()
                    .map(|m| format!("{} ({})", m.name, m.precision))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

/// The state of one known model file in one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// No file of that name.
    Missing,
    /// The pinned bytes.
    Verified,
    /// A file of that name whose bytes are not the pinned ones.
    Mismatch {
        /// Its size.
        bytes: u64,
        /// Its sha256.
        sha256: String,
    },
    /// It could not be read.
    Unreadable(String),
}

/// Checks the file of `model`'s name in `dir` against its pin.
pub fn check(model: &KnownModel, dir: &Path) -> FileState {
    let path = dir.join(model.name);
    if !path.is_file() {
        return FileState::Missing;
    }
    match hash_file(&path) {
        Ok((bytes, sha256)) if bytes == model.bytes && sha256 == model.sha256 => {
            FileState::Verified
        }
        Ok((bytes, sha256)) => FileState::Mismatch { bytes, sha256 },
        Err(e) => FileState::Unreadable(e.to_string()),
    }
}

/// Size and sha256 of a file, read in blocks.
pub fn hash_file(path: &Path) -> Result<(u64, String), CatalogError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// The folder `fetch` downloads into: `FRUITS_MODELS_DIR` when set, else the
/// user's cache (`$XDG_CACHE_HOME/fruits/models`, else `~/.cache/fruits/models`),
/// which every command searches for a bundle's model.
pub fn fetch_dir() -> Option<PathBuf> {
    paths::models_dir_env().or_else(paths::cache_models_dir)
}

/// What `fetch` did with one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The file was already there with the pinned bytes: nothing downloaded.
    AlreadyThere(PathBuf),
    /// Downloaded and verified, now at this path.
    Downloaded(PathBuf),
}

/// Downloads `model` from `from` (a base URL, or a folder) into `dir`, checking
/// its size and sha256 against the pin before it takes its final name: the
/// bytes go to a hidden temporary file beside it, renamed only once verified,
/// so a failed, tampered or interrupted download never leaves a file under the
/// model's name. `progress(done, total)` is called as bytes arrive.
pub fn fetch(
    model: &KnownModel,
    from: &str,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Fetched, CatalogError> {
    let target = dir.join(model.name);
    if check(model, dir) == FileState::Verified {
        return Ok(Fetched::AlreadyThere(target));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let temp = dir.join(format!(".{}.fruits-tmp-{}", model.name, std::process::id()));
    let result = download(model, from, &temp, progress).and_then(|()| {
        std::fs::rename(&temp, &target).map_err(io(&target))?;
        Ok(Fetched::Downloaded(target))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Streams the file into `temp`, hashing as it goes; errors on any difference.
fn download(
    model: &KnownModel,
    from: &str,
    temp: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), CatalogError> {
    let (url, mut reader): (String, Box<dyn Read>) = open(model, from)?;
    let mut out = std::fs::File::create(temp).map_err(io(temp))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| CatalogError::Unreachable {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        if n == 0 {
            break;
        }
        got += n as u64;
        // The pin bounds the download: a server sending more is refused as
        // soon as it passes the pinned size, not after filling the disk.
        if got > model.bytes {
            return Err(CatalogError::Size {
                name: model.name.into(),
                expected: model.bytes,
                got,
            });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(temp))?;
        progress(got, model.bytes);
    }
    if got != model.bytes {
        return Err(CatalogError::Size {
            name: model.name.into(),
            expected: model.bytes,
            got,
        });
    }
    let sha256 = hex::encode(hasher.finalize());
    if sha256 != model.sha256 {
        return Err(CatalogError::Checksum {
            name: model.name.into(),
            expected: model.sha256.into(),
            got: sha256,
        });
    }
    out.sync_all().map_err(io(temp))?;
    Ok(())
}

/// Opens the model's bytes at `from`: `from/NAME` over HTTP(S), or in a folder.
fn open(model: &KnownModel, from: &str) -> Result<(String, Box<dyn Read>), CatalogError> {
    if from.starts_with("http://") || from.starts_with("https://") {
        let url = format!("{}/{}", from.trim_end_matches('/'), model.name);
        fruits_location::init_tls();
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| CatalogError::Unreachable {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let response = client
            .get(&url)
            .send()
            .map_err(|e| CatalogError::Unreachable {
                url: url.clone(),
                detail: fruits_location::error_chain(&e),
            })?;
        if !response.status().is_success() {
            return Err(CatalogError::Status {
                url,
                status: response.status().as_u16(),
            });
        }
        if let Some(len) = response.content_length()
            && len != model.bytes
        {
            return Err(CatalogError::Size {
                name: model.name.into(),
                expected: model.bytes,
                got: len,
            });
        }
        return Ok((url, Box::new(response)));
    }
    let folder = Path::new(from.strip_prefix("file://").unwrap_or(from));
    if folder.is_dir() {
        let path = folder.join(model.name);
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        return Ok((path.display().to_string(), Box::new(file)));
    }
    Err(CatalogError::BadSource(from.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_precisions_find_the_same_model() {
        assert_eq!(find("int8"), find(paths::INT8_MODEL));
        assert_eq!(find("fp32").map(|m| m.name), Some(paths::FP32_MODEL));
        assert!(find("resnet").is_none());
        assert!(matches!(
            select(&["resnet".into()]),
            Err(CatalogError::Unknown { .. })
        ));
        assert_eq!(select(&[]).expect("all").len(), KNOWN_MODELS.len());
    }

    #[test]
    fn a_folder_source_is_verified_and_a_tampered_copy_refused() {
        let src = tempfile::tempdir().expect("tmp");
        let dst = tempfile::tempdir().expect("tmp");
        // A made-up pin over a small file, so the test needs no model file.
        let bytes = b"not really a model".to_vec();
        let model = KnownModel {
            name: "tiny.onnx",
            bytes: bytes.len() as u64,
            sha256: Box::leak(hex::encode(Sha256::digest(&bytes)).into_boxed_str()),
            ..KNOWN_MODELS[0]
        };
        std::fs::write(src.path().join("tiny.onnx"), &bytes).expect("write");
        let from = src.path().to_str().expect("utf8");
        let mut calls = 0;
        let got = fetch(&model, from, dst.path(), &mut |_, _| calls += 1).expect("fetch");
        assert_eq!(got, Fetched::Downloaded(dst.path().join("tiny.onnx")));
        assert!(calls > 0);
        assert_eq!(check(&model, dst.path()), FileState::Verified);
        let again = fetch(&model, from, dst.path(), &mut |_, _| {}).expect("fetch");
        assert!(matches!(again, Fetched::AlreadyThere(_)));

        // Same size, one byte changed: refused, and nothing left behind.
        let other = tempfile::tempdir().expect("tmp");
        let mut tampered = bytes.clone();
        tampered[0] ^= 1;
        std::fs::write(src.path().join("tiny.onnx"), &tampered).expect("write");
        let err = fetch(&model, from, other.path(), &mut |_, _| {}).expect_err("tampered");
        assert!(matches!(err, CatalogError::Checksum { .. }), "{err}");
        assert_eq!(std::fs::read_dir(other.path()).expect("ls").count(), 0);

        // Longer than the pin: refused as soon as it passes the pinned size.
        tampered.extend_from_slice(b"and more");
        std::fs::write(src.path().join("tiny.onnx"), &tampered).expect("write");
        let err = fetch(&model, from, other.path(), &mut |_, _| {}).expect_err("longer");
        assert!(matches!(err, CatalogError::Size { .. }), "{err}");
        assert_eq!(std::fs::read_dir(other.path()).expect("ls").count(), 0);
        assert!(matches!(check(&model, other.path()), FileState::Missing));
    }

    #[test]
    fn neither_url_nor_folder_is_a_clear_error() {
        let dst = tempfile::tempdir().expect("tmp");
        let err = fetch(
            &KNOWN_MODELS[0],
            "ftp://example.invalid/",
            dst.path(),
            &mut |_, _| {},
        )
        .expect_err("ftp");
        assert!(matches!(err, CatalogError::BadSource(_)), "{err}");
    }
}
