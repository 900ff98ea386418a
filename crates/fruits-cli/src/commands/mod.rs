//! One module per subcommand.

pub mod evaluate;
pub mod export;
pub mod featurize;
pub mod identify;
pub mod model_args;
pub mod pca;
pub mod run;
pub mod serve;
pub mod storage_args;
pub mod train;
