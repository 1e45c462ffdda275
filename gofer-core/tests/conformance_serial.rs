//! The suite run one case at a time (as real-engine backends may), against the fake.
#![cfg(feature = "conformance")]

use gofer_core::fake::FakeScheduler;

gofer_core::conformance_tests!(one_at_a_time: async { FakeScheduler::conformance() });
