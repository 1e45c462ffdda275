//! A run executed: it owns everything that happens between `start_run` and the run's
//! status. The runner takes a pipeline slot, the API token and the network sandbox and
//! walks the task graph; a task's lifecycle resolves its variables, starts (or adopts)
//! its container, pumps its log and watches its exit; services run beside the tasks
//! that need them.
//!
//! May import `crate::durable` (to record what happens), `crate::logs` (to keep the
//! output) and gofer-core; nothing above it.
//!
//! Top to bottom: `runner` → `lifecycle` → `services`, `cache` → `ctx` (what a run's tasks
//! share, in parts) → `pump`, `caches` → `container`, `resolve`, `handle`, `service_state`,
//! `secrets`, `stop`, `admission`, `limits`, `errors`.
pub(crate) mod admission;
pub(crate) mod cache;
pub(crate) mod caches;
pub(crate) mod concurrency;
pub(crate) mod container;
pub(crate) mod ctx;
pub(crate) mod errors;
pub(crate) mod handle;
pub(crate) mod lifecycle;
pub(crate) mod limits;
pub(crate) mod pump;
pub(crate) mod resolve;
pub(crate) mod runner;
pub(crate) mod secrets;
pub(crate) mod service_state;
pub(crate) mod services;
pub(crate) mod stop;
