//! The conformance suite against the in-memory fake, under paused tokio time.
#![cfg(feature = "conformance")]

use gofer_core::fake::FakeScheduler;

gofer_core::conformance_tests!(paused_time: async { FakeScheduler::conformance() });
