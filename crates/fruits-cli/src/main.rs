//! `fruits`: turns fruit photos into MobileNetV2 features, compresses them,
//! identifies the fruit, on one machine.
//!
//! A thin shell: [`args`] holds every flag, [`commands`] turns them into calls
//! into the library crates (which the Spark bindings and the HTTP service
//! share) and prints the results, [`hints`] adds the flag to use when an error
//! has one.

mod args;
mod commands;
mod context;
mod hints;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use context::Ctx;

/// Exit status when some inputs failed but the output is complete for the rest.
pub const EXIT_SOME_FAILED: u8 = 3;
/// Exit status when the run was interrupted (Ctrl-C); rerun to resume.
pub const EXIT_INTERRUPTED: u8 = 130;

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
    let ctx = Ctx {
        storage: cli.storage.options(),
    };
    let result = match cli.command {
        Command::Featurize(args) => commands::featurize::run(args, &ctx),
        Command::Pca(pca) => commands::pca::run(pca, &ctx),
        Command::Run(args) => commands::run::run(args, &ctx),
        Command::Augment(args) => commands::augment::run(args, &ctx),
        Command::Export(export) => commands::export::run(export, &ctx),
        Command::Forget(args) => commands::forget::run(args, &ctx),
        Command::Train(args) => commands::train::run(args, &ctx),
        Command::Evaluate(args) => commands::evaluate::run(args, &ctx),
        Command::Identify(args) => commands::identify::run(args, &ctx),
        Command::Serve(args) => commands::serve::run(args, &ctx),
        Command::Models(models) => commands::models::run(models, &ctx),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            for hint in hints::for_error(&err) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
