//! Test kits for backend authors (feature `conformance`, alias `testing`).

pub mod attach;
pub mod conformance;
pub mod engine;
pub mod runstore;
