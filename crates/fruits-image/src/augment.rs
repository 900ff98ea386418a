//! Photos "in the wild" made from studio photos: the same fruit on another
//! background, turned, framed, lit and compressed otherwise. Each copy is drawn
//! from a seed, so a run is reproducible.

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage, imageops};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

use crate::{DecodeLimits, ImageError, decode};

/// Why a copy could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    /// The photo itself cannot be decoded.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The copy could not be encoded as JPEG.
    #[error("cannot encode the copy as JPEG: {0}")]
    Encode(String),
}

/// How far the transformations of one copy may go.
#[derive(Debug, Clone, PartialEq)]
pub struct AugmentSettings {
    /// Largest rotation, in degrees, either way.
    pub max_rotation: f32,
    /// Smallest share of the side kept by the random crop (then resized back).
    pub min_crop: f32,
    /// Largest brightness change, as a share of the range, either way.
    pub max_brightness: f32,
    /// Largest contrast change, in percent, either way.
    pub max_contrast: f32,
    /// Largest hue rotation, in degrees, either way.
    pub max_hue: i32,
    /// Largest Gaussian blur sigma (applied to half the copies).
    pub max_blur: f32,
    /// JPEG quality range of the re-compression.
    pub jpeg_quality: (u8, u8),
    /// A pixel this close to white on every channel is studio background.
    pub background_min: u8,
}

impl Default for AugmentSettings {
    fn default() -> Self {
        // The ranges issue 17 measured with: rotation up to 40 degrees,
        // lighting jitter, some blur, JPEG quality about 70.
        AugmentSettings {
            max_rotation: 40.0,
            min_crop: 0.8,
            max_brightness: 0.15,
            max_contrast: 20.0,
            max_hue: 8,
            max_blur: 1.5,
            jpeg_quality: (60, 85),
            background_min: 235,
        }
    }
}

/// Makes one transformed copy of the photo `bytes`, drawn from `seed`, as JPEG:
/// the white studio background (when one is detectable: 5% to 95% of the
/// pixels) and the corners the rotation uncovers become a random coloured
/// texture; then rotation, crop and resize back, brightness / contrast / hue
/// jitter, blur, JPEG re-compression. The same bytes and seed give the same copy.
pub fn augment(
    bytes: &[u8],
    limits: &DecodeLimits,
    seed: u64,
    settings: &AugmentSettings,
) -> Result<Vec<u8>, AugmentError> {
    let photo = decode(bytes, limits)?;
    let (w, h) = photo.dimensions();
    let mut rng = Pcg64::seed_from_u64(seed);
    let texture = texture(w, h, &mut rng);

    // Background: the studio white, where there is some to find.
    let is_background = |p: &Rgb<u8>| p.0.iter().all(|&c| c >= settings.background_min);
    let white = photo.pixels().filter(|p| is_background(p)).count() as f64;
    let share = white / (w as f64 * h as f64).max(1.0);
    let replace_background = (0.05..=0.95).contains(&share);

    let angle = rng.random_range(-settings.max_rotation..=settings.max_rotation);
    let rotated = rotate(&photo, angle.to_radians());
    let mut out = RgbImage::new(w, h);
    for (x, y, px) in out.enumerate_pixels_mut() {
        *px = match rotated.get_pixel(x, y) {
            // Uncovered by the rotation, or background: the texture.
            None => *texture.get_pixel(x, y),
            Some(p) if replace_background && is_background(&p) => *texture.get_pixel(x, y),
            Some(p) => p,
        };
    }

    // Framing: a random crop, resized back to the photo's size.
    let keep = rng.random_range(settings.min_crop..=1.0);
    let (cw, ch) = (
        ((w as f32 * keep) as u32).max(1),
        ((h as f32 * keep) as u32).max(1),
    );
    let (cx, cy) = (rng.random_range(0..=w - cw), rng.random_range(0..=h - ch));
    let cropped = imageops::crop_imm(&out, cx, cy, cw, ch).to_image();
    let mut out = imageops::resize(&cropped, w, h, imageops::FilterType::Triangle);

    // Light and colour.
    let brightness =
        (rng.random_range(-settings.max_brightness..=settings.max_brightness) * 255.0) as i32;
    out = imageops::brighten(&out, brightness);
    out = imageops::contrast(
        &out,
        rng.random_range(-settings.max_contrast..=settings.max_contrast),
    );
    out = imageops::huerotate(&out, rng.random_range(-settings.max_hue..=settings.max_hue));
    if rng.random_bool(0.5) {
        out = imageops::blur(&out, rng.random_range(0.3..=settings.max_blur));
    }

    let quality = rng.random_range(settings.jpeg_quality.0..=settings.jpeg_quality.1);
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, quality)
        .encode_image(&out)
        .map_err(|e| AugmentError::Encode(e.to_string()))?;
    Ok(jpeg)
}

/// A smooth random colour field with grain: a table, a wall, grass, cloth.
fn texture(w: u32, h: u32, rng: &mut Pcg64) -> RgbImage {
    let mut corner = || -> [f32; 3] { std::array::from_fn(|_| rng.random_range(20.0..180.0)) };
    let (a, b, c, d) = (corner(), corner(), corner(), corner());
    let grain = rng.random_range(0.0..20.0f32);
    let mut noise = Pcg64::seed_from_u64(rng.random());
    RgbImage::from_fn(w, h, |x, y| {
        let (u, v) = (x as f32 / w.max(1) as f32, y as f32 / h.max(1) as f32);
        let n = noise.random_range(-1.0..=1.0f32) * grain;
        Rgb(std::array::from_fn(|i| {
            let top = a[i] * (1.0 - u) + b[i] * u;
            let bottom = c[i] * (1.0 - u) + d[i] * u;
            (top * (1.0 - v) + bottom * v + n).clamp(0.0, 255.0) as u8
        }))
    })
}

/// The photo turned by `angle` radians about its centre (bilinear), same
/// size; `None` where the turned photo does not reach. Written here rather
/// than taken from imageproc: twenty lines against a crate and its
/// dependencies in every build.
struct Rotated<'a> {
    photo: &'a RgbImage,
    sin: f32,
    cos: f32,
}

impl Rotated<'_> {
    fn get_pixel(&self, x: u32, y: u32) -> Option<Rgb<u8>> {
        let (w, h) = self.photo.dimensions();
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        // Inverse mapping: where in the photo this output pixel comes from.
        let sx = self.cos * dx + self.sin * dy + cx - 0.5;
        let sy = -self.sin * dx + self.cos * dy + cy - 0.5;
        if sx < 0.0 || sy < 0.0 || sx > (w - 1) as f32 || sy > (h - 1) as f32 {
            return None;
        }
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let p = |x: u32, y: u32, i: usize| self.photo.get_pixel(x, y).0[i] as f32;
        Some(Rgb(std::array::from_fn(|i| {
            let top = p(x0, y0, i) * (1.0 - fx) + p(x1, y0, i) * fx;
            let bottom = p(x0, y1, i) * (1.0 - fx) + p(x1, y1, i) * fx;
            (top * (1.0 - fy) + bottom * fy).round() as u8
        })))
    }
}

fn rotate(photo: &RgbImage, angle: f32) -> Rotated<'_> {
    Rotated {
        photo,
        sin: angle.sin(),
        cos: angle.cos(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 60x60 studio photo: a red disc on white.
    fn studio_photo() -> Vec<u8> {
        let img = RgbImage::from_fn(60, 60, |x, y| {
            let (dx, dy) = (x as f32 - 30.0, y as f32 - 30.0);
            if dx * dx + dy * dy < 400.0 {
                Rgb([200, 30, 30])
            } else {
                Rgb([255, 255, 255])
            }
        });
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("png");
        png
    }

    #[test]
    fn a_seed_gives_the_same_copy_and_another_seed_another() {
        let photo = studio_photo();
        let s = AugmentSettings::default();
        let limits = DecodeLimits::default();
        let a = augment(&photo, &limits, 7, &s).expect("copy");
        let b = augment(&photo, &limits, 7, &s).expect("copy");
        let c = augment(&photo, &limits, 8, &s).expect("copy");
        assert_eq!(a, b, "reproducible");
        assert_ne!(a, c, "another draw");
        let decoded = decode(&a, &limits).expect("a JPEG");
        assert_eq!(decoded.dimensions(), (60, 60));
    }

    #[test]
    fn the_studio_background_is_replaced() {
        let photo = studio_photo();
        let limits = DecodeLimits::default();
        for seed in 0..5 {
            let copy = decode(
                &augment(&photo, &limits, seed, &AugmentSettings::default()).expect("copy"),
                &limits,
            )
            .expect("decode");
            let white = copy
                .pixels()
                .filter(|p| p.0.iter().all(|&c| c >= 235))
                .count();
            assert!(
                white < 60 * 60 / 20,
                "seed {seed}: {white} white pixels left"
            );
        }
    }

    #[test]
    fn a_broken_photo_is_an_error() {
        let err = augment(
            b"not a photo",
            &DecodeLimits::default(),
            1,
            &AugmentSettings::default(),
        );
        assert!(err.is_err());
    }
}
