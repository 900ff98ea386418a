//! Where the shared model files are, so tests and examples find them without flags.

use std::path::PathBuf;

/// Environment variable naming the folder that holds the model files.
pub const MODELS_DIR_ENV: &str = "FRUITS_MODELS_DIR";
/// Environment variable naming the image model file (or s3:// object) to use
/// when none is given: it overrides the precision's shared file.
pub const MODEL_ENV: &str = "FRUITS_MODEL";

/// File name of the fp32 model.
pub const FP32_MODEL: &str = "mobilenetv2-12-dequant-fp32.onnx";
/// File name of the int8 model (same input, same `features` output, ~2.7x faster).
pub const INT8_MODEL: &str = "mobilenetv2-12-int8.onnx";

/// Which of the shared models to use when no model file is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// `mobilenetv2-12-dequant-fp32.onnx`: standard ONNX operators only.
    Fp32,
    /// `mobilenetv2-12-int8.onnx`: quantised, about 2x faster end to end. The
    /// default: with the colour descriptor beside its features it identifies
    /// 99.26% of the sample's Test photos (docs/identify.md).
    #[default]
    Int8,
}

impl Precision {
    /// Every precision, for listings.
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Int8];

    /// The shared model file of this precision.
    pub fn file_name(self) -> &'static str {
        match self {
            Precision::Fp32 => FP32_MODEL,
            Precision::Int8 => INT8_MODEL,
        }
    }

    /// The name used on command lines and in Python (`fp32`, `int8`).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }

    /// The precision named `name`, if any.
    pub fn parse(name: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The shared model file of this precision in `dir` (e.g. [`models_dir`]).
    pub fn path_in(self, dir: &std::path::Path) -> PathBuf {
        dir.join(self.file_name())
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The models folder: `FRUITS_MODELS_DIR` when set, else `../shared/models`
/// relative to the working directory or the nearest of its parents that has
/// one (so commands work from the repository root and from its sub-folders,
/// where `cargo test` runs), else the user's cache when `fruits models fetch`
/// put the models there. Never a path fixed at build time: a binary built in
/// one checkout and run from another must not read the first one's models.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = models_dir_env() {
        return dir;
    }
    let relative = PathBuf::from(SHARED_MODELS);
    if relative.is_dir() {
        return relative;
    }
    std::env::current_dir()
        .ok()
        .and_then(|cwd| shared_models_beside(&cwd))
        .or_else(|| cache_models_dir().filter(|dir| dir.is_dir()))
        .unwrap_or(relative)
}

/// The shared models folder, relative to a checkout.
const SHARED_MODELS: &str = "../shared/models";

/// `FRUITS_MODELS_DIR`, when set: the one place it is read.
pub fn models_dir_env() -> Option<PathBuf> {
    std::env::var_os(MODELS_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `FRUITS_MODEL`, when set: the one place it is read.
pub fn model_env() -> Option<String> {
    std::env::var(MODEL_ENV).ok().filter(|v| !v.is_empty())
}

/// `../shared/models` beside `start` or the nearest of its parents that has one.
fn shared_models_beside(start: &std::path::Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(SHARED_MODELS))
        .find(|dir| dir.is_dir())
}

/// The user's model cache, where `fruits models fetch` downloads:
/// `$XDG_CACHE_HOME/fruits/models`, else `~/.cache/fruits/models`.
pub fn cache_models_dir() -> Option<PathBuf> {
    xdg_dir("XDG_CACHE_HOME", ".cache").map(|cache| cache.join("fruits").join("models"))
}

/// An XDG base folder: `$var` when set, else `$HOME/fallback` (the one place
/// these variables are read).
pub(crate) fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)))
}

/// The folders searched, in order, for the image model a bundle records (by
/// its sha256): `explicit` (a flag or `FRUITS_MODELS_DIR`), the user's cache
/// (`$XDG_CACHE_HOME/fruits/models`, else `~/.cache/fruits/models`), and
/// `../shared/models` beside the working directory or any of its parents,
/// then beside the running executable or any of its parents (a binary under a
/// checkout's `target/` finds the checkout's models from any folder).
pub fn model_search_dirs(explicit: &std::path::Path) -> Vec<PathBuf> {
    let mut dirs = vec![explicit.to_path_buf()];
    if let Some(cache) = cache_models_dir() {
        dirs.push(cache);
    }
    for start in [std::env::current_dir(), std::env::current_exe()] {
        if let Some(dir) = start.ok().and_then(|s| shared_models_beside(&s)) {
            dirs.push(dir);
        }
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(std::path::absolute(d).unwrap_or_else(|_| d.clone())));
    dirs
}
