//! One module per subcommand: each turns its flags into library calls and
//! prints what happened. The work itself lives in the library crates.

pub mod augment;
pub mod evaluate;
pub mod export;
pub mod featurize;
pub mod forget;
pub mod identify;
pub mod models;
pub mod pca;
pub mod run;
pub mod serve;
pub mod train;
