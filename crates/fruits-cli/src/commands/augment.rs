//! `fruits augment`: transformed copies of photos, for photos "in the wild".

use std::process::ExitCode;

use anyhow::Context;
use fruits_image::DecodeLimits;
use fruits_image::augment::AugmentSettings;
use fruits_pipeline::augment::augment_folder;

use crate::args::AugmentArgs;
use crate::context::{Ctx, cancel_on_ctrl_c};

/// Runs the command; exit status 3 when some photos could not be read.
pub fn run(args: AugmentArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let (input, out) = (ctx.open(&args.input)?, ctx.open(&args.out)?);
    let cancel = cancel_on_ctrl_c(
        "finishing the copies being written (Ctrl-C again to quit now); rerun to finish",
    )?;
    let summary = augment_folder(
        &input,
        &out,
        args.copies,
        args.seed,
        &DecodeLimits::default(),
        &AugmentSettings::default(),
        cancel,
    )
    .with_context(|| format!("augment {input} -> {out}"))?;
    eprintln!(
        "{} photos in, {} copies written to {} ({} already there), {} photos failed",
        summary.inputs,
        summary.written,
        summary.output,
        summary.kept,
        summary.failed.len()
    );
    for (path, kind, why) in &summary.failed {
        eprintln!("  {path}: {kind}: {why}");
    }
    Ok(if !summary.complete {
        eprintln!(
            "stopped early: the copies written are kept; run the same command again to finish"
        );
        ExitCode::from(crate::EXIT_INTERRUPTED)
    } else if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_SOME_FAILED)
    })
}
