//! The feature contract: how a photo became a vector (image model, output,
//! preprocessing recipe, views, colour bins), recorded by every output and
//! classifier bundle and checked by whatever reads them.
//!
//! It sits below the image, storage and classifier crates so that each of
//! them, and the online path (`fruits-serve`), agrees on one definition
//! without linking the others.

use serde::{Deserialize, Serialize};

/// Values of the colour descriptor stored beside each vector: 8 hues x 4
/// saturations x 4 values (`fruits_image::colour_histogram`).
pub const COLOUR_BINS: usize = 128;

/// ImageNet channel means (RGB), on the [0, 1] scale.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB), on the [0, 1] scale.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The preprocessing recipe: how a photo becomes the model's input. Recorded
/// in every output's metadata and classifier bundle; two recipes are
/// compatible exactly when they are equal (`==`), so features made one way are
/// never mixed with, or classified as, features made another way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Side of the square model input (224 for MobileNetV2).
    pub size: u32,
    /// Short side a non-square image is resized to before the centre crop (256).
    pub resize_short: u32,
    /// Channel means subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Channel standard deviations divided by after subtracting the mean.
    pub std: [f32; 3],
}

impl Default for Preprocessing {
    fn default() -> Self {
        Preprocessing {
            size: 224,
            resize_short: 256,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

impl Preprocessing {
    /// Number of `f32` values in one image's tensor (3 x size x size).
    pub fn tensor_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// A one-line description for people. Outputs written before version 0.2
    /// recorded this text instead of the recipe's fields; [`Preprocessing::from_legacy`]
    /// reads it back.
    pub fn describe(&self) -> String {
        format!(
            "rgb8; square: bilinear resize to {s}x{s}; other: bilinear short side to {r}, centre crop {s}; \
             /255; mean {m:?}; std {d:?}; NCHW f32; alpha composited on white; EXIF orientation applied",
            s = self.size,
            r = self.resize_short,
            m = self.mean,
            d = self.std
        )
    }

    /// The recipe an older output described with [`describe`](Self::describe)'s
    /// text: every such output was made with the default recipe, so that text
    /// (and only it) reads back as the default.
    pub fn from_legacy(text: &str) -> Option<Preprocessing> {
        let default = Preprocessing::default();
        (text == default.describe()).then_some(default)
    }
}

/// One way of looking at a photo: the centred part of it that keeps `crop`
/// of each side (1.0: the whole photo), mirrored left to right or not, then
/// prepared by the usual recipe. Several views of one photo, each through the
/// image model, are averaged by the identifier (test-time augmentation): a
/// fruit that fills a third of a shop photo is seen closer in the crops.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Share of each side kept, centred, in (0, 1].
    pub crop: f32,
    /// Mirrored left to right.
    pub mirror: bool,
}

impl View {
    /// The whole photo, as `fruits_image::Prepare::preprocess_into` prepares it.
    pub const WHOLE: View = View {
        crop: 1.0,
        mirror: false,
    };
}

/// The views the identifier averages: the whole photo and its centred 80%
/// and 60%, each also mirrored. Measured on real shop photos (docs/identify.md):
/// 88% of the fruits named right against 82% from the whole photo alone.
pub const DEFAULT_VIEWS: [View; 6] = [
    View::WHOLE,
    View {
        crop: 1.0,
        mirror: true,
    },
    View {
        crop: 0.8,
        mirror: false,
    },
    View {
        crop: 0.8,
        mirror: true,
    },
    View {
        crop: 0.6,
        mirror: false,
    },
    View {
        crop: 0.6,
        mirror: true,
    },
];

/// The contract between the vectors of a dataset and whatever reads them: which
/// image model made them (by sha256), from which output, how long they are,
/// and how the photos were prepared. A features output records it; a
/// classifier bundle records the one it was trained on and refuses others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Hex sha256 of the image model file.
    pub model_sha256: String,
    /// Where the model was loaded from, for people; the hash is what identifies it.
    pub model_source: String,
    /// Name of the stored vector: the model output (`features`), or `pca` for a
    /// reduced output.
    pub feature_output: String,
    /// Length of each stored vector.
    pub feature_dim: usize,
    /// Side of the square model input.
    pub input_size: u32,
    /// How photos were prepared.
    #[serde(with = "preprocessing_field")]
    pub preprocessing: Preprocessing,
    /// Length of the `colour` descriptor stored beside each vector; 0 for
    /// outputs written before it existed (they have no `colour` column).
    #[serde(default)]
    pub colour_bins: usize,
}

impl FeatureSpec {
    /// True when vectors described by `other` were made the same way as these:
    /// same model weights, output, length, input size and preprocessing (where
    /// the model was loaded from does not matter).
    pub fn same_features(&self, other: &FeatureSpec) -> bool {
        self.model_sha256 == other.model_sha256
            && self.feature_output == other.feature_output
            && self.feature_dim == other.feature_dim
            && self.input_size == other.input_size
            && self.preprocessing == other.preprocessing
            && self.colour_bins == other.colour_bins
    }
}

/// The `preprocessing` field: the recipe's fields, or (outputs written before
/// 0.2) the text of `Preprocessing::describe`.
mod preprocessing_field {
    use crate::Preprocessing;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(p: &Preprocessing, s: S) -> Result<S::Ok, S::Error> {
        p.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Preprocessing, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Recipe(Preprocessing),
            Legacy(String),
        }
        match Either::deserialize(d)? {
            Either::Recipe(p) => Ok(p),
            Either::Legacy(text) => Preprocessing::from_legacy(&text).ok_or_else(|| {
                serde::de::Error::custom(format!("unknown preprocessing description {text:?}"))
            }),
        }
    }
}
