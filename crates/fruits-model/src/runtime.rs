//! Finding and loading the ONNX Runtime shared library.
//!
//! The `ort` crate's own build would download a runtime from a host these
//! machines cannot reach, so the library comes from the `onnxruntime` wheel on
//! PyPI (see `scripts/setup-onnxruntime.sh`) and is loaded with `dlopen` at run
//! time. [`find_runtime`] looks where that script and the Python package put it,
//! so users never have to set a variable.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::ModelError;

/// The ONNX Runtime release this build is made and tested for.
pub const ORT_VERSION: &str = "1.31.1";

/// Environment variable naming the runtime library explicitly.
pub const ORT_LIB_ENV: &str = "FRUITS_ORT_LIB";

#[cfg(target_os = "macos")]
const LIB_NAMES: [&str; 1] = ["libonnxruntime.dylib"];
#[cfg(windows)]
const LIB_NAMES: [&str; 1] = ["onnxruntime.dll"];
#[cfg(not(any(target_os = "macos", windows)))]
const LIB_NAMES: [&str; 2] = ["libonnxruntime.so.1.31.1", "libonnxruntime.so"];

/// Folder where `scripts/setup-onnxruntime.sh` installs the runtime:
/// `$XDG_DATA_HOME/fruits/onnxruntime-<version>` (default `~/.local/share/...`).
pub fn install_dir() -> Option<PathBuf> {
    let data = crate::paths::xdg_dir("XDG_DATA_HOME", ".local/share")?;
    Some(
        data.join("fruits")
            .join(format!("onnxruntime-{ORT_VERSION}")),
    )
}

/// The folders searched for the runtime, in order: beside the executable, its
/// `lib/` folder, then [`install_dir`].
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("lib"));
        dirs.push(exe_dir);
    }
    dirs.extend(install_dir());
    dirs
}

/// `FRUITS_ORT_LIB`, else `ort`'s own `ORT_DYLIB_PATH`, when set (the one
/// place they are read): the variable and the path it names.
pub fn runtime_env() -> Option<(&'static str, PathBuf)> {
    [ORT_LIB_ENV, "ORT_DYLIB_PATH"].into_iter().find_map(|var| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(|p| (var, PathBuf::from(p)))
    })
}

/// Finds the runtime library: `FRUITS_ORT_LIB` or `ORT_DYLIB_PATH` when set,
/// otherwise the first match in [`search_dirs`].
pub fn find_runtime() -> Result<PathBuf, ModelError> {
    if let Some((var, p)) = runtime_env() {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(ModelError::RuntimeNotFound {
                searched: vec![p],
                hint: format!("{var} names a file that does not exist"),
            })
        };
    }
    let dirs = search_dirs();
    let mut searched = Vec::new();
    for dir in &dirs {
        for name in LIB_NAMES {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
            searched.push(candidate);
        }
    }
    Err(ModelError::RuntimeNotFound {
        searched,
        hint: format!(
            "run scripts/setup-onnxruntime.sh (installs ONNX Runtime {ORT_VERSION} from the onnxruntime wheel on PyPI), \
             or set {ORT_LIB_ENV}=/path/to/libonnxruntime.so"
        ),
    })
}

static ENVIRONMENT: OnceLock<Result<(ort::environment::Environment, PathBuf), String>> =
    OnceLock::new();

/// Loads the runtime once per process and returns its environment. `explicit`
/// wins over [`find_runtime`]; it only matters on the first call, since a
/// process can hold one ONNX Runtime.
pub fn environment(explicit: Option<&Path>) -> Result<ort::environment::Environment, ModelError> {
    let loaded = ENVIRONMENT.get_or_init(|| {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => find_runtime().map_err(|e| e.to_string())?,
        };
        let builder = ort::init_from(&path)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?;
        let env = builder
            .with_name("fruits")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))?;
        Ok((env, path))
    });
    match loaded {
        Ok((env, _)) => Ok(env.clone()),
        Err(message) => Err(ModelError::RuntimeLoad(message.clone())),
    }
}

/// The path the runtime was loaded from, once [`environment`] succeeded.
pub fn loaded_from() -> Option<&'static Path> {
    ENVIRONMENT
        .get()
        .and_then(|r| r.as_ref().ok())
        .map(|(_, p)| p.as_path())
}
