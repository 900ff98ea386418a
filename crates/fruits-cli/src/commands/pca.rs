//! `fruits pca`: fit, transform, show.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use fruits_pca::{Keep, ModelFile};
use fruits_pipeline::reduce;
use fruits_store::{Dataset, Location};

use super::storage_args::open;

/// PCA subcommands.
#[derive(Debug, Subcommand)]
pub enum Pca {
    /// Fit a PCA on a features output in one streaming pass; write the model.
    Fit(FitArgs),
    /// Project a features output with a fitted PCA into a new output (column `pca`).
    Transform(TransformArgs),
    /// Print a fitted PCA's explained-variance table.
    Show(ShowArgs),
}

/// How many components to keep (one of the two).
#[derive(Debug, Clone, Args)]
#[group(multiple = false)]
pub struct KeepArgs {
    /// Keep the fewest components whose cumulative explained variance reaches
    /// this share, in (0, 1] [default: 0.95].
    #[arg(long, value_name = "SHARE")]
    pub variance: Option<f64>,
    /// Keep exactly K components.
    #[arg(long, value_name = "K")]
    pub k: Option<usize>,
}

impl KeepArgs {
    /// The choice, 95% of the variance by default.
    pub fn keep(&self) -> Keep {
        match (self.k, self.variance) {
            (Some(k), _) => Keep::K(k),
            (None, Some(v)) => Keep::Variance(v),
            (None, None) => Keep::Variance(0.95),
        }
    }
}

/// Flags of `fruits pca fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// A features output (from `fruits featurize`): folder or s3:// prefix.
    #[arg(value_name = "FEATURES")]
    pub features: String,
    /// Folder or s3:// prefix for the model (pca.json, components.parquet, plots).
    #[arg(long, short, value_name = "DIR")]
    pub out: String,
    #[command(flatten)]
    pub keep: KeepArgs,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `fruits pca transform`.
#[derive(Debug, Args)]
pub struct TransformArgs {
    /// A features output (from `fruits featurize`): folder or s3:// prefix.
    #[arg(value_name = "FEATURES")]
    pub features: String,
    /// A fitted PCA folder (from `fruits pca fit`).
    #[arg(long, value_name = "DIR")]
    pub model: String,
    /// Output folder or s3:// prefix for the reduced rows.
    #[arg(long, short, value_name = "DIR")]
    pub out: String,
}

/// Flags of `fruits pca show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A fitted PCA folder or s3:// prefix.
    #[arg(value_name = "DIR")]
    pub model: String,
    /// List every component, not only the kept ones.
    #[arg(long)]
    pub all: bool,
}

/// Runs a PCA subcommand.
pub fn run(pca: Pca) -> anyhow::Result<ExitCode> {
    match pca {
        Pca::Fit(args) => {
            let out = open(&args.out)?;
            let fitted = fit(&open(&args.features)?, &out, args.keep.keep())?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&fit_summary(&fitted))?);
            } else {
                println!("{}", describe_fit(&fitted, &out));
            }
        }
        Pca::Transform(args) => {
            transform(
                &open(&args.features)?,
                &open(&args.model)?,
                &open(&args.out)?,
                false,
            )?;
        }
        Pca::Show(args) => {
            let model = fruits_pca::load(&open(&args.model)?)?;
            print!("{}", table(&model, args.all));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Fits and saves; returns what was saved.
pub fn fit(features: &Location, out: &Location, keep: Keep) -> anyhow::Result<ModelFile> {
    let ds = Dataset::open(features)?;
    // Checked before the pass over the data, which may be long.
    out.check_writable()?;
    let (model, pass) = reduce::fit_dataset(&ds, keep)
        .with_context(|| format!("cannot fit a PCA on {features}"))?;
    let sha = ds.manifest().meta.model_sha256.clone();
    fruits_pca::save(out, &model, &sha, &features.to_string())?;
    // Plots help people judge k; a missing font must not cost the fitted model.
    if let Err(e) = plots(&pass, ds.manifest().rows, &model, out) {
        eprintln!("warning: plots not written: {e:#}");
    }
    Ok(fruits_pca::load(out)?)
}

fn plots(
    pass: &reduce::Pass,
    rows: u64,
    model: &fruits_pca::PcaModel,
    out: &Location,
) -> anyhow::Result<()> {
    let sample = if model.k >= 2 {
        reduce::first_two_components(pass, model)?
    } else {
        reduce::PlotSample::default()
    };
    fruits_pipeline::plots::write_pca_plots(out, model, &sample.points, &sample.labels, rows)?;
    Ok(())
}

/// Transforms and, unless `quiet`, prints a one-line summary.
pub fn transform(
    features: &Location,
    model: &Location,
    out: &Location,
    quiet: bool,
) -> anyhow::Result<u64> {
    let ds = Dataset::open(features)?;
    let model = fruits_pca::load(model)?;
    let rows = reduce::transform_dataset(&ds, &model, out)
        .with_context(|| format!("cannot transform {features}"))?;
    if !quiet {
        eprintln!("wrote {rows} rows of {} components to {out}", model.model.k);
    }
    Ok(rows)
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
