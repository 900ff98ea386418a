//! `fruits models`: the known image model files, the user's copies of them,
//! and downloads into the models cache.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fruits_model::catalog::{self, Fetched, FileState, KNOWN_MODELS};
use fruits_model::paths;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::{FetchArgs, Models};
use crate::context::Ctx;

/// Runs the command.
pub fn run(models: Models, _ctx: &Ctx) -> anyhow::Result<ExitCode> {
    match models {
        Models::List => list(),
        Models::Verify => verify(),
        Models::Fetch(args) => fetch(args),
    }
}

/// The folders every command searches for a bundle's image model.
fn search_dirs() -> Vec<PathBuf> {
    paths::model_search_dirs(&paths::models_dir())
}

fn list() -> anyhow::Result<ExitCode> {
    let dirs = search_dirs();
    for m in &KNOWN_MODELS {
        println!(
            "{} ({}, {} bytes, {})",
            m.name, m.precision, m.bytes, m.licence
        );
        println!("  sha256  {}", m.sha256);
        println!("  source  {}", m.source);
        println!("  made as {}", m.derivation);
        let found: Vec<_> = dirs
            .iter()
            .filter(|d| catalog::check(m, d) == FileState::Verified)
            .collect();
        match found.first() {
            Some(dir) => println!("  here    {}", dir.join(m.name).display()),
            None => println!("  here    not found (fruits models fetch {})", m.precision),
        }
    }
    println!(
        "searched: {}",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn verify() -> anyhow::Result<ExitCode> {
    let mut bad = 0;
    let mut good = 0;
    for dir in search_dirs() {
        for m in &KNOWN_MODELS {
            let path = dir.join(m.name);
            match catalog::check(m, &dir) {
                FileState::Missing => {}
                FileState::Verified => {
                    good += 1;
                    println!("ok        {}", path.display());
                }
                FileState::Mismatch { bytes, sha256 } => {
                    bad += 1;
                    println!(
                        "DIFFERENT {} ({bytes} bytes, sha256 {sha256}; pinned {} bytes, {})",
                        path.display(),
                        m.bytes,
                        m.sha256
                    );
                }
                FileState::Unreadable(why) => {
                    bad += 1;
                    println!("UNREADABLE {}: {why}", path.display());
                }
            }
        }
    }
    println!("{good} verified, {bad} differ from their pin");
    if bad > 0 {
        return Ok(ExitCode::FAILURE);
    }
    if good == 0 {
        eprintln!("no model file found: fruits models fetch --from URL");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn fetch(args: FetchArgs) -> anyhow::Result<ExitCode> {
    let chosen = catalog::select(&args.models)?;
    let from = args.from.ok_or(catalog::CatalogError::NoSource)?;
    let dir = catalog::fetch_dir().context("no models cache: set FRUITS_MODELS_DIR or HOME")?;
    let visible = !args.quiet && std::io::stderr().is_terminal();
    for m in chosen {
        let bar = ProgressBar::with_draw_target(Some(m.bytes), ProgressDrawTarget::stderr());
        if !visible {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(m.name);
        let got = catalog::fetch(m, &from, &dir, &mut |done, _| bar.set_position(done));
        bar.finish_and_clear();
        match got.with_context(|| format!("cannot fetch {}", m.name))? {
            Fetched::AlreadyThere(path) => println!("{}: already there", path.display()),
            Fetched::Downloaded(path) => {
                println!("{}: downloaded, sha256 verified", path.display())
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
