//! `fruits`: turns fruit photos into MobileNetV2 features, on one machine.
//!
//! A thin command line over the library crates; every command's work lives in
//! a crate the Spark bindings and the HTTP service reuse.

mod commands;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status when some inputs failed but the output is complete for the rest.
pub const EXIT_SOME_FAILED: u8 = 3;
/// Exit status when the run was interrupted (Ctrl-C); rerun to resume.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Turn fruit photos into features, compress them, identify the fruit.
///
/// Exit status: 0 success; 1 fatal error (nothing or not everything could be
/// done, see the message); 2 bad command line; 3 finished, but some inputs
/// failed (listed in the output's errors table); 130 interrupted (run the same
/// command again to resume).
#[derive(Debug, Parser)]
#[command(
    name = "fruits",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// Log more (-v: info, -vv: debug), on stderr. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(flatten)]
    storage: commands::storage_args::StorageArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Featurise every image under a folder or S3 prefix with MobileNetV2 into Parquet.
    ///
    /// Every image under INPUT (jpg, jpeg, png, webp, bmp, any case; hidden files
    /// skipped) becomes one row: path, label (its folder's name), split (the folder
    /// above when it is Training or Test), sha256, width, height and a 1280-d
    /// feature vector. Images that cannot be used go to the errors table with the
    /// reason. Running again on the same --out resumes: images already in the
    /// output are skipped, images added since are featurised.
    Featurize(commands::featurize::FeaturizeArgs),
    /// Reduce features with PCA: fit, transform, show.
    #[command(subcommand)]
    Pca(commands::pca::Pca),
    /// Featurise, fit a PCA and transform, into OUT/features, OUT/pca and OUT/reduced.
    Run(commands::run::RunArgs),
    /// Export an output as another format.
    #[command(subcommand)]
    Export(commands::export::Export),
    /// Train a classifier (softmax regression) on a features or reduced output.
    Train(commands::train::TrainArgs),
    /// Score a classifier on a split: accuracy, F1, confusion matrix, net revenue.
    Evaluate(commands::evaluate::EvaluateArgs),
    /// Say which fruit is in each photo, with what the app knows about it.
    Identify(commands::identify::IdentifyArgs),
    /// Serve identification over HTTP: upload page, JSON API, SageMaker routes, metrics.
    Serve(commands::serve::ServeArgs),
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    cli.storage.install();
    let result = match cli.command {
        Command::Featurize(args) => commands::featurize::run(args),
        Command::Pca(pca) => commands::pca::run(pca),
        Command::Run(args) => commands::run::run(args),
        Command::Export(export) => commands::export::run(export),
        Command::Train(args) => commands::train::run(args),
        Command::Evaluate(args) => commands::evaluate::run(args),
        Command::Identify(args) => commands::identify::run(args),
        Command::Serve(args) => commands::serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
