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
    #[derive(serde::Deserialize)]
    struct LocationConstraint {
        #[serde(rename = "$text", default)]
        region: String,
    }
    let start = body.find("<LocationConstraint")?;
    let parsed: LocationConstraint = quick_xml::de::from_str(&body[start..]).ok()?;
    Some(normalize_location_constraint(&parsed.region))
}

/// The region an S3 error body says the bucket (or server) is in: AWS's
/// `<Region>` element, or the expected credential scope
/// `DATE/REGION/s3/aws4_request` that S3-compatible servers such as Garage name
/// in the message of an `AuthorizationHeaderMalformed` error.
pub fn region_from_error(body: &str) -> Option<String> {
    let error = crate::error::parse_s3_error(body)?;
    if let Some(region) = error.region.as_deref().map(str::trim)
        && !region.is_empty()
    {
        return Some(region.to_string());
    }
    if error.code != "AuthorizationHeaderMalformed" {
        return None;
    }
    // The last "expected": Garage says "unexpected scope: ..., expected: ...".
    let message = &error.message;
    let at = message.to_ascii_lowercase().rfind("expected")?;
    let tail = &message[at..];
    let scope_end = tail.find("/s3/aws4_request")?;
    let region = tail[..scope_end].rsplit('/').next()?.trim();
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
        allowed: allowed.to_vec(),
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
        assert!(text.contains("GDPR") && !text.contains("--"), "{text}");
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
        let dir = std::path::Path::new("../../deploy/iam"); // cargo test runs from the crate's folder
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
