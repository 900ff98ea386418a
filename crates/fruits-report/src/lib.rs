//! Charts for people, as PNG bytes (the caller stores them, locally or on S3):
//! cumulative explained variance, images projected on two components
//! coloured by class, a classifier's confusion matrix and net-revenue curve.
//!
//! Text is rendered by plotters' pure-Rust `ab_glyph` backend, from a TrueType
//! font on disk (`FRUITS_FONT`, else DejaVu Sans where Debian's
//! `fonts-dejavu-core` puts it), so no fontconfig or freetype is needed.

use std::path::PathBuf;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No usable font.
    #[error(
        "no font to draw chart text: {0}; install Debian's fonts-dejavu-core or set FRUITS_FONT to a .ttf file"
    )]
    NoFont(String),
    /// Drawing or encoding failed.
    #[error("cannot draw the {what}: {message}")]
    Draw {
        /// The chart being drawn.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Nothing to draw.
    #[error("nothing to plot: {0}")]
    Empty(&'static str),
}

/// Font files tried in order when `FRUITS_FONT` is not set.
const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    // Amazon Linux 2023 (EMR 7) and Fedora: `dnf install dejavu-sans-fonts`.
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
];

static FONT: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the font once per process.
fn ensure_font() -> Result<(), ReportError> {
    FONT.get_or_init(|| {
        let path = std::env::var_os("FRUITS_FONT")
            .map(PathBuf::from)
            .or_else(|| {
                FONT_CANDIDATES
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.is_file())
            })
            .ok_or_else(|| format!("none of {FONT_CANDIDATES:?} exists"))?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // plotters keeps fonts for the life of the process; so does this leak, once.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(ReportError::NoFont)
}

fn draw_err(what: &'static str) -> impl Fn(String) -> ReportError {
    move |message| ReportError::Draw { what, message }
}

/// Encodes an RGB buffer as PNG.
fn png(rgb: Vec<u8>, (w, h): (u32, u32), what: &'static str) -> Result<Vec<u8>, ReportError> {
    let err = draw_err(what);
    let image = image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| err("the pixel buffer has the wrong size".into()))?;
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| err(e.to_string()))?;
    Ok(out.into_inner())
}

const VARIANCE_SIZE: (u32, u32) = (960, 600);
const SCATTER_SIZE: (u32, u32) = (960, 800);

/// Draws the cumulative explained-variance ratio against the number of
/// components, with the chosen `k` (and the variance `target`, if any) marked.
pub fn cumulative_variance_png(
    ratios: &[f64],
    k: usize,
    target: Option<f64>,
) -> Result<Vec<u8>, ReportError> {
    if ratios.is_empty() {
        return Err(ReportError::Empty("no explained-variance ratios"));
    }
    ensure_font()?;
    let what = "explained-variance chart";
    let err = draw_err(what);
    let mut rgb = vec![0u8; (VARIANCE_SIZE.0 * VARIANCE_SIZE.1 * 3) as usize];
    let root = BitMapBackend::with_buffer(&mut rgb, VARIANCE_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut cumulative = Vec::with_capacity(ratios.len());
    let mut sum = 0.0;
    for (i, r) in ratios.iter().enumerate() {
        sum += r;
        cumulative.push((i + 1, sum));
    }
    let kept = cumulative
        .get(k.saturating_sub(1))
        .map(|p| p.1)
        .unwrap_or(0.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Cumulative explained variance: k = {k} keeps {:.1}%",
                kept * 100.0
            ),
            ("sans-serif", 26),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0usize..ratios.len(), 0.0f64..1.0)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("number of components k")
        .y_desc("cumulative explained variance ratio")
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            cumulative.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| err(e.to_string()))?
        .label("cumulative ratio")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new([(k, 0.0), (k, 1.0)], RED.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label(format!("chosen k = {k}"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    if let Some(t) = target {
        chart
            .draw_series(LineSeries::new([(0, t), (ratios.len(), t)], BLACK.mix(0.5)))
            .map_err(|e| err(e.to_string()))?
            .label(format!("target {:.0}%", t * 100.0))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.5)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    drop(chart);
    drop(root);
    png(rgb, VARIANCE_SIZE, what)
}

/// Draws points `(x, y, class index)` coloured by class, one hue per class
/// named in `classes`, with a legend naming them; points whose index is past
/// `classes` are drawn light grey as "other classes" (a legend of 141 names
/// would hide the plot: callers name the largest few).
pub fn scatter_png(
    points: &[(f32, f32, usize)],
    classes: &[String],
    title: &str,
    axes: (&str, &str),
) -> Result<Vec<u8>, ReportError> {
    if points.is_empty() {
        return Err(ReportError::Empty("no points"));
    }
    ensure_font()?;
    let what = "projection chart";
    let err = draw_err(what);
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for &(x, y, _) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let pad = |a: f32, b: f32| ((b - a) * 0.05).max(1e-3);
    let (px, py) = (pad(x0, x1), pad(y0, y1));
    let mut rgb = vec![0u8; (SCATTER_SIZE.0 * SCATTER_SIZE.1 * 3) as usize];
    let root = BitMapBackend::with_buffer(&mut rgb, SCATTER_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(axes.0)
        .y_desc(axes.1)
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let n = classes.len().max(1) as f64;
    // Golden-ratio hue steps keep neighbouring class indices far apart in colour.
    let colour = |c: usize| {
        let hue = (c as f64 * 0.618_033_988_75) % 1.0;
        let light = 0.35 + 0.2 * ((c as f64 / n * 3.0) % 1.0);
        HSLColor(hue, 0.85, light)
    };
    let grey = RGBColor(200, 200, 200);
    let others: Vec<(f32, f32)> = points
        .iter()
        .filter(|p| p.2 >= classes.len())
        .map(|&(x, y, _)| (x, y))
        .collect();
    if !others.is_empty() {
        chart
            .draw_series(others.iter().map(|&xy| Circle::new(xy, 2, grey.filled())))
            .map_err(|e| err(e.to_string()))?
            .label("other classes")
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, grey.filled()));
    }
    for (c, name) in classes.iter().enumerate() {
        let style = colour(c).filled();
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.2 == c)
                    .map(|&(x, y, _)| Circle::new((x, y), 2, style)),
            )
            .map_err(|e| err(e.to_string()))?
            .label(name.as_str())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    drop(chart);
    drop(root);
    png(rgb, SCATTER_SIZE, what)
}

/// Draws a confusion matrix: true class down, predicted class across, each
/// cell shaded by its share of the true class's photos (blue on the diagonal,
/// red off it, so the mistakes stand out), with the class names on both axes.
/// `counts` is `classes x classes`, row-major.
pub fn confusion_png(
    counts: &[u64],
    classes: &[String],
    title: &str,
) -> Result<Vec<u8>, ReportError> {
    let k = classes.len();
    if k == 0 || counts.len() != k * k {
        return Err(ReportError::Empty("a confusion matrix needs k x k counts"));
    }
    ensure_font()?;
    let what = "confusion matrix";
    let err = draw_err(what);
    // Cells of at least 8 px; room on the left and top for the names.
    let cell = (1200 / k as u32).clamp(8, 40);
    let label_px = 190;
    let side = label_px + cell * k as u32 + 20;
    let size = (side, side + 40);
    let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
    let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    root.draw(&Text::new(
        title.to_string(),
        (10, 8),
        ("sans-serif", 22).into_font(),
    ))
    .map_err(|e| err(e.to_string()))?;
    let font_px = (cell as f64 * 0.9).clamp(7.0, 14.0);
    let (x0, y0) = (label_px as i32, label_px as i32 + 40);
    for (i, name) in classes.iter().enumerate() {
        let at = (i as u32 * cell + cell / 2) as i32;
        let short: String = name.chars().take(26).collect();
        let style = ("sans-serif", font_px).into_font().color(&BLACK);
        root.draw(&Text::new(
            short.clone(),
            (4, y0 + at - font_px as i32 / 2),
            style.clone(),
        ))
        .map_err(|e| err(e.to_string()))?;
        let vertical = ("sans-serif", font_px)
            .into_font()
            .transform(FontTransform::Rotate270)
            .color(&BLACK);
        root.draw(&Text::new(
            short,
            (x0 + at - font_px as i32 / 2, y0 - 4),
            vertical,
        ))
        .map_err(|e| err(e.to_string()))?;
    }
    for t in 0..k {
        let row = &counts[t * k..(t + 1) * k];
        let total = row.iter().sum::<u64>().max(1) as f64;
        for (p, &c) in row.iter().enumerate() {
            let (x, y) = (x0 + (p as u32 * cell) as i32, y0 + (t as u32 * cell) as i32);
            let colour = if c == 0 {
                RGBColor(250, 250, 250)
            } else {
                // Even one mistake must be visible: shares start at a quarter tint.
                let share = 0.25 + 0.75 * (c as f64 / total);
                let fade = |full: u8| (255.0 - (255.0 - full as f64) * share) as u8;
                if t == p {
                    RGBColor(fade(20), fade(70), fade(180))
                } else {
                    RGBColor(fade(220), fade(30), fade(30))
                }
            };
            root.draw(&Rectangle::new(
                [(x, y), (x + cell as i32 - 1, y + cell as i32 - 1)],
                colour.filled(),
            ))
            .map_err(|e| err(e.to_string()))?;
        }
    }
    root.present().map_err(|e| err(e.to_string()))?;
    drop(root);
    png(rgb, size, what)
}

/// Draws net revenue per photo against the abstain threshold, marking the best one.
pub fn revenue_png(curve: &[(f64, f64)], best: (f64, f64)) -> Result<Vec<u8>, ReportError> {
    if curve.is_empty() {
        return Err(ReportError::Empty("no revenue points"));
    }
    ensure_font()?;
    let what = "net-revenue chart";
    let err = draw_err(what);
    let (lo, hi) = curve.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut rgb = vec![0u8; (VARIANCE_SIZE.0 * VARIANCE_SIZE.1 * 3) as usize];
    let root = BitMapBackend::with_buffer(&mut rgb, VARIANCE_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Net revenue per photo: best {:.3} when answers below {:.2} confidence say \"not sure\"",
                best.1, best.0
            ),
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0f64..1.0, (lo - pad)..(hi + pad))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("abstain threshold (confidence)")
        .y_desc("net revenue per photo")
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(curve.iter().copied(), BLUE.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series([Circle::new(best, 6, RED.filled())])
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    drop(chart);
    drop(root);
    png(rgb, VARIANCE_SIZE, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_charts_as_png() {
        ensure_font().expect("a font (.ci/run installs Debian's fonts-dejavu-core)");
        let variance =
            cumulative_variance_png(&[0.5, 0.3, 0.15, 0.05], 3, Some(0.9)).expect("variance");
        let points: Vec<(f32, f32, usize)> = (0..300)
            .map(|i| (i as f32, (i % 7) as f32, i % 5))
            .collect();
        let names: Vec<String> = (0..3).map(|i| format!("class {i}")).collect();
        let scatter = scatter_png(&points, &names, "test", ("pc1", "pc2")).expect("scatter");
        let names: Vec<String> = (0..3).map(|i| format!("class {i}")).collect();
        let confusion =
            confusion_png(&[5, 1, 0, 0, 6, 0, 2, 0, 4], &names, "test").expect("confusion");
        assert_eq!(&confusion[1..4], b"PNG");
        assert!(confusion_png(&[1, 2], &names, "bad").is_err());
        let revenue = revenue_png(&[(0.0, 0.5), (0.5, 0.8), (1.0, -0.5)], (0.5, 0.8)).expect("rev");
        assert_eq!(&revenue[1..4], b"PNG");
        for (bytes, size) in [(variance, VARIANCE_SIZE), (scatter, SCATTER_SIZE)] {
            assert_eq!(&bytes[1..4], b"PNG");
            assert!(
                bytes.len() > 5_000,
                "suspiciously small: {} bytes",
                bytes.len()
            );
            let decoded = image::load_from_memory(&bytes).expect("decodes");
            assert_eq!((decoded.width(), decoded.height()), size);
        }
        assert!(matches!(
            cumulative_variance_png(&[], 1, None),
            Err(ReportError::Empty(_))
        ));
    }
}
