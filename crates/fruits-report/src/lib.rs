//! Charts for people, as PNG bytes (the caller stores them, locally or on S3):
//! cumulative explained variance, and images projected on two components
//! coloured by class.
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
const FONT_CANDIDATES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
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

/// Draws points `(x, y, class index)` coloured by class, one hue per class.
pub fn scatter_png(
    points: &[(f32, f32, usize)],
    n_classes: usize,
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
    let n = n_classes.max(1) as f64;
    chart
        .draw_series(points.iter().map(|&(x, y, c)| {
            // Golden-ratio hue steps keep neighbouring class indices far apart in colour.
            let hue = (c as f64 * 0.618_033_988_75) % 1.0;
            let light = 0.35 + 0.2 * ((c as f64 / n * 3.0) % 1.0);
            Circle::new((x, y), 2, HSLColor(hue, 0.85, light).filled())
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    drop(chart);
    drop(root);
    png(rgb, SCATTER_SIZE, what)
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
        let scatter = scatter_png(&points, 5, "test", ("pc1", "pc2")).expect("scatter");
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
