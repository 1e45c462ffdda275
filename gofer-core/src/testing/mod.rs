//! Test kits for backend authors (feature `conformance`, alias `testing`).

pub mod conformance;
