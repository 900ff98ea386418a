//! `fruits evaluate`: how good a classifier is on a split, and what it earns.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use fruits_classify::Classifier;
use fruits_classify::metrics::NetRevenue;
use fruits_pipeline::identify::{Evaluation, evaluate_dataset};
use fruits_store::Dataset;

use super::storage_args::open;

/// Flags of `fruits evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A classifier folder or s3:// prefix (from `fruits train`).
    #[arg(value_name = "CLASSIFIER")]
    pub classifier: String,

    /// The features (or matching reduced) output to score it on.
    #[arg(long, value_name = "DATA")]
    pub on: String,

    /// Score the rows of this split only (e.g. Test) [default: every row].
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,

    /// What answers are worth, as TOML: gain_correct, cost_wrong, cost_abstain,
    /// and [classes."Name"] overrides [default: 1, 5, 0.5].
    #[arg(long, value_name = "FILE")]
    pub revenue: Option<String>,

    /// Where to write report.json, per_class.csv, confusion.png and revenue.png
    /// [default: CLASSIFIER/evaluation-SPLIT].
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<String>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let revenue = match &args.revenue {
        Some(spec) => {
            let bytes = open(spec)?
                .get("")
                .with_context(|| format!("cannot read {spec}"))?;
            let text = String::from_utf8(bytes.to_vec())
                .with_context(|| format!("{spec} is not UTF-8 text"))?;
            NetRevenue::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("{spec} is not a valid revenue file: {e}"))?
        }
        None => NetRevenue::default(),
    };
    let home = open(&args.classifier)?;
    let classifier = Classifier::load(&home)
        .with_context(|| format!("cannot load the classifier {}", args.classifier))?;
    let out = match &args.out {
        Some(spec) => open(spec)?,
        None => home.child(&format!(
            "evaluation-{}",
            args.split.as_deref().unwrap_or("all")
        )),
    };
    out.check_writable()?;
    let ds = Dataset::open(&open(&args.on)?)?;
    let eval = evaluate_dataset(&classifier, &ds, args.split.as_deref(), &revenue)
        .with_context(|| format!("cannot evaluate on {}", args.on))?;
    write_outputs(&eval, classifier.classes(), &out)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&eval)?);
    } else {
        println!("{}", describe(&eval));
        println!("report: {}", out.describe("report.json"));
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

fn write_outputs(
    eval: &Evaluation,
    classes: &[String],
    out: &fruits_store::Location,
) -> anyhow::Result<()> {
    out.put("report.json", serde_json::to_vec_pretty(eval)?.into())?;
    let mut csv = String::from("class,support,precision,recall,f1\n");
    for (class, s) in &eval.per_class {
        csv.push_str(&format!(
            "\"{}\",{},{:.6},{:.6},{:.6}\n",
            class.replace('"', "\"\""),
            s.support,
            s.precision,
            s.recall,
            s.f1
        ));
    }
    out.put("per_class.csv", csv.into_bytes().into())?;
    // Charts help people; a missing font must not cost the report.
    let title = format!(
        "{} photos{}: accuracy {:.2}%, macro-F1 {:.4} (rows: true class, columns: predicted)",
        eval.rows,
        if eval.split.is_empty() {
            String::new()
        } else {
            format!(" of {}", eval.split)
        },
        eval.accuracy * 100.0,
        eval.macro_f1
    );
    let charts = fruits_report::confusion_png(&eval.confusion.counts, classes, &title)
        .and_then(|png| {
            out.put("confusion.png", png.into())
                .map_err(|e| fruits_report::ReportError::Draw {
                    what: "confusion matrix",
                    message: e.to_string(),
                })
        })
        .and_then(|()| {
            let curve: Vec<(f64, f64)> = eval
                .revenue_curve
                .iter()
                .map(|p| (p.threshold, p.net_per_photo))
                .collect();
            let best = (eval.revenue_best.threshold, eval.revenue_best.net_per_photo);
            fruits_report::revenue_png(&curve, best)
        });
    match charts {
        Ok(png) => out.put("revenue.png", png.into())?,
        Err(e) => eprintln!("warning: charts not written: {e}"),
    }
    Ok(())
}

/// The human summary.
pub fn describe(e: &Evaluation) -> String {
    let mut text = format!(
        "{} rows{}: accuracy {:.2}%, macro-F1 {:.4}\n",
        e.rows,
        if e.split.is_empty() {
            String::new()
        } else {
            format!(" of split {}", e.split)
        },
        e.accuracy * 100.0,
        e.macro_f1
    );
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
    let mut worst: Vec<&(String, fruits_classify::metrics::ClassScores)> =
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
