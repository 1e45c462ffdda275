//! A run's record and what makes it outlive its host: the recorder (the one place
//! every state change goes through, with its events), the journal that writes the
//! changes to the run store behind the run, how an attempt ended (`outcome`), the
//! engine's clock, the recovery plan (what to do with each task of an unfinished
//! run), the engine's durable state (`durability`) and the reaper of left containers.
//!
//! May import `crate::logs` and gofer-core; never `crate::run` or the engine.
pub(crate) mod clock;
pub(crate) mod durability;
pub(crate) mod journal;
pub(crate) mod outcome;
pub(crate) mod plan;
pub(crate) mod reaper;
pub(crate) mod recorder;
