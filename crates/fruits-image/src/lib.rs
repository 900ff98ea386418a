//! Decodes a photo and turns it into the tensor MobileNetV2 expects.
//!
//! The steps follow the torchvision convention documented with the models:
//! decode (JPEG EXIF orientation honoured; grey, CMYK, palette, 16-bit and alpha
//! images become 8-bit RGB), resize bilinearly to 224x224 (square images whole,
//! other shapes short side to 256 then a centre crop of 224), scale to [0, 1],
//! subtract the ImageNet mean, divide by its standard deviation, lay out as CHW
//! `f32`. A batch of these, one after another, is the NCHW model input.
//!
//! Dimensions are read from the header before any pixel is decoded, so a
//! decompression bomb is refused without allocating its pixels.

pub mod augment;
mod colour;
mod jpeg_scan;

pub use colour::colour_histogram;
pub use fruits_contract::{
    COLOUR_BINS, DEFAULT_VIEWS, IMAGENET_MEAN, IMAGENET_STD, Preprocessing, View,
};

use std::io::Cursor;

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

/// Why an image could not be turned into a tensor. Each variant has a stable
/// [`kind`](ImageError::kind) recorded in the errors table.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Zero bytes.
    #[error("the file is empty")]
    Empty,
    /// The bytes are not in a supported image format.
    #[error("not a supported image (JPEG, PNG, WebP or BMP): {0}")]
    UnknownFormat(String),
    /// Width x height exceeds the configured pixel budget.
    #[error(
        "image is {width}x{height} ({mpx:.1} megapixels), over the {limit:.1}-megapixel limit; \
         refusing to decode it"
    )]
    TooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// Megapixels of the image.
        mpx: f64,
        /// Megapixel limit in force.
        limit: f64,
    },
    /// The header was understood but the pixels could not be decoded (truncated or corrupt file).
    #[error("cannot decode the image: {0}")]
    Decode(String),
    /// The file ends before the image does (a partly downloaded or copied file).
    #[error("the file is truncated: {0}")]
    Truncated(String),
    /// Resizing failed; only happens for degenerate sizes such as 0 pixels wide.
    #[error("cannot resize the image: {0}")]
    Resize(String),
    /// One side is many times the other (a strip, not a photo): refused from
    /// the header, before decoding, since its centre crop would be a sliver.
    #[error(
        "image is {width}x{height}, one side {ratio:.0} times the other, over the limit of \
         {limit:.0}; refusing it (is it a photo?)"
    )]
    AspectRatio {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// Long side over short side.
        ratio: f64,
        /// The largest ratio accepted.
        limit: f64,
    },
}

impl ImageError {
    /// A short machine-readable name for the failure, stable across versions.
    pub fn kind(&self) -> &'static str {
        match self {
            ImageError::Empty => "empty",
            ImageError::UnknownFormat(_) => "unsupported_format",
            ImageError::TooLarge { .. } => "too_large",
            ImageError::Decode(_) => "decode",
            ImageError::Truncated(_) => "truncated",
            ImageError::Resize(_) => "resize",
            ImageError::AspectRatio { .. } => "aspect_ratio",
        }
    }
}

/// Default of [`DecodeLimits::max_pixels`] for batch featurisation, in megapixels.
pub const DEFAULT_MAX_MEGAPIXELS: f64 = 100.0;

/// Default of [`DecodeLimits::max_aspect_ratio`]: phone panoramas reach about
/// 9:1; beyond 16:1 an image is a strip whose centre crop shows almost nothing.
pub const DEFAULT_MAX_ASPECT_RATIO: f64 = 16.0;

/// What a decoder may be asked to do: guards, not part of the recipe (a
/// photo within the limits is prepared the same way whatever they are).
///
/// Memory for one photo is bounded by these alone: the decoded pixels (3 bytes
/// a pixel, at most `max_pixels`; the decoder's own buffers at most 8 bytes a
/// pixel) and the model input, whatever the photo's shape, since resizing
/// reads the crop window straight into a `size` x `size` image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeLimits {
    /// Images with more pixels than this are refused before decoding.
    pub max_pixels: u64,
    /// Images whose long side is more than this many times the short side are
    /// refused before decoding.
    pub max_aspect_ratio: f64,
}

impl DecodeLimits {
    /// Limits of `megapixels` million pixels (and the default aspect ratio).
    pub fn megapixels(megapixels: f64) -> DecodeLimits {
        DecodeLimits {
            max_pixels: (megapixels * 1e6) as u64,
            max_aspect_ratio: DEFAULT_MAX_ASPECT_RATIO,
        }
    }

    /// Bytes one photo may hold while decoded: the decoder's buffers (at most 8
    /// bytes a pixel, for 16-bit RGBA) or, past them, 64 MiB.
    pub fn max_decode_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(8).max(64 << 20)
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::megapixels(DEFAULT_MAX_MEGAPIXELS)
    }
}

/// Size of the image as decoded (after EXIF orientation), before resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Turns a photo into model input by the recipe: the decoding half of
/// [`Preprocessing`], which itself is only the recipe's fields (in
/// `fruits-contract`, shared with storage and classifiers).
pub trait Prepare {
    /// Decodes `bytes` once and writes one normalised CHW tensor per view of
    /// `views` into `out` (`tensor_len` values each, in order), and the
    /// colour descriptor of the whole photo into `colour` when given. The
    /// first view should be [`View::WHOLE`]: its tensor is then the one
    /// [`preprocess_into`](Self::preprocess_into) makes.
    fn preprocess_views(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
        views: &[View],
        out: &mut [f32],
        colour: Option<&mut [f32]>,
    ) -> Result<ImageInfo, ImageError>;

    /// Like [`preprocess_into`](Self::preprocess_into), also writing the
    /// photo's colour descriptor ([`colour_histogram`] of the model's input
    /// crop, [`COLOUR_BINS`] values) into `colour` when given: the decoded
    /// pixels are at hand, so it costs a pass over 224 x 224 pixels.
    fn preprocess_with_colour(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
        out: &mut [f32],
        colour: Option<&mut [f32]>,
    ) -> Result<ImageInfo, ImageError> {
        self.preprocess_views(bytes, limits, &[View::WHOLE], out, colour)
    }

    /// Decodes `bytes` and writes the normalised CHW tensor into `out`, which must
    /// hold `tensor_len` values.
    fn preprocess_into(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
        out: &mut [f32],
    ) -> Result<ImageInfo, ImageError> {
        self.preprocess_with_colour(bytes, limits, out, None)
    }

    /// Like [`preprocess_into`](Self::preprocess_into) but allocates the tensor.
    fn preprocess(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<(Vec<f32>, ImageInfo), ImageError>;
}

impl Prepare for Preprocessing {
    fn preprocess_views(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
        views: &[View],
        out: &mut [f32],
        colour: Option<&mut [f32]>,
    ) -> Result<ImageInfo, ImageError> {
        assert_eq!(
            out.len(),
            self.tensor_len() * views.len(),
            "output slots have the wrong size"
        );
        if let Some(bad) = views
            .iter()
            .find(|v| !(v.crop.is_finite() && v.crop > 0.0 && v.crop <= 1.0))
        {
            return Err(ImageError::Resize(format!(
                "a view keeps {} of each side; it must be in (0, 1]",
                bad.crop
            )));
        }
        let rgb = decode(bytes, limits)?;
        let info = ImageInfo {
            width: rgb.width(),
            height: rgb.height(),
        };
        let (w, h) = rgb.dimensions();
        let src = Image::from_vec_u8(w, h, rgb.into_raw(), PixelType::U8x3)
            .map_err(|e| ImageError::Resize(e.to_string()))?;
        let mut whole = None;
        for (view, slot) in views.iter().zip(out.chunks_exact_mut(self.tensor_len())) {
            let (cw, ch) = (
                f64::from(w) * f64::from(view.crop),
                f64::from(h) * f64::from(view.crop),
            );
            let window = ((f64::from(w) - cw) / 2.0, (f64::from(h) - ch) / 2.0, cw, ch);
            let mut resized = resize_window(self, &src, window)?;
            if view.mirror {
                mirror_rows(resized.buffer_mut(), self.size as usize);
            }
            normalise(self, resized.buffer(), slot);
            if *view == View::WHOLE && whole.is_none() {
                whole = Some(resized);
            }
        }
        if let Some(colour) = colour {
            let histogram = match &whole {
                Some(image) => colour_histogram(image.buffer()),
                None => colour_histogram(
                    resize_window(self, &src, (0.0, 0.0, f64::from(w), f64::from(h)))?.buffer(),
                ),
            };
            colour.copy_from_slice(&histogram);
        }
        Ok(info)
    }

    fn preprocess(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<(Vec<f32>, ImageInfo), ImageError> {
        let mut out = vec![0.0; self.tensor_len()];
        let info = self.preprocess_into(bytes, limits, &mut out)?;
        Ok((out, info))
    }
}

/// Resizes to `size` x `size`: square images whole, others as if the short
/// side went to `resize_short` and the centre `size` x `size` were cut out.
#[cfg(test)]
fn resize(p: &Preprocessing, rgb: RgbImage) -> Result<Image<'static>, ImageError> {
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err(ImageError::Resize(format!("image has no pixels ({w}x{h})")));
    }
    let src = Image::from_vec_u8(w, h, rgb.into_raw(), PixelType::U8x3)
        .map_err(|e| ImageError::Resize(e.to_string()))?;
    resize_window(p, &src, (0.0, 0.0, f64::from(w), f64::from(h)))
}

/// The recipe applied to the part `(left, top, width, height)` of `src`
/// as if it were the whole image: square windows whole, others short side
/// to `resize_short` then the centre crop. The crop is computed in the
/// source's coordinates and resized straight into the model's input, so
/// the work and memory are those of the output, whatever the shape
/// (resizing a 20000x1 strip's short side up first would take gigabytes).
fn resize_window(
    p: &Preprocessing,
    src: &Image<'_>,
    (x, y, w, h): (f64, f64, f64, f64),
) -> Result<Image<'static>, ImageError> {
    // The window's size in whole pixels, as an image of that size would have.
    let (wi, hi) = ((w.round() as u32).max(1), (h.round() as u32).max(1));
    let size = p.size;
    let (rw, rh) = if wi == hi {
        (size, size)
    } else if wi < hi {
        (p.resize_short, scaled(hi, p.resize_short, wi))
    } else {
        (scaled(wi, p.resize_short, hi), p.resize_short)
    };
    // The centre crop of the resized window, with its offset rounded like
    // torchvision's CenterCrop, mapped back onto the source.
    let left = ((rw.saturating_sub(size)) as f64 / 2.0).round();
    let top = ((rh.saturating_sub(size)) as f64 / 2.0).round();
    let (sx, sy) = (w / f64::from(rw), h / f64::from(rh));
    let mut dst = Image::new(size, size, PixelType::U8x3);
    let crop = (
        x + left * sx,
        y + top * sy,
        f64::from(size.min(rw)) * sx,
        f64::from(size.min(rh)) * sy,
    );
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    let whole = (0.0, 0.0, f64::from(src.width()), f64::from(src.height()));
    if crop != whole {
        options = options.crop(crop.0, crop.1, crop.2, crop.3);
    }
    Resizer::new()
        .resize(src, &mut dst, &options)
        .map_err(|e| ImageError::Resize(e.to_string()))?;
    Ok(dst)
}

/// Interleaved RGB8 (HWC) to normalised planar CHW f32.
fn normalise(p: &Preprocessing, hwc: &[u8], out: &mut [f32]) {
    // One lookup table per channel: 768 multiplies instead of three per pixel.
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, slot) in table.iter_mut().enumerate() {
            *slot = (v as f32 / 255.0 - p.mean[c]) / p.std[c];
        }
    }
    let plane = hwc.len() / 3;
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in hwc.chunks_exact(3).enumerate() {
        r[i] = lut[0][px[0] as usize];
        g[i] = lut[1][px[1] as usize];
        b[i] = lut[2][px[2] as usize];
    }
}

/// Decodes to 8-bit RGB, refusing images over the pixel budget before decoding.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let format = reader.format();
    match format {
        None => {
            return Err(ImageError::UnknownFormat(
                "the file does not start with a known image signature".into(),
            ));
        }
        // The JPEG decoder fills a missing tail with grey instead of failing, which
        // would turn half-copied files into silently wrong features.
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(ImageError::Truncated(
                "the JPEG data stops before its end-of-image marker".into(),
            ));
        }
        Some(_) => {}
    }
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    check_header(width, height, limits)?;
    // An end marker appended to half a file, or a header claiming more pixels
    // than the data holds, still decodes (the missing part grey) without this
    // walk. It runs after the pixel budget so a bomb is reported as one.
    if format == Some(image::ImageFormat::Jpeg)
        && jpeg_scan::scans_are_complete(bytes) == Some(false)
    {
        return Err(ImageError::Truncated(
            "the JPEG's image data stops before the image does".into(),
        ));
    }
    // Even within the pixel budget, bound what a decoder may allocate (16-bit RGBA
    // at the limit is 8 bytes a pixel) so a lying header cannot exhaust memory.
    let mut decoder_limits = Limits::default();
    decoder_limits.max_alloc = Some(limits.max_decode_bytes());
    decoder.set_limits(decoder_limits).map_err(classify)?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(classify)?;
    if let Some(orientation) = orientation {
        img.apply_orientation(orientation);
    }
    Ok(to_rgb8(img))
}

/// Refuses, from the header alone, an image over the pixel budget or of an
/// absurd shape.
fn check_header(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), ImageError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            mpx: pixels as f64 / 1e6,
            limit: limits.max_pixels as f64 / 1e6,
        });
    }
    let (long, short) = (width.max(height), width.min(height));
    if short == 0 {
        return Err(ImageError::Resize(format!(
            "image has no pixels ({width}x{height})"
        )));
    }
    let ratio = f64::from(long) / f64::from(short);
    if ratio > limits.max_aspect_ratio {
        return Err(ImageError::AspectRatio {
            width,
            height,
            ratio,
            limit: limits.max_aspect_ratio,
        });
    }
    Ok(())
}

/// True when the JPEG has an end-of-image marker (FF D9) after its last
/// start-of-scan marker (FF DA). Entropy-coded data cannot contain either
/// (0xFF is stuffed as FF 00), so a file cut inside the image data fails this,
/// even when an embedded EXIF thumbnail brings an earlier, complete pair.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let last_eoi = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    matches!((last_sos, last_eoi), (Some(sos), Some(eoi)) if eoi > sos)
}

/// Mirrors each row of an interleaved RGB8 image `side` pixels wide.
fn mirror_rows(hwc: &mut [u8], side: usize) {
    for row in hwc.chunks_exact_mut(side * 3) {
        for x in 0..side / 2 {
            let (a, b) = (x * 3, (side - 1 - x) * 3);
            for c in 0..3 {
                row.swap(a + c, b + c);
            }
        }
    }
}

/// `long * short_target / short`, rounded, at least 1.
fn scaled(long: u32, short_target: u32, short: u32) -> u32 {
    ((u64::from(long) * u64::from(short_target) + u64::from(short) / 2) / u64::from(short)).max(1)
        as u32
}

/// Converts any decoded colour type to 8-bit RGB. Transparent pixels are
/// composited on white, the Fruits-360 background, rather than dropping alpha:
/// fully transparent pixels often carry black or garbage colour values.
fn to_rgb8(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut raw = Vec::with_capacity(w as usize * h as usize * 3);
    for px in rgba.pixels() {
        let a = u32::from(px[3]);
        for c in 0..3 {
            let v = (u32::from(px[c]) * a + 255 * (255 - a) + 127) / 255;
            raw.push(v as u8);
        }
    }
    RgbImage::from_raw(w, h, raw).unwrap_or_else(|| RgbImage::new(w, h))
}

/// Sorts the image crate's errors into ours: format problems vs corrupt data.
fn classify(err: image::ImageError) -> ImageError {
    match err {
        image::ImageError::Unsupported(e) => ImageError::UnknownFormat(e.to_string()),
        image::ImageError::Limits(e) => {
            ImageError::Decode(format!("over the decoder's memory limit: {e}"))
        }
        other => ImageError::Decode(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, ImageFormat, Luma, Rgb, Rgba, RgbaImage};

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).expect("encode in memory");
        out.into_inner()
    }

    #[test]
    fn white_square_normalises_to_known_values() {
        let img = RgbImage::from_pixel(100, 100, Rgb([255, 255, 255]));
        let (t, info) = Preprocessing::default()
            .preprocess(
                &encode(img.into(), ImageFormat::Png),
                &DecodeLimits::default(),
            )
            .expect("preprocess");
        assert_eq!(
            info,
            ImageInfo {
                width: 100,
                height: 100
            }
        );
        assert_eq!(t.len(), 3 * 224 * 224);
        for c in 0..3 {
            let expected = (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            let plane = &t[c * 224 * 224..(c + 1) * 224 * 224];
            assert!(plane.iter().all(|v| (v - expected).abs() < 1e-6));
        }
    }

    #[test]
    fn channels_are_planar_rgb() {
        let img = RgbImage::from_pixel(50, 50, Rgb([255, 0, 0]));
        let (t, _) = Preprocessing::default()
            .preprocess(
                &encode(img.into(), ImageFormat::Png),
                &DecodeLimits::default(),
            )
            .expect("preprocess");
        let n = 224 * 224;
        assert!(t[0] > 2.0 && t[n] < -1.9 && t[2 * n] < -1.7);
    }

    #[test]
    fn non_square_is_cropped_from_the_centre() {
        // Left third black, middle white, right third black: after short side to 256
        // (width 768) and a centre crop of 224, only the white middle remains.
        let mut img = RgbImage::from_pixel(300, 100, Rgb([0, 0, 0]));
        for y in 0..100 {
            for x in 100..200 {
                img.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        let (t, info) = Preprocessing::default()
            .preprocess(
                &encode(img.into(), ImageFormat::Png),
                &DecodeLimits::default(),
            )
            .expect("preprocess");
        assert_eq!((info.width, info.height), (300, 100));
        let white = (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0];
        assert!(t[..224 * 224].iter().all(|v| (v - white).abs() < 1e-5));
    }

    #[test]
    fn grey_and_alpha_become_rgb() {
        let grey = GrayImage::from_pixel(10, 10, Luma([128]));
        let (t, _) = Preprocessing::default()
            .preprocess(
                &encode(grey.into(), ImageFormat::Png),
                &DecodeLimits::default(),
            )
            .expect("grey");
        let n = 224 * 224;
        let v = 128.0 / 255.0;
        assert!((t[0] - (v - IMAGENET_MEAN[0]) / IMAGENET_STD[0]).abs() < 1e-5);
        assert!((t[2 * n] - (v - IMAGENET_MEAN[2]) / IMAGENET_STD[2]).abs() < 1e-5);

        // Fully transparent black is composited to white.
        let clear = RgbaImage::from_pixel(10, 10, Rgba([0, 0, 0, 0]));
        let (t, _) = Preprocessing::default()
            .preprocess(
                &encode(clear.into(), ImageFormat::Png),
                &DecodeLimits::default(),
            )
            .expect("alpha");
        assert!((t[0] - (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]).abs() < 1e-5);
    }

    #[test]
    fn exif_orientation_is_applied() {
        // 40 wide, 20 high, left half red: EXIF orientation 6 means "rotate 90
        // degrees clockwise to display", so the decoded image is 20 wide, 40 high,
        // with the red half on top.
        let mut img = RgbImage::from_pixel(40, 20, Rgb([0, 0, 255]));
        for y in 0..20 {
            for x in 0..20 {
                img.put_pixel(x, y, Rgb([255, 0, 0]));
            }
        }
        let jpeg = encode(img.into(), ImageFormat::Jpeg);
        let tiff: [u8; 26] = [
            b'I', b'I', 0x2A, 0, 8, 0, 0, 0, // little-endian TIFF, first IFD at 8
            1, 0, // one entry
            0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0,
            0, // Orientation (0x0112), SHORT, 1, value 6
            0, 0, 0, 0, // no next IFD
        ];
        let mut app1 = vec![0xFF, 0xE1, 0, 34];
        app1.extend_from_slice(b"Exif\0\0");
        app1.extend_from_slice(&tiff);
        let mut with_exif = jpeg[..2].to_vec();
        with_exif.extend_from_slice(&app1);
        with_exif.extend_from_slice(&jpeg[2..]);

        let rgb = decode(&with_exif, &DecodeLimits::default()).expect("decode");
        assert_eq!(rgb.dimensions(), (20, 40));
        assert!(rgb.get_pixel(10, 5)[0] > 200, "top is red after rotation");
        assert!(
            rgb.get_pixel(10, 35)[2] > 200,
            "bottom is blue after rotation"
        );
    }

    #[test]
    fn palette_png_is_expanded() {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, 4, 4);
            enc.set_color(png::ColorType::Indexed);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_palette(vec![0, 255, 0, 255, 255, 255]);
            let mut w = enc.write_header().expect("header");
            w.write_image_data(&[0; 16]).expect("data");
        }
        let rgb = decode(&out, &DecodeLimits::default()).expect("palette");
        assert_eq!(rgb.get_pixel(0, 0).0, [0, 255, 0]);
    }

    #[test]
    fn sixteen_bit_png_is_accepted() {
        let img = image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(
            20,
            20,
            image::Rgb([65535u16, 0, 0]),
        );
        let (t, _) = Preprocessing::default()
            .preprocess(
                &encode(DynamicImage::ImageRgb16(img), ImageFormat::Png),
                &DecodeLimits::default(),
            )
            .expect("16-bit");
        assert!(t[0] > 2.0);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let p = Preprocessing::default();
        assert_eq!(
            p.preprocess(b"", &DecodeLimits::default())
                .expect_err("empty")
                .kind(),
            "empty"
        );
        assert_eq!(
            p.preprocess(b"hello, I am text", &DecodeLimits::default())
                .expect_err("text")
                .kind(),
            "unsupported_format"
        );
        let jpeg = encode(
            RgbImage::from_pixel(64, 64, Rgb([10, 200, 30])).into(),
            ImageFormat::Jpeg,
        );
        assert!(jpeg_is_complete(&jpeg));
        let err = p
            .preprocess(&jpeg[..jpeg.len() / 2], &DecodeLimits::default())
            .expect_err("truncated");
        assert_eq!(err.kind(), "truncated", "{err}");
        // Trailing bytes after the end-of-image marker are harmless.
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 100]);
        assert!(p.preprocess(&padded, &DecodeLimits::default()).is_ok());
    }

    #[test]
    fn recipes_compare_by_value_and_legacy_text_reads_back() {
        let default = Preprocessing::default();
        assert_eq!(
            Preprocessing::from_legacy(&default.describe()),
            Some(default.clone())
        );
        let other = Preprocessing {
            size: 192,
            ..default.clone()
        };
        assert_ne!(other, default);
        assert_eq!(Preprocessing::from_legacy(&other.describe()), None);
    }

    #[test]
    fn jpegs_missing_scan_data_are_truncated_even_with_an_end_marker() {
        let mut img = RgbImage::new(800, 600);
        for (x, y, px) in img.enumerate_pixels_mut() {
            *px = Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 256) as u8]);
        }
        let jpeg = encode(img.into(), ImageFormat::Jpeg);
        let limits = DecodeLimits::default();
        assert!(decode(&jpeg, &limits).is_ok(), "the whole file decodes");
        // Half the file, then an end-of-image marker: looks complete.
        let mut half = jpeg[..jpeg.len() / 2].to_vec();
        half.extend_from_slice(&[0xFF, 0xD9]);
        assert!(jpeg_is_complete(&half));
        let err = decode(&half, &limits).expect_err("half a JPEG");
        assert_eq!(err.kind(), "truncated", "{err}");
        // A small file whose header claims 9000x9000 pixels.
        let mut small = encode(RgbImage::new(16, 16).into(), ImageFormat::Jpeg);
        let sof = small
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("baseline SOF0");
        small[sof + 5..sof + 7].copy_from_slice(&9000u16.to_be_bytes());
        small[sof + 7..sof + 9].copy_from_slice(&9000u16.to_be_bytes());
        let err = decode(&small, &limits).expect_err("claims 9000x9000");
        assert_eq!(err.kind(), "truncated", "{err}");
    }

    #[test]
    fn strips_are_refused_from_the_header_and_resizing_is_bounded_by_the_output() {
        let p = Preprocessing::default();
        let strip = encode(RgbImage::new(100_000, 1).into(), ImageFormat::Png);
        assert!(strip.len() < 2000, "a strip is tiny: {} bytes", strip.len());
        let err = p
            .preprocess(&strip, &DecodeLimits::default())
            .expect_err("a strip is not a photo");
        assert_eq!(err.kind(), "aspect_ratio", "{err}");
        assert!(err.to_string().contains("100000x1"), "{err}");
        // With the ratio limit lifted, the strip is prepared from its crop
        // window straight into 224 x 224: resizing its short side to 256
        // first would take 100000 x 256 x 256 x 3 bytes (19.7 GB).
        let lifted = DecodeLimits {
            max_aspect_ratio: f64::INFINITY,
            ..DecodeLimits::default()
        };
        let (t, info) = p.preprocess(&strip, &lifted).expect("prepared");
        assert_eq!(
            (info.width, info.height, t.len()),
            (100_000, 1, 3 * 224 * 224)
        );
        // Just under the limit, a panorama is a photo.
        let wide = encode(RgbImage::new(1600, 100).into(), ImageFormat::Png);
        assert!(p.preprocess(&wide, &DecodeLimits::default()).is_ok());
    }

    #[test]
    fn the_crop_window_resize_matches_resizing_then_cropping() {
        // The recipe as it was computed before: short side to 256, then a
        // centre crop of the resized image.
        let mut img = RgbImage::new(301, 187);
        for (x, y, px) in img.enumerate_pixels_mut() {
            *px = Rgb([
                (x * 7 % 256) as u8,
                (y * 13 % 256) as u8,
                ((x + y) % 256) as u8,
            ]);
        }
        let pre = Preprocessing::default();
        let ours = resize(&pre, img.clone()).expect("resize");
        let (w, h) = img.dimensions();
        let (rw, rh) = (scaled(w, 256, h), 256);
        let src = Image::from_vec_u8(w, h, img.into_raw(), PixelType::U8x3).expect("src");
        let mut full = Image::new(rw, rh, PixelType::U8x3);
        Resizer::new()
            .resize(
                &src,
                &mut full,
                &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
            )
            .expect("full resize");
        let left = ((rw - 224) as f64 / 2.0).round() as usize;
        let top = ((rh - 224) as f64 / 2.0).round() as usize;
        let mut worst = 0i32;
        for y in 0..224 {
            for x in 0..224 * 3 {
                let a = i32::from(ours.buffer()[y * 224 * 3 + x]);
                let b = i32::from(full.buffer()[((y + top) * rw as usize + left) * 3 + x]);
                worst = worst.max((a - b).abs());
            }
        }
        assert!(worst <= 1, "largest difference {worst}");
    }

    #[test]
    fn views_are_the_whole_photo_its_mirror_and_centred_crops() {
        // A red square in the middle third of a white 300x200 photo.
        let mut img = RgbImage::from_pixel(300, 200, Rgb([255, 255, 255]));
        for y in 67..133 {
            for x in 100..200 {
                img.put_pixel(x, y, Rgb([255, 0, 0]));
            }
        }
        // Something on the left only, to see the mirror.
        for y in 0..200 {
            for x in 0..20 {
                img.put_pixel(x, y, Rgb([0, 0, 255]));
            }
        }
        let bytes = encode(img.into(), ImageFormat::Png);
        let p = Preprocessing::default();
        let limits = DecodeLimits::default();
        let n = p.tensor_len();
        let mut views = vec![0.0; n * DEFAULT_VIEWS.len()];
        let mut colour = vec![0.0; COLOUR_BINS];
        p.preprocess_views(
            &bytes,
            &limits,
            &DEFAULT_VIEWS,
            &mut views,
            Some(&mut colour),
        )
        .expect("views");
        // The whole view is exactly what preprocess_into makes, colour included.
        let mut whole = vec![0.0; n];
        let mut whole_colour = vec![0.0; COLOUR_BINS];
        p.preprocess_with_colour(&bytes, &limits, &mut whole, Some(&mut whole_colour))
            .expect("whole");
        assert_eq!(&views[..n], &whole[..]);
        assert_eq!(colour, whole_colour);
        // The mirror is the whole view flipped left to right.
        let side = 224;
        for c in 0..3 {
            for y in 0..side {
                for x in 0..side {
                    let a = views[c * side * side + y * side + x];
                    let b = views[n + c * side * side + y * side + (side - 1 - x)];
                    assert_eq!(a, b);
                }
            }
        }
        // The crops see the red square larger: more red in 60% than in the whole.
        let red = |t: &[f32]| {
            let g = &t[side * side..2 * side * side];
            g.iter().filter(|v| **v < -1.5).count()
        };
        let (whole_red, crop_red) = (red(&views[..n]), red(&views[4 * n..5 * n]));
        assert!(crop_red > 2 * whole_red, "{whole_red} vs {crop_red}");
    }

    #[test]
    fn huge_header_is_refused_before_decoding() {
        // A PNG whose IHDR claims 50000 x 50000 pixels: 2.5 gigapixels.
        let mut png = encode(RgbImage::new(1, 1).into(), ImageFormat::Png);
        png[16..20].copy_from_slice(&50_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&50_000u32.to_be_bytes());
        // Keep the header's CRC valid so the decoder gets as far as reading the size.
        let crc = crc32fast::hash(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = Preprocessing::default()
            .preprocess(&png, &DecodeLimits::default())
            .expect_err("bomb");
        assert_eq!(err.kind(), "too_large", "{err}");
        assert!(err.to_string().contains("50000x50000"), "{err}");
    }
}
