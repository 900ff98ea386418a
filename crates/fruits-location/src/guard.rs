//! The region guard: data may only be read from or written to buckets in the
//! allowed regions (eu-west-3 by default, for GDPR).
//!
//! The decision is split from the network calls so it can be tested on its own:
//! S3 answers "where is this bucket" in several ways (GetBucketLocation's body, the
//! `x-amz-bucket-region` header of a redirect, the region named in an
//! `AuthorizationHeaderMalformed` error), and every one of them ends up here.

use crate::StorageError;

/// Turns a GetBucketLocation answer into a region name: S3 answers an empty
/// constraint for us-east-1 and the legacy `EU` for eu-west-1.
pub fn normalize_location_constraint(constraint: &str) -> String {
    match constraint.trim() {
        "" => "us-east-1".to_string(),
        "EU" => "eu-west-1".to_string(),
        other => other.to_string(),
    }
}

/// The `LocationConstraint` of a GetBucketLocation response body.
pub fn location_from_body(body: &str) -> Option<String> {
    let start = body.find("<LocationConstraint")?;
    let rest = &body[start..];
    let open_end = rest.find('>')?;
    if rest[..open_end].ends_with('/') {
        return Some(normalize_location_constraint(""));
    }
    let inner = &rest[open_end + 1..];
    let close = inner.find("</LocationConstraint>")?;
    Some(normalize_location_constraint(&inner[..close]))
}

/// The region an S3 error says the bucket (or server) is in: AWS's `<Region>`
/// element, or an expected credential scope `DATE/REGION/s3/aws4_request` as
/// S3-compatible servers such as Garage word it.
pub fn region_from_error(body: &str) -> Option<String> {
    if let Some(start) = body.find("<Region>") {
        let rest = &body[start + "<Region>".len()..];
        let end = rest.find("</Region>")?;
        let region = rest[..end].trim();
        if !region.is_empty() {
            return Some(region.to_string());
        }
    }
    let lower = body.to_ascii_lowercase();
    // The last "expected": Garage says "unexpected scope: ..., expected: ...".
    let at = lower.rfind("expected")?;
    let tail = &body[at..];
    let scope_end = tail.find("/s3/aws4_request")?;
    let before = &tail[..scope_end];
    let region = before.rsplit('/').next()?.trim();
    (!region.is_empty() && !region.contains(char::is_whitespace)).then(|| region.to_string())
}

/// Allows `region` for `bucket` when it is in `allowed` (exact names; `*` allows any).
pub fn check(bucket: &str, region: &str, allowed: &[String]) -> Result<(), StorageError> {
    if allowed.iter().any(|a| a == region || a == "*") {
        return Ok(());
    }
    Err(StorageError::RegionNotAllowed {
        bucket: bucket.to_string(),
        region: region.to_string(),
        allowed: allowed.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["eu-west-3".to_string()]
    }

    #[test]
    fn paris_is_allowed_and_elsewhere_is_not() {
        assert!(check("b", "eu-west-3", &allowed()).is_ok());
        let err = check("fruits-us", "us-east-1", &allowed()).expect_err("us");
        let text = err.to_string();
        assert!(
            text.contains("fruits-us") && text.contains("us-east-1"),
            "{text}"
        );
        assert!(text.contains("--allow-region us-east-1"), "{text}");
        let more = vec!["eu-west-3".to_string(), "eu-central-1".to_string()];
        assert!(check("b", "eu-central-1", &more).is_ok());
        assert!(check("b", "eu-west-1", &more).is_err());
    }

    #[test]
    fn location_constraints() {
        let aws = r#"<?xml version="1.0" encoding="UTF-8"?>
<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">eu-west-3</LocationConstraint>"#;
        assert_eq!(location_from_body(aws).as_deref(), Some("eu-west-3"));
        let us = r#"<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>"#;
        assert_eq!(location_from_body(us).as_deref(), Some("us-east-1"));
        let eu = "<LocationConstraint>EU</LocationConstraint>";
        assert_eq!(location_from_body(eu).as_deref(), Some("eu-west-1"));
        assert_eq!(location_from_body("<Error/>"), None);
    }

    #[test]
    fn regions_named_by_errors() {
        let aws = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'eu-west-3' is wrong; expecting 'us-east-1'</Message><Region>us-east-1</Region></Error>";
        assert_eq!(region_from_error(aws).as_deref(), Some("us-east-1"));
        let garage = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>Authorization header malformed, unexpected scope: &apos;20261123/eu-west-3/s3/aws4_request&apos;, expected: &apos;20261123/garage/s3/aws4_request&apos;</Message></Error>";
        assert_eq!(region_from_error(garage).as_deref(), Some("garage"));
        assert_eq!(
            region_from_error("<Error><Code>AccessDenied</Code></Error>"),
            None
        );
    }
}

#[cfg(test)]
mod deploy_tests {
    /// The shipped IAM documents parse, and the pipeline policy keeps its Paris lock.
    #[test]
    fn deploy_iam_policies_are_valid() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/iam");
        for name in ["pipeline-policy.json", "bucket-policy.json"] {
            let text = std::fs::read_to_string(dir.join(name))?;
            let doc: serde_json::Value = serde_json::from_str(&text)?;
            assert_eq!(doc["Version"], "2012-10-17", "{name}");
            assert!(doc["Statement"].as_array().is_some_and(|s| !s.is_empty()));
        }
        let text = std::fs::read_to_string(dir.join("pipeline-policy.json"))?;
        assert!(text.contains("aws:RequestedRegion") && text.contains("eu-west-3"));
        assert!(text.contains("s3:GetBucketLocation"));
        let text = std::fs::read_to_string(dir.join("bucket-policy.json"))?;
        assert!(text.contains("aws:SecureTransport"));
        Ok(())
    }
}
