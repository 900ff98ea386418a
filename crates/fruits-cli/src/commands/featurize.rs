//! `fruits featurize`: photos in, MobileNetV2 features out, resumably.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use fruits_image::{DecodeLimits, Preprocessing};
use fruits_pipeline::augment::Augmentation;
use fruits_pipeline::{FeaturizeConfig, Summary};

use crate::args::FeaturizeArgs;
use crate::context::{Ctx, cancel_on_ctrl_c, cores};
use crate::progress::Bar;
use crate::{EXIT_INTERRUPTED, EXIT_SOME_FAILED};

/// The pipeline settings these flags ask for.
pub fn config(args: &FeaturizeArgs) -> anyhow::Result<FeaturizeConfig> {
    Ok(FeaturizeConfig {
        batch_size: args.batch_size,
        decode_threads: args
            .decode_threads
            .unwrap_or_else(|| fruits_pipeline::featurize::default_decode_threads(cores())),
        part_rows: args.part_rows,
        preprocessing: Preprocessing::default(),
        limits: DecodeLimits::megapixels(args.max_megapixels),
        max_file_bytes: args.max_file_mib << 20,
        retry_errors: args.retry_errors,
        augment: (args.augment > 0).then(|| Augmentation::new(args.augment, args.augment_seed)),
        views: if args.views {
            fruits_image::DEFAULT_VIEWS.to_vec()
        } else {
            Vec::new()
        },
    })
}

/// Runs the command and returns the process exit code.
pub fn run(args: FeaturizeArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let config = config(&args)?;
    // Both ends are opened (credentials, region guard) before the model loads.
    let input = ctx.open(&args.input)?;
    let out = ctx.open(&args.out)?;
    let model = args.model.load(ctx)?;
    let cancel =
        cancel_on_ctrl_c("finishing the batch in flight and saving it (Ctrl-C again to quit now)")?;
    let bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let summary = fruits_pipeline::featurize(&input, &out, &model, &config, &bar, cancel)
        .with_context(|| format!("featurize {input} -> {out}"));
    bar.finish();
    let summary = summary?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if !args.quiet {
        eprintln!("{}", render(&summary));
    }
    Ok(exit_code(&summary, args.quiet))
}

/// 0, 3 (some inputs failed) or 130 (stopped early).
pub fn exit_code(summary: &Summary, quiet: bool) -> ExitCode {
    if !summary.complete {
        if !quiet {
            eprintln!(
                "stopped early: the work done so far is saved; run the same command again to resume"
            );
        }
        ExitCode::from(EXIT_INTERRUPTED)
    } else if summary.total_errors > 0 {
        ExitCode::from(EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The human summary printed at the end of a run.
pub fn render(s: &Summary) -> String {
    let mut text = format!(
        "images in: {}  featurised: {}  failed: {}  skipped (done before): {}\n\
         elapsed: {:.1} s  throughput: {:.1} images/s\n\
         output: {} ({} rows, {} errors{})",
        s.inputs,
        s.featurised,
        s.failed,
        s.skipped,
        s.elapsed_secs,
        s.images_per_sec,
        s.output,
        s.total_rows,
        s.total_errors,
        if s.complete { "" } else { ", incomplete" },
    );
    if s.total_errors > 0 {
        text.push_str(&format!(
            "\nsome inputs failed: see the errors table (fruits export csv {} --errors)",
            s.output
        ));
    }
    text
}
