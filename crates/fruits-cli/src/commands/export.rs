//! `fruits export`: the same rows in other formats.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use fruits_store::{Dataset, PartKind, export_csv};

/// Export formats.
#[derive(Debug, Subcommand)]
pub enum Export {
    /// Write an output's rows as CSV (vectors spread over columns f0, f1, ...).
    Csv {
        /// A complete output folder (with a _manifest.json).
        #[arg(value_name = "DIR")]
        dataset: PathBuf,

        /// CSV file to write [default: standard output].
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,

        /// Export the errors table (path, kind, message) instead of the rows.
        #[arg(long)]
        errors: bool,
    },
}

/// Runs the command.
pub fn run(export: Export) -> anyhow::Result<ExitCode> {
    match export {
        Export::Csv {
            dataset,
            out,
            errors,
        } => {
            let ds = Dataset::open(&dataset)?;
            let kind = if errors {
                PartKind::Errors
            } else {
                PartKind::Features
            };
            let rows = match &out {
                Some(path) => {
                    let file = File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut w = BufWriter::new(file);
                    let rows = export_csv(&ds, kind, &mut w)?;
                    w.flush()
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    rows
                }
                None => export_csv(&ds, kind, std::io::stdout().lock())?,
            };
            if let Some(path) = out {
                eprintln!("wrote {rows} rows to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
