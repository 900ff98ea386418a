//! `fruits augment`: transformed copies of photos, for photos "in the wild".

use std::process::ExitCode;

use anyhow::Context;
use fruits_image::DecodeLimits;
use fruits_image::augment::AugmentSettings;
use fruits_pipeline::augment::augment_folder;

use crate::args::AugmentArgs;
use crate::context::Ctx;

/// Runs the command; exit status 3 when some photos could not be read.
pub fn run(args: AugmentArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let (input, out) = (ctx.open(&args.input)?, ctx.open(&args.out)?);
    let summary = augment_folder(
        &input,
        &out,
        args.copies,
        args.seed,
        &DecodeLimits::default(),
        &AugmentSettings::default(),
    )
    .with_context(|| format!("augment {input} -> {out}"))?;
    eprintln!(
        "{} photos in, {} copies written to {} ({} failed)",
        summary.inputs,
        summary.written,
        summary.output,
        summary.failed.len()
    );
    for (path, why) in &summary.failed {
        eprintln!("  {path}: {why}");
    }
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_SOME_FAILED)
    })
}
