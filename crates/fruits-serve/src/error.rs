//! Errors as the clients see them: a status and `{"error": {"code", "message"}}`.

use std::time::Duration;

use axum::extract::multipart::MultipartError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fruits_image::ImageError;

/// An error answer: HTTP status, a stable machine-readable code, a message for people.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `not_an_image`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A bug or a crashed worker.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }

    /// The service cannot answer now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// The model is still loading.
    pub fn loading() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "loading",
            "the model is loading; retry in a moment",
        )
    }

    /// Too many requests in flight.
    pub fn busy(limit: usize) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("the service is handling its limit of {limit} requests; retry in a moment"),
        )
    }

    /// Request bodies already fill the service's upload budget.
    pub fn busy_uploading() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the service is receiving as many photos as it holds at once; retry in a moment",
        )
    }

    /// The request took longer than allowed.
    pub fn timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the photo could not be identified within {:.1} s; retry in a moment",
                limit.as_secs_f64()
            ),
        )
    }

    /// The client took longer than allowed to send the body.
    pub fn body_timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the photo did not arrive within {:.1} s; send it again",
                limit.as_secs_f64()
            ),
        )
    }

    /// The body is over the size limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the request body is over the {:.1} MiB limit; send a smaller photo",
                limit as f64 / (1024.0 * 1024.0)
            ),
        )
    }

    /// The content type is not a photo or a form.
    pub fn unsupported_content_type(mime: &str) -> Self {
        let got = if mime.is_empty() {
            "no Content-Type".to_string()
        } else {
            format!("Content-Type {mime}")
        };
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            format!(
                "{got}: send the photo as image/jpeg, image/png, image/webp, image/bmp, \
                 application/octet-stream, or a multipart/form-data field named `file`"
            ),
        )
    }

    /// A photo that cannot be used.
    pub fn from_image(e: ImageError) -> Self {
        let (status, code) = match &e {
            ImageError::Empty => (StatusCode::BAD_REQUEST, "empty_body"),
            ImageError::UnknownFormat(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_an_image"),
            ImageError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_pixels"),
            ImageError::Truncated(_) => (StatusCode::UNPROCESSABLE_ENTITY, "truncated_image"),
            ImageError::Decode(_) | ImageError::Resize(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "undecodable_image")
            }
            ImageError::AspectRatio { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "bad_aspect_ratio")
            }
        };
        Self::new(status, code, e.to_string())
    }

    /// A malformed or oversized multipart form.
    pub fn from_multipart(e: MultipartError) -> Self {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(status, "body_too_large", e.body_text());
        }
        Self::new(status, "bad_multipart", e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}
