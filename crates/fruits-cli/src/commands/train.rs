//! `fruits train`: a classifier from a features or reduced output.

use std::process::ExitCode;

use anyhow::Context;
use fruits_classify::{ClassifyError, TrainConfig};
use fruits_pipeline::PipelineError;
use fruits_pipeline::classify::{CrossValidation, PcaChoice, train_dataset};
use fruits_store::Dataset;

use crate::args::TrainArgs;
use crate::context::{Ctx, cancel_on_ctrl_c};

/// Runs the command.
pub fn run(args: TrainArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let data = ctx.open(&args.data)?;
    let out = ctx.open(&args.out)?;
    out.check_writable()?;
    let ds = Dataset::open(&data)?;
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
    let trained = train_dataset(
        &ds,
        args.split.as_deref(),
        choice,
        &config,
        cv.as_ref(),
        !args.no_colour,
        !args.no_studio_head,
    );
    if let Err(PipelineError::Classify(ClassifyError::Cancelled)) = trained {
        eprintln!("interrupted: nothing was saved; {out} is as it was");
        return Ok(ExitCode::from(crate::EXIT_INTERRUPTED));
    }
    let mut classifier = trained.with_context(|| format!("cannot train on {}", args.data))?;
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
                "studio head: trained on the {} original photos alone; photos the gate gives a \
                 studio probability of {} or more go to it, the others to the head above",
                r.rows as u64 - augmented,
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
