//! One module per subcommand.

pub mod export;
pub mod featurize;
pub mod model_args;
pub mod pca;
pub mod run;
pub mod storage_args;
