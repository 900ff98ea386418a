//! What the app tells a user about a fruit: names in English and French, the
//! botanical name and family, and a one-line description, for every class.
//!
//! The data lives in `data/fruit-info.toml` at the top of the repository (one
//! place to review and extend) and is compiled into the binary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ClassifyError;

/// The built-in catalogue, as TOML.
pub const BUILTIN_TOML: &str = include_str!("../../../data/fruit-info.toml");

/// Information about one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FruitInfo {
    /// The class name (the Fruits-360 folder name).
    pub class: String,
    /// Common name in English.
    pub english: String,
    /// Common name in French.
    pub french: String,
    /// Botanical name.
    pub botanical: String,
    /// Botanical family.
    pub family: String,
    /// One sentence for the user.
    pub description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    fruit: Vec<FruitInfo>,
}

/// Fruit information by class name.
#[derive(Debug, Clone)]
pub struct Catalogue {
    by_class: BTreeMap<String, FruitInfo>,
}

impl Catalogue {
    /// The catalogue compiled into this build.
    pub fn builtin() -> Result<Catalogue, ClassifyError> {
        Catalogue::from_toml(BUILTIN_TOML)
    }

    /// Parses a catalogue; refuses duplicates and empty fields.
    pub fn from_toml(text: &str) -> Result<Catalogue, ClassifyError> {
        let file: CatalogueFile =
            toml::from_str(text).map_err(|e| ClassifyError::Catalogue(e.to_string()))?;
        let mut by_class = BTreeMap::new();
        for info in file.fruit {
            let fields = [
                &info.class,
                &info.english,
                &info.french,
                &info.botanical,
                &info.family,
                &info.description,
            ];
            if fields.iter().any(|f| f.trim().is_empty()) {
                return Err(ClassifyError::Catalogue(format!(
                    "{:?} has an empty field",
                    info.class
                )));
            }
            if let Some(old) = by_class.insert(info.class.clone(), info) {
                return Err(ClassifyError::Catalogue(format!(
                    "{:?} is listed twice",
                    old.class
                )));
            }
        }
        Ok(Catalogue { by_class })
    }

    /// Information about `class`, if known.
    pub fn get(&self, class: &str) -> Option<&FruitInfo> {
        self.by_class.get(class)
    }

    /// Number of classes described.
    pub fn len(&self) -> usize {
        self.by_class.len()
    }

    /// True when no class is described.
    pub fn is_empty(&self) -> bool {
        self.by_class.is_empty()
    }

    /// The classes of `classes` that have no entry.
    pub fn missing<'a>(&self, classes: &'a [String]) -> Vec<&'a str> {
        classes
            .iter()
            .filter(|c| !self.by_class.contains_key(c.as_str()))
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses_and_covers_every_sample_class() {
        let cat = Catalogue::builtin().expect("builtin catalogue");
        assert_eq!(cat.len(), 141);
        let apple = cat.get("Apple Braeburn 1").expect("Braeburn");
        assert_eq!(apple.family, "Rosaceae");
        // Every class of the shared sample (FRUITS_SAMPLE_DIR, as the CLI tests).
        let dir = std::env::var("FRUITS_SAMPLE_DIR").unwrap_or_else(|_| {
            // cargo test runs from the crate's folder.
            "../../../shared/data/fruits-360-sample".to_string()
        });
        let training = std::path::Path::new(&dir).join("Training");
        let classes: Vec<String> = std::fs::read_dir(&training)
            .unwrap_or_else(|e| panic!("{}: {e} (set FRUITS_SAMPLE_DIR)", training.display()))
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(classes.len(), 141);
        assert!(
            cat.missing(&classes).is_empty(),
            "{:?}",
            cat.missing(&classes)
        );
    }

    #[test]
    fn duplicates_and_empty_fields_are_refused() {
        let one = "[[fruit]]\nclass = \"A\"\nenglish = \"a\"\nfrench = \"a\"\nbotanical = \"b\"\nfamily = \"f\"\ndescription = \"d\"\n";
        assert!(Catalogue::from_toml(one).is_ok());
        let twice = format!("{one}{one}");
        let err = Catalogue::from_toml(&twice).expect_err("duplicate");
        assert!(err.to_string().contains("twice"), "{err}");
        let empty = one.replace("family = \"f\"", "family = \" \"");
        assert!(Catalogue::from_toml(&empty).is_err());
    }
}
