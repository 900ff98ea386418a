//! `fruits forget`: erase photos' rows from outputs (GDPR).

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::Context;

use crate::args::ForgetArgs;
use crate::context::Ctx;

/// Runs the command: 0 when every path was found somewhere, 3 when some
/// were in no output (said on standard error).
pub fn run(args: ForgetArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut paths: HashSet<String> = args.paths.iter().cloned().collect();
    if let Some(file) = &args.paths_from {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        paths.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    if paths.is_empty() {
        anyhow::bail!("no paths to forget: give them after OUTPUT or with --paths-from FILE");
    }
    let root = ctx.open(&args.output)?;
    let done = fruits_store::forget_in(&root, &paths)
        .with_context(|| format!("forget in {}", args.output))?;
    let mut found: HashSet<&str> = HashSet::new();
    for (output, report) in &done {
        eprintln!(
            "{output}: removed {} rows and {} errors rows from {} parts; record {}",
            report.rows,
            report.error_rows,
            report.parts.len(),
            output.describe(&report.record)
        );
        found.extend(report.found.iter().map(String::as_str));
    }
    let missing = paths.len() - found.len();
    if missing > 0 {
        eprintln!("{missing} of the {} paths were in no output", paths.len());
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
