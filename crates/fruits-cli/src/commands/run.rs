//! `fruits run`: the whole single-machine job.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;

use super::featurize::{config, exit_code, render};
use super::pca::describe_fit;
use crate::args::RunArgs;
use crate::context::{Ctx, cancel_on_ctrl_c};
use crate::progress::Bar;

/// Featurises into OUT/features, fits into OUT/pca, transforms into OUT/reduced.
pub fn run(args: RunArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let f = &args.featurize;
    let config = config(f)?;
    let input = ctx.open(&f.input)?;
    let out = ctx.open(&f.out)?;
    let model = f.model.load(ctx)?;
    let cancel =
        cancel_on_ctrl_c("finishing the batch in flight and saving it (Ctrl-C again to quit now)")?;
    let bar = Bar::new(!f.quiet && std::io::stderr().is_terminal());
    let keep = args.keep.keep();
    let result = fruits_pipeline::run::run(&input, &out, &model, &config, keep, &bar, cancel)
        .with_context(|| format!("run {input} -> {out}"));
    bar.finish();
    let summary = result?;
    if !f.quiet {
        eprintln!("{}", render(&summary.featurize));
    }
    for warning in &summary.warnings {
        eprintln!("warning: plots not written: {warning}");
    }
    if let Some(pca) = &summary.pca
        && !f.quiet
    {
        let pca_dir = out.child(fruits_pipeline::reduce::PCA_DIR);
        eprintln!("{}", describe_fit(pca, &pca_dir));
        eprintln!(
            "wrote {} rows of {} components to {}",
            summary.reduced_rows,
            pca.model.k,
            out.child(fruits_pipeline::run::REDUCED_DIR)
        );
        eprintln!(
            "stages: listing {:.2} s, featurise {:.1} s, PCA fit {:.1} s, transform {:.1} s",
            summary.featurize.listing_secs,
            summary.featurize.elapsed_secs,
            summary.fit_secs,
            summary.transform_secs
        );
    }
    Ok(exit_code(&summary.featurize, f.quiet))
}
