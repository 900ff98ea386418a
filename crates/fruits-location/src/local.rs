//! Local folders: atomic writes under hidden temporary names, and listings
//! that report each unusable entry instead of failing on the first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Action, FileMeta, StorageError};

/// Marks the temporary files of an atomic write: `.NAME.fruits-tmp-PID-N`.
/// The leading dot hides them from listings and from Parquet readers
/// (pyarrow, Spark and DuckDB skip names starting with `.` or `_`), and the
/// next writer of the folder sweeps those a killed run left.
pub const TEMP_MARKER: &str = ".fruits-tmp-";

/// Writes `bytes` to `file` atomically: to a hidden temporary file in the same
/// folder, flushed to disk, then renamed over `file` (and the folder flushed),
/// so readers see the old file or the new one, never a part, even after a crash.
pub(crate) fn put_atomic(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}{TEMP_MARKER}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        // The rename itself must survive a crash too.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// True for the temporary files of [`put_atomic`] and for the staging files
/// object_store's local store wrote before version 0.2 (`NAME#N`).
pub fn is_temporary(name: &str) -> bool {
    name.contains(TEMP_MARKER)
        || name.rsplit_once('#').is_some_and(|(stem, n)| {
            !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Why an entry of a listed folder cannot be read as a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A symbolic link whose target does not exist.
    BrokenLink,
    /// A symbolic link that leads back to a folder above it.
    LinkLoop,
    /// A folder (or file) this process may not read.
    Unreadable,
    /// A FIFO, socket or device (possibly behind a link): reading it could
    /// block for ever or never end.
    NotAFile,
    /// A name that is not valid UTF-8, so it cannot be a row's key.
    NonUtf8Name,
}

/// An entry of a listed folder that could not be listed as a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListProblem {
    /// The entry's path relative to the listed folder, `/`-separated (a
    /// non-UTF-8 name is shown with U+FFFD in place of its bad bytes).
    pub rel: String,
    /// What is wrong with it.
    pub kind: ProblemKind,
    /// True when the entry is (or leads to) a folder: its whole content is missing.
    pub is_dir: bool,
    /// What the system said, for people.
    pub message: String,
}

/// `path` relative to `root`, `/`-separated, with any non-UTF-8 component
/// shown lossily; the flag says whether every component was valid UTF-8.
fn relative(root: &Path, path: &Path) -> (String, bool) {
    let mut valid = true;
    let parts: Vec<String> = path
        .strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| {
            let s = c.as_os_str();
            match s.to_str() {
                Some(s) => s.to_string(),
                None => {
                    valid = false;
                    s.to_string_lossy().into_owned()
                }
            }
        })
        .collect();
    (parts.join("/"), valid)
}

/// Reads the regular file `file` whole. Anything else is refused before a
/// byte is read: a FIFO would block the read until some writer appeared
/// (forever, for a photo path), a directory or device is not a photo. The
/// file is opened without blocking and its type checked on the open handle,
/// so a file swapped for a FIFO after a check cannot slip through.
pub fn read_file(file: &Path) -> Result<Vec<u8>, StorageError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(|e| StorageError::local(Action::Get, file, e))?;
    let meta = handle
        .metadata()
        .map_err(|e| StorageError::local(Action::Get, file, e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "a FIFO, socket or device"
        };
        return Err(StorageError::NotAFile {
            path: file.to_path_buf(),
            what,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    handle
        .read_to_end(&mut bytes)
        .map_err(|e| StorageError::local(Action::Get, file, e))?;
    Ok(bytes)
}

/// Lists a local folder like an object store would (files only, relative `/`
/// keys, hidden entries skipped, symbolic links followed), and reports every
/// entry that cannot be listed as a file instead of failing on it.
pub(crate) fn list(root: &Path) -> Result<(Vec<FileMeta>, Vec<ListProblem>), StorageError> {
    if !root.is_dir() {
        return Err(StorageError::NotFound {
            what: format!("folder {}", root.display()),
        });
    }
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let mut walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .into_iter()
        // Prune hidden folders early rather than filtering their contents later.
        .filter_entry(|e| e.depth() == 0 || !e.file_name().as_encoded_bytes().starts_with(b"."));
    while let Some(item) = walker.next() {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                let Some(path) = e.path().map(PathBuf::from) else {
                    return Err(StorageError::local(Action::List, root, e.into()));
                };
                if path == root {
                    return Err(StorageError::local(Action::List, root, e.into()));
                }
                let (rel, _) = relative(root, &path);
                let kind = if e.loop_ancestor().is_some() {
                    ProblemKind::LinkLoop
                } else {
                    match e.io_error().map(std::io::Error::kind) {
                        Some(std::io::ErrorKind::NotFound) => ProblemKind::BrokenLink,
                        _ => ProblemKind::Unreadable,
                    }
                };
                let is_dir = kind == ProblemKind::LinkLoop
                    || (kind == ProblemKind::Unreadable && path.is_dir());
                problems.push(ListProblem {
                    rel,
                    kind,
                    is_dir,
                    message: e.to_string(),
                });
                continue;
            }
        };
        if item.depth() == 0 {
            continue;
        }
        let (rel, valid) = relative(root, item.path());
        let file_type = item.file_type();
        if !valid {
            problems.push(ListProblem {
                rel,
                kind: ProblemKind::NonUtf8Name,
                is_dir: file_type.is_dir(),
                message: format!("{} is not a valid UTF-8 name", item.path().display()),
            });
            if file_type.is_dir() {
                walker.skip_current_dir();
            }
            continue;
        }
        if file_type.is_dir() {
            continue;
        }
        if !file_type.is_file() {
            problems.push(ListProblem {
                rel,
                kind: ProblemKind::NotAFile,
                is_dir: false,
                message: format!(
                    "{} is not a regular file (a FIFO, socket or device)",
                    item.path().display()
                ),
            });
            continue;
        }
        let size = item.metadata().map(|m| m.len()).unwrap_or(0);
        files.push(FileMeta { rel, size });
    }
    Ok((files, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let fifo = dir.path().join("photo.jpg");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
        assert!(made.success(), "mkfifo");
        // Without the check this read would wait for a writer forever.
        let err = read_file(&fifo).expect_err("a FIFO is not a photo");
        assert!(matches!(err, StorageError::NotAFile { .. }), "{err}");
        assert!(
            err.is_item_level() && err.to_string().contains("FIFO"),
            "{err}"
        );
        let err = read_file(dir.path()).expect_err("a folder is not a photo");
        assert!(err.to_string().contains("folder"), "{err}");
        std::fs::write(dir.path().join("a.jpg"), b"abc")?;
        assert_eq!(read_file(&dir.path().join("a.jpg"))?, b"abc");
        Ok(())
    }

    #[test]
    fn temporary_names_are_recognised() {
        assert!(is_temporary(".part-r001-00001.parquet.fruits-tmp-42-0"));
        assert!(is_temporary("part-r001-00001.parquet#1"));
        assert!(!is_temporary("part-r001-00001.parquet"));
        assert!(!is_temporary("photo#.jpg"));
    }

    #[test]
    fn atomic_writes_leave_no_temporary_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("sub/a.bin");
        put_atomic(&file, b"one")?;
        put_atomic(&file, b"two")?;
        assert_eq!(std::fs::read(&file)?, b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, ["a.bin"]);
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn bad_entries_are_reported_and_the_rest_listed() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("Kiwi"))?;
        std::fs::write(root.join("Kiwi/good.jpg"), b"x")?;
        std::os::unix::fs::symlink(root.join("nowhere.jpg"), root.join("Kiwi/dangling.jpg"))?;
        std::os::unix::fs::symlink(root, root.join("Kiwi/loop"))?;
        std::os::unix::fs::symlink("/dev/zero", root.join("Kiwi/zero.jpg"))?;
        let fifo = root.join("Kiwi/fifo.jpg");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
        assert!(made.success());
        let bad = std::ffi::OsStr::from_bytes(b"bad-\xff.jpg");
        std::fs::write(root.join("Kiwi").join(bad), b"y")?;
        let (files, problems) = list(root)?;
        let rels: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["Kiwi/good.jpg"]);
        let mut kinds: Vec<(String, ProblemKind)> =
            problems.iter().map(|p| (p.rel.clone(), p.kind)).collect();
        kinds.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            kinds,
            [
                (
                    "Kiwi/bad-\u{fffd}.jpg".to_string(),
                    ProblemKind::NonUtf8Name
                ),
                ("Kiwi/dangling.jpg".to_string(), ProblemKind::BrokenLink),
                ("Kiwi/fifo.jpg".to_string(), ProblemKind::NotAFile),
                ("Kiwi/loop".to_string(), ProblemKind::LinkLoop),
                ("Kiwi/zero.jpg".to_string(), ProblemKind::NotAFile),
            ]
        );
        Ok(())
    }
}
