//! Identifies the fruit in a photo, one request at a time: the online path the
//! HTTP service, `fruits identify` and the Python bindings share.
//!
//! ```text
//! photo bytes --decode + resize (fruits-image, the bundle's recipe)--> tensor
//!   --image model (fruits-model)--> features --classifier bundle (PCA, softmax)--> probabilities
//!   --> top-k classes with what the app knows about each fruit
//! ```
//!
//! [`Identifier`] holds the loaded pieces and checks at construction that they
//! agree: the image model's sha256, output and input size and the preprocessing
//! recipe must be those the classifier was trained on. [`load`] finds the image
//! model a bundle needs wherever it runs (by sha256 in the models folder).

mod load;

use fruits_bundle::{BundleError, Classifier, InputKind};
use fruits_catalogue::{Catalogue, CatalogueError, FruitInfo, FruitLevel};
use fruits_image::{DecodeLimits, ImageError, ImageInfo, Prepare, Preprocessing, View};
use fruits_model::{FeatureModel, ModelError};
use serde::Serialize;

pub use load::{LoadOptions, load, with_classifier};

/// Answers given per photo unless asked otherwise.
pub const DEFAULT_TOP: usize = 5;
/// Most answers per photo anyone may ask for (more than any class list).
pub const MAX_TOP: usize = 1000;
/// Photos read, decoded and run through the model together when many are
/// identified at once ([`Identifier::identify_each`]): memory holds one such
/// chunk (16 photos' bytes and tensors), however many photos are given.
pub const CHUNK: usize = 16;

/// Why one photo got no answer: it could not be read, or not decoded. The
/// other photos of the same call are answered.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    /// The file or object could not be read (missing, a folder, a FIFO, denied).
    #[error(transparent)]
    Read(#[from] fruits_location::StorageError),
    /// The bytes are not a photo we can decode.
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl PhotoError {
    /// A short machine-readable name, as the errors table's kinds.
    pub fn kind(&self) -> &'static str {
        use fruits_location::StorageError as S;
        match self {
            PhotoError::Read(S::NotFound { .. }) => "not_found",
            PhotoError::Read(S::NotAFile { .. }) => "not_a_file",
            PhotoError::Read(_) => "io",
            PhotoError::Image(e) => e.kind(),
        }
    }
}

/// What can go wrong setting up or running identification (one bad photo is
/// not among them: it gets its own [`ImageError`]).
#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    /// The classifier bundle is unreadable or inconsistent, or could not
    /// score a photo.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The fruit catalogue does not describe the classifier's classes.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// The image model could not be loaded or run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The bundle or model could not be read from storage.
    #[error(transparent)]
    Storage(#[from] fruits_location::StorageError),
    /// No file with the image model's sha256 was found where we looked.
    #[error(
        "the classifier needs the image model with sha256 {sha256} (trained with {recorded}); \
         none found at {}", tried.join(", ")
    )]
    ImageModelNotFound {
        /// The sha256 the classifier was trained with.
        sha256: String,
        /// The path the bundle records.
        recorded: String,
        /// Every place looked at.
        tried: Vec<String>,
    },
    /// The image model given is not the one the classifier was trained with.
    #[error(
        "the image model {source_path} (sha256 {sha256}) is not the one the classifier was trained with: \
         {expected_source} (sha256 {expected_sha256})"
    )]
    WrongImageModel {
        /// The model given.
        source_path: String,
        /// Its sha256.
        sha256: String,
        /// The model recorded in the bundle.
        expected_source: String,
        /// Its sha256.
        expected_sha256: String,
    },
    /// The model's feature output is not the one the classifier takes.
    #[error(
        "the classifier expects output {expected_output:?} of {expected_dim} values, \
         the model gives {output:?} of {dim}"
    )]
    WrongOutput {
        /// The output the classifier expects.
        expected_output: String,
        /// Its length.
        expected_dim: usize,
        /// The model's output.
        output: String,
        /// Its length.
        dim: usize,
    },
    /// The photos would be prepared otherwise than the classifier's training photos.
    #[error(
        "the classifier was trained on images prepared as \"{}\", not \"{}\"",
        expected.describe(),
        given.describe()
    )]
    WrongPreprocessing {
        /// The recipe recorded in the bundle.
        expected: Box<Preprocessing>,
        /// The recipe given.
        given: Box<Preprocessing>,
    },
    /// Zero answers, or more than [`MAX_TOP`], asked for each photo.
    #[error("top must be 1 to {MAX_TOP}, got {0}")]
    BadTop(usize),
    /// The model returned fewer rows than photos given (a runtime bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Refuses `top` outside 1..=[`MAX_TOP`].
fn check_top(top: usize) -> Result<(), IdentifyError> {
    if top == 0 || top > MAX_TOP {
        return Err(IdentifyError::BadTop(top));
    }
    Ok(())
}

/// One candidate answer for a photo.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The class name.
    pub class: String,
    /// Its probability.
    pub probability: f32,
    /// What to tell the user about it, when the catalogue knows the class.
    pub info: Option<FruitInfo>,
}

/// The fruit a photo shows, whatever the variety.
#[derive(Debug, Clone, Serialize)]
pub struct FruitAnswer {
    /// The fruit in English ("Apple").
    pub fruit: String,
    /// The fruit in French ("Pomme").
    pub french: String,
    /// Its probability: the sum of its varieties' probabilities.
    pub probability: f32,
    /// Its most probable variety (class): "probably Pink Lady".
    pub probably: Candidate,
}

/// How far an answer goes: the variety, the fruit only, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The class (variety) is as probable as the threshold asks.
    Variety,
    /// The varieties are uncertain but the fruit is not: the app names the
    /// fruit ("Apple — probably Pink Lady").
    Fruit,
    /// Not even the fruit is sure: the app says "not sure" and shows guesses.
    NotSure,
}

/// The answer for one photo.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// What to tell the user: the most probable class, or nothing when the
    /// classifier is not sure of the variety (its confidence is below the
    /// bundle's threshold).
    pub answer: Option<Candidate>,
    /// The most probable fruit, whatever the variety, with its most probable
    /// variety; absent when not even the fruit is sure.
    pub fruit: Option<FruitAnswer>,
    /// How far the answer goes.
    pub level: Level,
    /// True when the confidence is below the classifier's threshold: the app
    /// says "not sure" and shows `top` as guesses, never a confident name.
    pub not_sure: bool,
    /// The most probable classes, best first (the runners-up when not sure).
    pub top: Vec<Candidate>,
    /// Width of the photo as decoded.
    pub width: u32,
    /// Height of the photo as decoded.
    pub height: u32,
}

/// A photo decoded and prepared for the model: its tensors (one per view the
/// classifier averages), its size as decoded, and its colour descriptor.
pub type Prepared = (Vec<f32>, ImageInfo, Vec<f32>);

/// From photo bytes to an answer: the image model, its preprocessing, the
/// classifier and the fruit catalogue, loaded once and shared by every request.
#[derive(Debug)]
pub struct Identifier {
    model: FeatureModel,
    preprocessing: Preprocessing,
    limits: DecodeLimits,
    classifier: Classifier,
    catalogue: Catalogue,
    /// The views of each photo the classifier averages.
    views: Vec<View>,
    /// The classifier's classes grouped by fruit.
    fruits: FruitLevel,
}

impl Identifier {
    /// Checks that `model` and `preprocessing` make the features `classifier` was trained on.
    pub fn new(
        model: FeatureModel,
        preprocessing: Preprocessing,
        limits: DecodeLimits,
        classifier: Classifier,
        catalogue: Catalogue,
    ) -> Result<Identifier, IdentifyError> {
        let spec = &classifier.file.features;
        let info = model.info();
        if info.sha256 != spec.model_sha256 {
            return Err(IdentifyError::WrongImageModel {
                source_path: info.source.clone(),
                sha256: info.sha256.clone(),
                expected_source: spec.model_source.clone(),
                expected_sha256: spec.model_sha256.clone(),
            });
        }
        if info.feature_output != spec.feature_output || info.feature_dim != spec.feature_dim {
            return Err(IdentifyError::WrongOutput {
                expected_output: spec.feature_output.clone(),
                expected_dim: spec.feature_dim,
                output: info.feature_output.clone(),
                dim: info.feature_dim,
            });
        }
        if preprocessing != spec.preprocessing || preprocessing.size != info.input_size {
            return Err(IdentifyError::WrongPreprocessing {
                expected: Box::new(spec.preprocessing.clone()),
                given: Box::new(preprocessing),
            });
        }
        let fruits = FruitLevel::new(&catalogue, classifier.classes())?;
        Ok(Identifier {
            model,
            preprocessing,
            limits,
            views: classifier.views(),
            classifier,
            catalogue,
            fruits,
        })
    }

    /// The classifier.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The image model.
    pub fn model(&self) -> &FeatureModel {
        &self.model
    }

    /// Decodes and prepares one photo into a model input tensor (the pixel
    /// limit is checked from the header, before decoding).
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, ImageError> {
        let mut tensor = vec![0.0; self.preprocessing.tensor_len() * self.views.len()];
        let mut colour = vec![0.0; fruits_image::COLOUR_BINS];
        let info = self.preprocessing.preprocess_views(
            bytes,
            &self.limits,
            &self.views,
            &mut tensor,
            Some(&mut colour),
        )?;
        Ok((tensor, info, colour))
    }

    /// Identifies prepared photos (tensors from [`prepare`](Self::prepare)) in
    /// one model call; `top` answers each.
    pub fn identify_prepared(
        &self,
        tensors: &[Prepared],
        top: usize,
    ) -> Result<Vec<Prediction>, IdentifyError> {
        if tensors.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = Vec::with_capacity(tensors.len() * self.model.input_len());
        let mut colour = Vec::new();
        for (t, _, c) in tensors {
            batch.extend_from_slice(t);
            if self.classifier.file.colour_bins > 0 {
                colour.extend_from_slice(c);
            }
        }
        let features = self.model.run(&batch)?;
        let (proba, _) = self.classifier.proba_views(
            &features,
            &colour,
            InputKind::Features,
            self.views.len(),
        )?;
        let classes = self.classifier.classes();
        let predictions: Vec<Prediction> = proba
            .chunks_exact(classes.len().max(1))
            .zip(tensors)
            .map(|(p, (_, info, _))| self.answer(p, top, info))
            .collect();
        if predictions.len() != tensors.len() {
            return Err(IdentifyError::Internal(format!(
                "{} answers for {} photos",
                predictions.len(),
                tensors.len()
            )));
        }
        Ok(predictions)
    }

    /// The answer card for class probabilities `p`: the variety when it is as
    /// probable as the threshold asks, else the fruit when the sum over its
    /// varieties is, else "not sure"; `top` classes as guesses either way.
    fn answer(&self, p: &[f32], top: usize, info: &ImageInfo) -> Prediction {
        let classes = self.classifier.classes();
        let candidate = |i: usize| Candidate {
            class: classes[i].clone(),
            probability: p[i],
            info: self.catalogue.get(&classes[i]).cloned(),
        };
        let top: Vec<Candidate> = fruits_learn::top_k(p, top)
            .into_iter()
            .map(|(i, _)| candidate(i))
            .collect();
        let best_class = top.first().map_or(0.0, |c| c.probability);
        let fruit = self.fruits.ranked(p).first().map(|&(f, probability)| {
            // The fruit's most probable variety.
            let variety = (0..classes.len())
                .filter(|&c| self.fruits.of_class[c] == f)
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .unwrap_or(0);
            FruitAnswer {
                fruit: self.fruits.names[f].clone(),
                french: self.fruits.french[f].clone(),
                probability,
                probably: candidate(variety),
            }
        });
        let fruit_probability = fruit.as_ref().map_or(0.0, |f| f.probability);
        let level = if !self.classifier.abstains(best_class) {
            Level::Variety
        } else if !self.classifier.abstains(fruit_probability) {
            Level::Fruit
        } else {
            Level::NotSure
        };
        Prediction {
            answer: if level == Level::Variety {
                top.first().cloned()
            } else {
                None
            },
            fruit: if level == Level::NotSure { None } else { fruit },
            level,
            not_sure: level == Level::NotSure,
            top,
            width: info.width,
            height: info.height,
        }
    }

    /// Identifies `n` photos, [`CHUNK`] at a time, so memory stays flat
    /// however many there are: `read(i)` gives photo `i`'s bytes, and
    /// `each(i, answer)` receives the answers in order. A photo that cannot be
    /// read or decoded gets its own [`PhotoError`]; the others are answered.
    pub fn identify_each<B, R, E>(
        &self,
        n: usize,
        top: usize,
        read: R,
        mut each: E,
    ) -> Result<(), IdentifyError>
    where
        B: AsRef<[u8]> + Send,
        R: Fn(usize) -> Result<B, fruits_location::StorageError> + Sync,
        E: FnMut(usize, Result<Prediction, PhotoError>),
    {
        use rayon::prelude::*;
        check_top(top)?;
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            let read: Vec<_> = (start..end).into_par_iter().map(&read).collect();
            let mut slots = Vec::with_capacity(read.len());
            let mut bytes = Vec::new();
            for r in read {
                match r {
                    Ok(b) => {
                        slots.push(None);
                        bytes.push(b);
                    }
                    Err(e) => slots.push(Some(PhotoError::Read(e))),
                }
            }
            let views: Vec<&[u8]> = bytes.iter().map(AsRef::as_ref).collect();
            let mut answers = self.identify(&views, top)?.into_iter();
            for (i, slot) in (start..end).zip(slots) {
                let answer = match slot {
                    Some(e) => Err(e),
                    None => answers
                        .next()
                        .ok_or_else(|| IdentifyError::Internal("too few answers".into()))?
                        .map_err(PhotoError::Image),
                };
                each(i, answer);
            }
        }
        Ok(())
    }

    /// Identifies photos given as bytes: each is prepared on its own (a bad one
    /// gets its own error), the good ones go through the model together.
    pub fn identify(
        &self,
        photos: &[&[u8]],
        top: usize,
    ) -> Result<Vec<Result<Prediction, ImageError>>, IdentifyError> {
        use rayon::prelude::*;
        check_top(top)?;
        let prepared: Vec<_> = photos.par_iter().map(|b| self.prepare(b)).collect();
        let mut good = Vec::new();
        let mut slots = Vec::with_capacity(prepared.len());
        for r in prepared {
            match r {
                Ok(t) => {
                    good.push(t);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(e)),
            }
        }
        let mut answers = self.identify_prepared(&good, top)?.into_iter();
        slots
            .into_iter()
            .map(|slot| match slot {
                Some(e) => Ok(Err(e)),
                None => answers
                    .next()
                    .map(Ok)
                    .ok_or_else(|| IdentifyError::Internal("too few answers".into())),
            })
            .collect()
    }
}
