//! `fruits identify`: what fruit is in these photos.

use std::process::ExitCode;

use fruits_identify::{Level, Prediction};

use crate::args::IdentifyArgs;
use crate::context::Ctx;

/// Runs the command; exit status 3 when some photos could not be read.
pub fn run(args: IdentifyArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let identifier = args.classifier.load(ctx, args.max_megapixels)?;
    // Photos are read, decoded and answered a chunk at a time (memory stays
    // flat however many are given); one that cannot be read or decoded gets
    // its own error line and the exit status 3, the others their answers.
    let mut failed = 0;
    let mut json = Vec::new();
    let read = |i: usize| ctx.storage_get(&args.photos[i]);
    identifier.identify_each(args.photos.len(), args.top, read, |i, answer| {
        let photo = &args.photos[i];
        match answer {
            Ok(p) => {
                if args.json {
                    json.push(serde_json::json!({"photo": photo, "answer": p.answer, "fruit": p.fruit,
                                                 "level": p.level, "not_sure": p.not_sure, "top": p.top,
                                                 "width": p.width, "height": p.height}));
                } else {
                    print_answer(photo, &p);
                }
            }
            Err(e) => {
                failed += 1;
                if args.json {
                    json.push(serde_json::json!({"photo": photo, "error": e.to_string(), "kind": e.kind()}));
                } else {
                    eprintln!("{photo}: {e}");
                }
            }
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(if failed > 0 {
        ExitCode::from(crate::EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The answer for one photo, for people.
fn print_answer(photo: &str, p: &Prediction) {
    println!("{photo}:");
    match (&p.level, &p.fruit) {
        (Level::NotSure, _) => {
            println!("  not sure (confidence below the classifier's threshold); best guesses:");
        }
        (Level::Fruit, Some(f)) => {
            let variety = f
                .probably
                .info
                .as_ref()
                .map_or(f.probably.class.as_str(), |i| i.english.as_str());
            println!(
                "  {} / {} ({:.2}%) — probably {variety}; the varieties:",
                f.fruit,
                f.french,
                f.probability * 100.0
            );
        }
        _ => {}
    }
    for c in &p.top {
        let about = c
            .info
            .as_ref()
            .map(|i| {
                format!(
                    " - {} / {} ({}, {})",
                    i.english, i.french, i.botanical, i.family
                )
            })
            .unwrap_or_default();
        println!("  {:>6.2}%  {}{about}", c.probability * 100.0, c.class);
    }
    if let Some(info) = p.answer.as_ref().and_then(|c| c.info.as_ref()) {
        println!("  {}", info.description);
    }
}
