//! `fruits evaluate`: how good a classifier is on a split, and what it earns.

use std::process::ExitCode;

use anyhow::Context;
use fruits_bundle::Classifier;
use fruits_learn::metrics::NetRevenue;
use fruits_pipeline::classify::{Evaluation, evaluate_dataset};
use fruits_pipeline::report::{REPORT_JSON, write_evaluation};
use fruits_store::Dataset;

use crate::args::EvaluateArgs;
use crate::context::Ctx;

/// Runs the command.
pub fn run(args: EvaluateArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let revenue = match &args.revenue {
        Some(spec) => {
            let bytes = ctx
                .open(spec)?
                .get("")
                .with_context(|| format!("cannot read {spec}"))?;
            let text = String::from_utf8(bytes.to_vec())
                .with_context(|| format!("{spec} is not UTF-8 text"))?;
            NetRevenue::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("{spec} is not a valid revenue file: {e}"))?
        }
        None => NetRevenue::default(),
    };
    let home = ctx.open(&args.classifier)?;
    let mut classifier = Classifier::load(&home)
        .with_context(|| format!("cannot load the classifier {}", args.classifier))?;
    let out = match &args.out {
        Some(spec) => ctx.open(spec)?,
        None => home.child(&format!(
            "evaluation-{}",
            args.split.as_deref().unwrap_or("all")
        )),
    };
    out.check_writable()?;
    let ds = Dataset::open(&ctx.open(&args.on)?)?;
    let eval = evaluate_dataset(&classifier, &ds, args.split.as_deref(), &revenue)
        .with_context(|| format!("cannot evaluate on {}", args.on))?;
    for warning in write_evaluation(&eval, classifier.classes(), &out)? {
        eprintln!("warning: chart not written: {warning}");
    }
    if args.save_threshold {
        let threshold = eval.revenue_best.threshold as f32;
        classifier.file.abstain_below = Some(threshold);
        classifier
            .save(&home)
            .with_context(|| format!("cannot save the threshold into {home}"))?;
        eprintln!(
            "saved: below confidence {threshold:.2}, {} answers \"not sure\"",
            args.classifier
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&eval)?);
    } else {
        println!("{}", describe(&eval));
        println!("report: {}", out.describe(REPORT_JSON));
    }
    if !eval.unknown_labels.is_empty() {
        eprintln!(
            "warning: {} label(s) the classifier does not know were not scored: {}",
            eval.unknown_labels.len(),
            eval.unknown_labels.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The human summary.
pub fn describe(e: &Evaluation) -> String {
    let mut text = if e.rows == 0 {
        "no photo is of a class the classifier knows: scored by fruit only\n".to_string()
    } else {
        format!("{}\n", e.headline("rows"))
    };
    if e.views > 1 {
        text.push_str(&format!(
            "each photo scored on its {} views, averaged, as `identify` answers it\n",
            e.views
        ));
    }
    if let Some(f) = &e.fruit {
        text.push_str(&format!(
            "right fruit (whatever the variety), {} photos: top-1 {:.2}%, top-5 {:.2}%; \
             answering at confidence >= {:.2}: {:.2}% answered, {:.2}% right when answering\n",
            f.rows,
            f.accuracy * 100.0,
            f.top5 * 100.0,
            f.threshold,
            f.answered * 100.0,
            f.right_when_answered * 100.0
        ));
        if !f.top_confusions.is_empty() {
            let shown: Vec<String> = f
                .top_confusions
                .iter()
                .take(5)
                .map(|(t, p, c)| format!("{t} -> {p} ({c})"))
                .collect();
            text.push_str(&format!(
                "  most frequent wrong fruits: {}\n",
                shown.join(", ")
            ));
        }
    }
    if let Some(studio) = e.studio_rows {
        text.push_str(&format!(
            "{studio} of the {} rows went to the studio head (seen as taken in the studio), \
             the others to the main head\n",
            e.rows
        ));
    }
    if e.rows == 0 {
        return text.trim_end().to_string();
    }
    let v = &e.revenue_values;
    let a = &e.revenue_always_answer;
    let b = &e.revenue_best;
    text.push_str(&format!(
        "net revenue (gain {} per right answer, cost {} per wrong one, {} per \"not sure\"):\n  \
         always answer: {:.1} ({:.4} per photo; {} right, {} wrong)\n  \
         best: answer only at confidence >= {:.2}: {:.1} ({:.4} per photo; {} right, {} wrong, {} not sure)\n",
        v.gain_correct,
        v.cost_wrong,
        v.cost_abstain,
        a.net,
        a.net_per_photo,
        a.correct,
        a.wrong,
        b.threshold,
        b.net,
        b.net_per_photo,
        b.correct,
        b.wrong,
        b.abstained
    ));
    if !e.top_confusions.is_empty() {
        text.push_str("most frequent mistakes (true -> predicted):\n");
        for (t, p, c) in e.top_confusions.iter().take(5) {
            text.push_str(&format!("  {c:>4}  {t} -> {p}\n"));
        }
    }
    let mut worst: Vec<&(String, fruits_learn::metrics::ClassScores)> =
        e.per_class.iter().filter(|(_, s)| s.support > 0).collect();
    worst.sort_by(|a, b| a.1.f1.total_cmp(&b.1.f1));
    text.push_str("lowest F1:\n");
    for (class, s) in worst.iter().take(5) {
        text.push_str(&format!(
            "  {:.3}  {class} (precision {:.3}, recall {:.3}, {} photos)\n",
            s.f1, s.precision, s.recall, s.support
        ));
    }
    text.trim_end().to_string()
}
