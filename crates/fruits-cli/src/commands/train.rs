//! `fruits train`: a classifier from a features or reduced output.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use fruits_classify::TrainConfig;
use fruits_pipeline::identify::{PcaChoice, train_dataset};
use fruits_store::Dataset;

use super::pca::KeepArgs;
use super::storage_args::open;

/// Flags of `fruits train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A features output (the classifier fits its own PCA on the training rows)
    /// or a reduced output (it reuses the PCA that made it): folder or s3:// prefix.
    #[arg(value_name = "DATA")]
    pub data: String,

    /// Folder or s3:// prefix for the classifier (classifier.json and its PCA).
    #[arg(long, short, value_name = "DIR")]
    pub out: String,

    /// Train on the rows of this split only (e.g. Training) [default: every row].
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,

    /// PCA kept when DATA holds features (ignored for a reduced output).
    #[command(flatten)]
    pub keep: KeepArgs,

    /// Train on the raw features, with no PCA.
    #[arg(long, conflicts_with_all = ["variance", "k", "pca"])]
    pub no_pca: bool,

    /// The PCA folder that made a reduced DATA [default: the `pca` folder beside
    /// it, as `fruits run` lays them out].
    #[arg(long, value_name = "DIR")]
    pub pca: Option<String>,

    /// Inverse L2 regularisation strength, as scikit-learn's C (larger: less penalty).
    #[arg(long = "c", default_value_t = 1.0, value_name = "C")]
    pub c: f64,

    /// Most L-BFGS iterations.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_iter: usize,

    /// Print the training report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The `pca` folder beside a `reduced` one (`out/reduced` -> `out/pca`).
fn sibling_pca(data: &str) -> Option<String> {
    let trimmed = data.trim_end_matches('/');
    let (parent, last) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    (last == "reduced").then(|| {
        if parent.is_empty() {
            "pca".to_string()
        } else {
            format!("{parent}/pca")
        }
    })
}

/// Runs the command.
pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let data = open(&args.data)?;
    let out = open(&args.out)?;
    out.check_writable()?;
    let ds = Dataset::open(&data)?;
    let reduced = !ds.manifest().meta.pca_fingerprint.is_empty();
    let choice = if reduced {
        let dir = args.pca.clone().or_else(|| sibling_pca(&args.data)).with_context(|| {
            format!(
                "{} is a reduced output: say which PCA made it with --pca DIR (or train on the features output)",
                args.data
            )
        })?;
        let pca = fruits_pca::load(&open(&dir)?)
            .with_context(|| format!("cannot load the PCA that made {}", args.data))?;
        PcaChoice::Given(pca.model)
    } else if args.no_pca {
        PcaChoice::None
    } else {
        PcaChoice::Fit(args.keep.keep())
    };
    let mut config = TrainConfig {
        c: args.c,
        ..TrainConfig::default()
    };
    config.lbfgs.max_iter = args.max_iter;
    let classifier = train_dataset(&ds, args.split.as_deref(), choice, &config)
        .with_context(|| format!("cannot train on {}", args.data))?;
    classifier
        .save(&out)
        .with_context(|| format!("cannot save the classifier to {out}"))?;
    let r = &classifier.file.training.report;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&classifier.file.training)?
        );
    } else {
        let pca = match &classifier.file.pca {
            Some(p) => format!(
                "PCA k = {} ({:.2}% of the variance)",
                p.k,
                p.variance_kept * 100.0
            ),
            None => "no PCA".into(),
        };
        println!(
            "trained on {} rows x {} features ({pca}), {} classes, C = {}: \
             {} L-BFGS iterations ({}), {:.1} s, training accuracy {:.2}%\nclassifier: {out}",
            r.rows,
            r.features,
            r.classes,
            args.c,
            r.iterations,
            r.stop_reason,
            r.seconds,
            r.train_accuracy * 100.0
        );
    }
    if !r.converged {
        eprintln!(
            "warning: L-BFGS stopped before converging ({}); raise --max-iter for a tighter fit",
            r.stop_reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::sibling_pca;

    #[test]
    fn finds_the_pca_beside_reduced() {
        assert_eq!(sibling_pca("out/reduced/").as_deref(), Some("out/pca"));
        assert_eq!(
            sibling_pca("s3://b/run/reduced").as_deref(),
            Some("s3://b/run/pca")
        );
        assert_eq!(sibling_pca("reduced").as_deref(), Some("pca"));
        assert_eq!(sibling_pca("out/features"), None);
    }
}
