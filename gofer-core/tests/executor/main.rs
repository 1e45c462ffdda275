//! Executor behaviour on the FakeScheduler: one module per concern.
#![allow(clippy::unwrap_used)]

mod common;
mod faults;
mod flow;
mod limits;
mod logs;
mod scale;
mod variables;
