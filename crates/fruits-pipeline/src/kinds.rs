//! Why a photo is in the errors table: image and augmentation errors named by
//! the table's stable [`ErrorKind`]. It lives here, where both vocabularies
//! meet, so that storage needs no image code and image code no storage.

use fruits_image::ImageError;
use fruits_image::augment::AugmentError;
use fruits_store::ErrorKind;

/// The errors-table kind of a photo that could not be prepared.
pub fn image_error_kind(e: &ImageError) -> ErrorKind {
    match e {
        ImageError::Empty => ErrorKind::Empty,
        ImageError::UnknownFormat(_) => ErrorKind::UnsupportedFormat,
        ImageError::TooLarge { .. } => ErrorKind::TooLarge,
        ImageError::Decode(_) => ErrorKind::Decode,
        ImageError::Truncated(_) => ErrorKind::Truncated,
        ImageError::Resize(_) => ErrorKind::Resize,
        ImageError::AspectRatio { .. } => ErrorKind::AspectRatio,
    }
}

/// The errors-table kind of a photo whose augmented copy could not be made.
pub fn augment_error_kind(e: &AugmentError) -> ErrorKind {
    match e {
        AugmentError::Image(e) => image_error_kind(e),
        AugmentError::Encode(_) => ErrorKind::Encode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each image error keeps the name it has always had in the `kind`
    /// column (the image crate's own `kind()` names it the same way).
    #[test]
    fn names_match_the_image_crate() {
        let errors = [
            ImageError::Empty,
            ImageError::UnknownFormat("x".into()),
            ImageError::Decode("x".into()),
            ImageError::Truncated("x".into()),
            ImageError::Resize("x".into()),
        ];
        for e in &errors {
            assert_eq!(image_error_kind(e).as_str(), e.kind(), "{e}");
        }
    }
}
