//! `fruits train`: a classifier from a features or reduced output.

use std::process::ExitCode;

use anyhow::Context;
use fruits_learn::{LearnError, TrainConfig};
use fruits_pipeline::PipelineError;
use fruits_pipeline::classify::{CrossValidation, PcaChoice, Source, train_sources};
use fruits_store::Dataset;

use crate::args::TrainArgs;
use crate::context::{Ctx, cancel_on_ctrl_c};

/// Runs the command.
pub fn run(args: TrainArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let out = ctx.open(&args.out)?;
    out.check_writable()?;
    let mut datasets = Vec::new();
    for (spec, real) in args
        .data
        .iter()
        .map(|d| (d, false))
        .chain(args.real.iter().map(|d| (d, true)))
    {
        let ds = Dataset::open(&ctx.open(spec)?).with_context(|| format!("cannot open {spec}"))?;
        datasets.push((ds, real));
    }
    let sources = Source::stored(&datasets);
    let choice = if let Some(dir) = &args.pca {
        let pca = fruits_pca::load(&ctx.open(dir)?)
            .with_context(|| format!("cannot load the PCA {dir}"))?;
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
    config.lbfgs.cancel = Some(cancel_on_ctrl_c(
        "stopping; nothing is saved and the classifier already there is kept",
    )?);
    let cv = args.cv.map(|folds| CrossValidation {
        folds,
        grid: args.cv_c.clone(),
    });
    let trained = train_sources(
        &sources,
        args.split.as_deref(),
        choice,
        &config,
        cv.as_ref(),
        !args.no_colour,
        !args.no_studio_head,
    );
    if let Err(PipelineError::Learn(LearnError::Cancelled)) = trained {
        eprintln!("interrupted: nothing was saved; {out} is as it was");
        return Ok(ExitCode::from(crate::EXIT_INTERRUPTED));
    }
    let mut classifier = trained.with_context(|| {
        let all: Vec<&str> = args
            .data
            .iter()
            .chain(&args.real)
            .map(String::as_str)
            .collect();
        format!("cannot train on {}", all.join(", "))
    })?;
    classifier.file.abstain_below = args.abstain_below.map(|p| p as f32);
    classifier
        .save(&out)
        .with_context(|| format!("cannot save the classifier to {out}"))?;
    let r = &classifier.file.training.report;
    let c = classifier.file.training.c;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&classifier.file.training)?
        );
    } else {
        if let Some(cv) = &classifier.file.training.cv {
            println!(
                "cross-validation, {} stratified folds of the {} training rows:",
                cv.folds, cv.rows
            );
            for score in &cv.scores {
                let mark = if score.c == cv.chosen_c {
                    "  <- kept"
                } else {
                    ""
                };
                println!(
                    "  C = {:<8} accuracy {:.2}% +- {:.2}{mark}",
                    score.c,
                    score.mean * 100.0,
                    score.std * 100.0
                );
            }
        }
        let mut pca = match &classifier.file.pca {
            Some(p) => format!(
                "PCA k = {} ({:.2}% of the variance)",
                p.k,
                p.variance_kept * 100.0
            ),
            None => "no PCA".into(),
        };
        if classifier.file.colour_bins > 0 {
            pca.push_str(&format!(" + {} colour values", classifier.file.colour_bins));
        }
        let augmented = classifier.file.training.augmented_rows;
        if augmented > 0 {
            pca.push_str(&format!("; {augmented} of the rows are augmented copies"));
        }
        let views = classifier.file.views.len();
        if views > 1 {
            pca.push_str(&format!(
                "; real photos seen in {views} views each, averaged when identifying"
            ));
        }
        println!(
            "trained on {} rows x {} features ({pca}), {} classes, C = {}: \
             {} L-BFGS iterations ({}), {:.1} s, training accuracy {:.2}%\nclassifier: {out}",
            r.rows,
            r.features,
            r.classes,
            c,
            r.iterations,
            r.stop_reason,
            r.seconds,
            r.train_accuracy * 100.0
        );
        if let Some(head) = &classifier.file.studio {
            println!(
                "studio head: trained on the {} studio photos alone; photos the gate gives a \
                 studio probability of {} or more go to it, the others to the head above",
                studio_photos(&classifier),
                head.min_studio
            );
        }
    }
    if !r.converged {
        eprintln!(
            "warning: L-BFGS stopped before converging ({}); raise --max-iter for a tighter fit",
            r.stop_reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Photos of the studio sources that are not augmented copies.
fn studio_photos(classifier: &fruits_bundle::Classifier) -> u64 {
    classifier
        .file
        .sources
        .iter()
        .filter(|s| !s.real)
        .map(|s| s.rows - s.augmented_rows)
        .sum()
}
