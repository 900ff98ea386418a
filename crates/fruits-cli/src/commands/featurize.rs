//! `fruits featurize`: photos in, MobileNetV2 features out, resumably.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use fruits_image::Preprocessing;
use fruits_pipeline::{FeaturizeConfig, Summary};

use super::model_args::{ModelArgs, cores};
use super::storage_args::open;
use crate::progress::Bar;
use crate::{EXIT_INTERRUPTED, EXIT_SOME_FAILED};

/// Flags of `fruits featurize`.
#[derive(Debug, clap::Args)]
pub struct FeaturizeArgs {
    /// Folder or s3://bucket/prefix of images, one subfolder per class.
    #[arg(value_name = "INPUT")]
    pub input: String,

    /// Output folder or s3://bucket/prefix (created if needed; reused to resume).
    #[arg(long, short, value_name = "DIR")]
    pub out: String,

    #[command(flatten)]
    pub model: ModelArgs,

    /// Images per inference call. Small batches keep activations in cache and
    /// memory low; see the README's benchmark.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub batch_size: usize,

    /// Threads decoding and resizing images [default: 1 per 2 cores, at least 1].
    #[arg(long, value_name = "N")]
    pub decode_threads: Option<usize>,

    /// Rows per Parquet part file: the work kept if a run is interrupted.
    #[arg(long, default_value_t = 2048, value_name = "N")]
    pub part_rows: usize,

    /// Refuse images larger than this many megapixels (decompression bombs).
    #[arg(long, default_value_t = 100.0, value_name = "MP")]
    pub max_megapixels: f64,

    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Stop after this many batches, as if interrupted (for testing resume).
    #[arg(long, hide = true)]
    pub stop_after_batches: Option<usize>,
}

/// Runs the command and returns the process exit code.
pub fn run(args: FeaturizeArgs) -> anyhow::Result<ExitCode> {
    if args.max_megapixels.is_nan() || args.max_megapixels <= 0.0 {
        anyhow::bail!("--max-megapixels must be positive");
    }
    // Both ends are opened (credentials, region guard) before the model loads.
    let input = open(&args.input)?;
    let out = open(&args.out)?;
    let model = args.model.load()?;
    let config = FeaturizeConfig {
        batch_size: args.batch_size,
        decode_threads: args.decode_threads.unwrap_or_else(|| (cores() / 2).max(1)),
        part_rows: args.part_rows,
        preprocessing: Preprocessing {
            max_pixels: (args.max_megapixels * 1e6) as u64,
            ..Preprocessing::default()
        },
        stop_after_batches: args.stop_after_batches,
    };

    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // Second Ctrl-C: the user does not want to wait for the part in flight.
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        eprintln!(
            "\ninterrupted: finishing the batch in flight and saving it (Ctrl-C again to quit now)"
        );
    })
    .context("cannot install the Ctrl-C handler")?;

    let bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let summary = fruits_pipeline::featurize(&input, &out, &model, &config, &bar, &cancel)
        .with_context(|| format!("featurize {input} -> {out}"));
    bar.finish();
    let summary = summary?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if !args.quiet {
        eprintln!("{}", render(&summary));
    }
    Ok(if !summary.complete {
        if !args.quiet {
            eprintln!(
                "stopped early: the work done so far is saved; run the same command again to resume"
            );
        }
        ExitCode::from(EXIT_INTERRUPTED)
    } else if summary.total_errors > 0 {
        ExitCode::from(EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    })
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
