//! Where the shared model files are, so tests and examples find them without flags.

use std::path::PathBuf;

/// Environment variable naming the folder that holds the model files.
pub const MODELS_DIR_ENV: &str = "FRUITS_MODELS_DIR";

/// File name of the default fp32 model.
pub const FP32_MODEL: &str = "mobilenetv2-12-dequant-fp32.onnx";
/// File name of the int8 model (same input, same `features` output, ~2.7x faster).
pub const INT8_MODEL: &str = "mobilenetv2-12-int8.onnx";

/// The models folder: `FRUITS_MODELS_DIR` when set, else `../shared/models`
/// relative to the working directory when it exists (the repository root), else
/// the same folder relative to this source checkout.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODELS_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let relative = PathBuf::from("../shared/models");
    if relative.is_dir() {
        return relative;
    }
    let from_checkout = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/models"
    ));
    if from_checkout.is_dir() {
        from_checkout
    } else {
        relative
    }
}
