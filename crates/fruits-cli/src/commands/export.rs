//! `fruits export`: the same rows in other formats.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use fruits_location::is_s3_url;
use fruits_store::{Dataset, PartKind, export_csv};

use crate::args::Export;
use crate::context::Ctx;

/// Runs the command.
pub fn run(export: Export, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    match export {
        Export::Csv {
            dataset,
            out,
            errors,
        } => {
            let ds = Dataset::open(&ctx.open(&dataset)?)?;
            let kind = if errors {
                PartKind::Errors
            } else {
                PartKind::Features
            };
            let rows = match &out {
                Some(url) if is_s3_url(url) => {
                    // Opened (region guard, credentials) before the export runs.
                    let target = ctx.open(url)?;
                    let mut buffer = Vec::new();
                    let rows = export_csv(&ds, kind, &mut buffer)?;
                    target.put("", buffer.into())?;
                    rows
                }
                Some(path) => {
                    let file =
                        File::create(path).with_context(|| format!("cannot create {path}"))?;
                    let mut w = BufWriter::new(file);
                    let rows = export_csv(&ds, kind, &mut w)?;
                    w.flush().with_context(|| format!("cannot write {path}"))?;
                    rows
                }
                None => export_csv(&ds, kind, std::io::stdout().lock())?,
            };
            if let Some(path) = out {
                eprintln!("wrote {rows} rows to {path}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
