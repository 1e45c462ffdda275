//! Test kits for backend authors (feature `conformance`, alias `testing`).

pub mod conformance;
pub mod engine;
pub mod runstore;
