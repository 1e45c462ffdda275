//! The run store behaviour suite against the in-memory store.
#![cfg(feature = "conformance")]

gofer_core::run_store_tests!(async { gofer_core::InMemoryRunStore::new() });
