//! Flags shared by every command that reads or writes data: where S3 is, which
//! regions are allowed, how hard to retry.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use fruits_location::{DEFAULT_REGION, StorageOptions};
use fruits_store::Location;

/// Storage flags (global: they go anywhere on the command line).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Storage (S3)")]
pub struct StorageArgs {
    /// Also allow S3 buckets in REGION (repeatable). Buckets outside the allowed
    /// regions are refused before any data moves; eu-west-3 (Paris) is always allowed.
    #[arg(long = "allow-region", global = true, value_name = "REGION")]
    pub allow_region: Vec<String>,

    /// S3-compatible endpoint to use instead of Amazon S3 (e.g. http://127.0.0.1:3900).
    #[arg(
        long,
        global = true,
        env = "AWS_ENDPOINT_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub s3_endpoint: Option<String>,

    /// Give up on an S3 request after retrying it (with backoff) for this long.
    #[arg(long, global = true, default_value_t = 180, value_name = "SECONDS")]
    pub s3_retry_timeout: u64,

    /// S3 GET requests in flight while reading images.
    #[arg(long, global = true, default_value_t = 32, value_name = "N")]
    pub s3_concurrency: usize,
}

static OPTIONS: OnceLock<StorageOptions> = OnceLock::new();

impl StorageArgs {
    /// Makes these flags the process's storage options.
    pub fn install(&self) {
        let mut allowed = vec![DEFAULT_REGION.to_string()];
        for region in &self.allow_region {
            if !allowed.contains(region) {
                allowed.push(region.clone());
            }
        }
        let _ = OPTIONS.set(StorageOptions {
            allowed_regions: allowed,
            endpoint: self.s3_endpoint.clone().filter(|e| !e.is_empty()),
            retry_timeout: Duration::from_secs(self.s3_retry_timeout),
            concurrency: self.s3_concurrency.max(1),
            ..StorageOptions::default()
        });
    }
}

/// Opens a local path or s3:// URL given on the command line.
pub fn open(spec: &str) -> anyhow::Result<Location> {
    let options = OPTIONS.get_or_init(StorageOptions::default);
    Location::parse(spec, options).with_context(|| format!("cannot open {spec}"))
}
