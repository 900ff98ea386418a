//! `fruits run`: the whole single-machine job.

use std::process::ExitCode;

use super::featurize;
use super::pca::{self, KeepArgs};
use super::storage_args::open;

/// Flags of `fruits run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub featurize: featurize::FeaturizeArgs,
    #[command(flatten)]
    pub keep: KeepArgs,
}

/// Featurises into OUT/features, fits into OUT/pca, transforms into OUT/reduced.
pub fn run(mut args: RunArgs) -> anyhow::Result<ExitCode> {
    let root = open(&args.featurize.out)?;
    let quiet = args.featurize.quiet;
    args.featurize.out = root.describe("features");
    args.featurize.json = false;
    let code = featurize::run(args.featurize)?;
    if code != ExitCode::SUCCESS && code != ExitCode::from(crate::EXIT_SOME_FAILED) {
        return Ok(code); // interrupted: resume before fitting
    }
    let (features, pca_dir) = (root.child("features"), root.child("pca"));
    let model = pca::fit(&features, &pca_dir, args.keep.keep())?;
    if !quiet {
        eprintln!("{}", pca::describe_fit(&model, &pca_dir));
    }
    pca::transform(&features, &pca_dir, &root.child("reduced"), quiet)?;
    Ok(code)
}
