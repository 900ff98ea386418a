//! Lists the fruit photos under an input root: a local folder or an S3 prefix.
//!
//! An input root holds images in folders named after their class, optionally
//! under a `Training` or `Test` folder:
//!
//! ```text
//! root/Training/Apple 6/r_0_100.jpg   -> label "Apple 6", split "Training"
//! root/Banana 1/photo.png             -> label "Banana 1", split none
//! ```
//!
//! The listing is sorted by relative path so that every consumer (the local
//! pipeline, the Spark driver) sees the same order and produces the same rows.

use fruits_location::{ListProblem, Location, StorageError};

/// File extensions accepted as images, compared case-insensitively.
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "bmp"];

/// Split folder names recognised as the grandparent of an image.
pub const SPLITS: [&str; 2] = ["Training", "Test"];

/// One image found under the input root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Path relative to the input root, `/`-separated on every platform: the row key
    /// and the key the bytes are read from.
    pub path: String,
    /// Size in bytes, as listed.
    pub size: u64,
    /// The parent folder's name, as-is.
    pub label: String,
    /// The grandparent folder's name when it is one of [`SPLITS`].
    pub split: Option<String>,
}

/// Why the input could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The root could not be listed (missing folder, bucket, permission...).
    #[error("cannot list the input {root}: {error}")]
    List {
        /// The input root.
        root: String,
        /// What the storage said.
        error: Box<StorageError>,
    },
}

/// True when `name` has one of the accepted image extensions (any case).
pub fn is_image_name(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => IMAGE_EXTENSIONS
            .iter()
            .any(|accepted| ext.eq_ignore_ascii_case(accepted)),
        _ => false,
    }
}

/// Builds the entry for the image at `rel`, a `/`-separated path relative to the root.
///
/// Returns `None` for paths that are not images or that sit in a hidden folder or
/// file (a name starting with `.`), so object-store listings can reuse the same rule.
pub fn entry_for(rel: &str, size: u64) -> Option<ImageEntry> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let file = parts.last()?;
    if parts.iter().any(|p| p.starts_with('.')) || !is_image_name(file) {
        return None;
    }
    Some(entry_named(rel, size))
}

/// The entry of a photo named explicitly (a path column, an upload): label
/// and split from its folders as [`entry_for`] does, whatever its file name.
pub fn entry_named(rel: &str, size: u64) -> ImageEntry {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let dirs = parts.split_last().map(|(_, dirs)| dirs).unwrap_or_default();
    let label = dirs.last().map(|s| s.to_string()).unwrap_or_default();
    let split = dirs
        .len()
        .checked_sub(2)
        .map(|i| dirs[i])
        .filter(|g| SPLITS.contains(g))
        .map(str::to_string);
    ImageEntry {
        path: parts.join("/"),
        size,
        label,
        split,
    }
}

/// The images under a root, and the entries that could not be listed.
#[derive(Debug, Clone, Default)]
pub struct ImageListing {
    /// The images, sorted by relative path.
    pub entries: Vec<ImageEntry>,
    /// Entries that look like images (or folders that may hold them) but
    /// cannot be read as files: each becomes a row of the errors table.
    pub problems: Vec<ListProblem>,
}

/// Lists every image under `root`, sorted by relative path.
///
/// Hidden files and folders are skipped; local symbolic links are followed so a
/// collection assembled from links works as expected. A broken or looping
/// link, an unreadable folder, a FIFO or device named like an image, or a name
/// that is not UTF-8 does not stop the listing: it is reported in
/// [`ImageListing::problems`] (files only when named like an image, folders
/// always, since their photos are missing).
pub fn list_images(root: &Location) -> Result<ImageListing, IngestError> {
    let listing = root.list().map_err(|e| IngestError::List {
        root: root.to_string(),
        error: Box::new(e),
    })?;
    let mut entries: Vec<ImageEntry> = listing
        .files
        .into_iter()
        .filter_map(|f| entry_for(&f.rel, f.size))
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut problems: Vec<ListProblem> = listing
        .problems
        .into_iter()
        .filter(|p| p.is_dir || is_image_name(p.rel.rsplit('/').next().unwrap_or("")))
        .collect();
    problems.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(ImageListing { entries, problems })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn extensions_any_case() {
        for name in ["a.jpg", "a.JPG", "a.JpEg", "a.png", "a.webp", "a.BMP"] {
            assert!(is_image_name(name), "{name}");
        }
        for name in ["a.gif", "a.txt", "jpg", ".jpg", "a.jpg.bak"] {
            assert!(!is_image_name(name), "{name}");
        }
    }

    #[test]
    fn label_and_split() {
        let e = entry_for("Training/Apple 6/r_1.jpg", 0).expect("image");
        assert_eq!(e.label, "Apple 6");
        assert_eq!(e.split.as_deref(), Some("Training"));
        let e = entry_for("Banana 1/x.png", 0).expect("image");
        assert_eq!((e.label.as_str(), e.split), ("Banana 1", None));
        let e = entry_for("photos/Other/Kiwi/x.png", 0).expect("image");
        assert_eq!((e.label.as_str(), e.split), ("Kiwi", None));
        let e = entry_for("x.png", 0).expect("image");
        assert_eq!(e.label, "");
        assert!(entry_for("Test/.hidden/x.png", 0).is_none());
        assert!(entry_for("Test/Kiwi/.x.png", 0).is_none());
    }

    #[test]
    fn lists_sorted_and_skips_hidden() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for rel in [
            "Test/Kiwi/b.jpg",
            "Test/Kiwi/a.JPG",
            "Training/Apple 6/c.png",
            "Training/Apple 6/notes.txt",
            "Training/.cache/d.jpg",
            "Training/Apple 6/.e.jpg",
        ] {
            let p = dir.path().join(rel);
            fs::create_dir_all(p.parent().ok_or("no parent")?)?;
            fs::write(&p, b"x")?;
        }
        let paths: Vec<String> = list_images(&Location::local_path(dir.path()))?
            .entries
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            [
                "Test/Kiwi/a.JPG",
                "Test/Kiwi/b.jpg",
                "Training/Apple 6/c.png"
            ]
        );
        Ok(())
    }

    #[test]
    fn missing_root_is_a_clear_error() {
        let err = list_images(&Location::local_path(std::path::Path::new(
            "/definitely/not/here",
        )))
        .expect_err("must fail");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
