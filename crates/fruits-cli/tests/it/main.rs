//! The `fruits` binary end to end: one test binary (as ripgrep and uv do), so
//! the fixtures below are built once per run and the crates link once.
//!
//! Each module drives the real binary (`CARGO_BIN_EXE_fruits`) against the
//! real sample photos and models in `../shared`, and real servers started on
//! loopback (Garage for S3, chromedriver + chromium for the upload page).

mod browser;
mod classify;
mod common;
mod docs;
mod featurize;
mod forget;
mod hardening;
mod models;
mod pca;
mod real;
mod s3;
mod serve;
