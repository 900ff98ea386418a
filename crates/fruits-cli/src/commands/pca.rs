//! `fruits pca`: fit, transform, show.

use std::process::ExitCode;

use anyhow::Context;
use fruits_pca::{Keep, ModelFile};
use fruits_pipeline::reduce;
use fruits_store::{Dataset, Location};

use crate::args::Pca;
use crate::context::Ctx;

/// Runs a PCA subcommand.
pub fn run(pca: Pca, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    match pca {
        Pca::Fit(args) => {
            let out = ctx.open(&args.out)?;
            let features = ctx.open(&args.features)?;
            let ds = Dataset::open(&features)?;
            let (fitted, warning) = reduce::fit_and_save(&ds, args.keep.keep(), &out)
                .with_context(|| format!("cannot fit a PCA on {features}"))?;
            if let Some(w) = warning {
                eprintln!("warning: plots not written: {w}");
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&fit_summary(&fitted))?);
            } else {
                println!("{}", describe_fit(&fitted, &out));
            }
        }
        Pca::Transform(args) => {
            let features = ctx.open(&args.features)?;
            let out = ctx.open(&args.out)?;
            let ds = Dataset::open(&features)?;
            let model = fruits_pca::load(&ctx.open(&args.model)?)?;
            let rows = reduce::transform_dataset(&ds, &model, &out)
                .with_context(|| format!("cannot transform {features}"))?;
            eprintln!("wrote {rows} rows of {} components to {out}", model.model.k);
        }
        Pca::Show(args) => {
            let model = fruits_pca::load(&ctx.open(&args.model)?)?;
            print!("{}", table(&model, args.all));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn fit_summary(m: &ModelFile) -> serde_json::Value {
    serde_json::json!({
        "n": m.model.n,
        "d": m.model.d,
        "k": m.model.k,
        "variance_kept": m.model.variance_kept(),
        "keep": m.model.keep,
    })
}

/// The human summary of a fit.
pub fn describe_fit(m: &ModelFile, out: &Location) -> String {
    let target = match m.model.keep {
        Keep::Variance(v) => format!("target {:.1}% of the variance", v * 100.0),
        Keep::K(k) => format!("k = {k} requested"),
    };
    format!(
        "n = {} rows, d = {} features -> k = {} components ({}), keeping {:.2}% of the variance\nmodel: {}",
        m.model.n,
        m.model.d,
        m.model.k,
        target,
        m.model.variance_kept() * 100.0,
        out
    )
}

/// The explained-variance table.
pub fn table(m: &ModelFile, all: bool) -> String {
    let rows = if all { m.model.d } else { m.model.k };
    let mut text = format!(
        "PCA of {} rows x {} features, k = {} ({:.2}% of the variance)\n{:>9}  {:>14}  {:>9}  {:>10}\n",
        m.model.n,
        m.model.d,
        m.model.k,
        m.model.variance_kept() * 100.0,
        "component",
        "variance",
        "ratio",
        "cumulative"
    );
    let mut cumulative = 0.0;
    for i in 0..rows {
        cumulative += m.model.explained_variance_ratio[i];
        text.push_str(&format!(
            "{:>9}  {:>14.6}  {:>8.4}%  {:>9.4}%{}\n",
            i + 1,
            m.model.explained_variance[i],
            m.model.explained_variance_ratio[i] * 100.0,
            cumulative * 100.0,
            if i + 1 == m.model.k && all {
                "  <- k"
            } else {
                ""
            }
        ));
    }
    text
}
