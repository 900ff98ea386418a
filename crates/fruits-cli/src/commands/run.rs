//! `fruits run`: the whole single-machine job.

use std::path::PathBuf;
use std::process::ExitCode;

use super::featurize;
use super::pca::{self, KeepArgs};

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
    let root: PathBuf = args.featurize.out.clone();
    let quiet = args.featurize.quiet;
    args.featurize.out = root.join("features");
    args.featurize.json = false;
    let code = featurize::run(args.featurize)?;
    if code != ExitCode::SUCCESS && code != ExitCode::from(crate::EXIT_SOME_FAILED) {
        return Ok(code); // interrupted: resume before fitting
    }
    let features = root.join("features");
    let model = pca::fit(&features, &root.join("pca"), args.keep.keep())?;
    if !quiet {
        eprintln!("{}", pca::describe_fit(&model, &root.join("pca")));
    }
    pca::transform(&features, &root.join("pca"), &root.join("reduced"), quiet)?;
    Ok(code)
}
