//! `fruits identify`: what fruit is in these photos.

use std::process::ExitCode;

use anyhow::Context;

use crate::args::IdentifyArgs;
use crate::context::Ctx;

/// Runs the command; exit status 3 when some photos could not be read.
pub fn run(args: IdentifyArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let identifier = args.classifier.load(ctx, args.max_megapixels)?;
    let mut bytes = Vec::with_capacity(args.photos.len());
    for photo in &args.photos {
        bytes.push(
            ctx.open(photo)?
                .get("")
                .with_context(|| format!("cannot read {photo}"))?,
        );
    }
    let views: Vec<&[u8]> = bytes.iter().map(|b| b.as_ref()).collect();
    let answers = identifier.identify(&views, args.top.max(1))?;
    let mut failed = 0;
    let mut json = Vec::new();
    for (photo, answer) in args.photos.iter().zip(answers) {
        match answer {
            Ok(p) => {
                if args.json {
                    json.push(serde_json::json!({"photo": photo, "answer": p.answer, "not_sure": p.not_sure,
                                                 "top": p.top, "width": p.width, "height": p.height}));
                } else {
                    println!("{photo}:");
                    if p.not_sure {
                        println!(
                            "  not sure (confidence below the classifier's threshold); best guesses:"
                        );
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
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(if failed > 0 {
        ExitCode::from(crate::EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
