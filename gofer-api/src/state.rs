//! [`ApiState`]: what every handler and the token check share.

use std::sync::Arc;

use gofer_core::{DynObjectStore, TokenIssuer};
use gofer_engine::Engine;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) engine: Engine,
    pub(crate) issuer: Arc<dyn TokenIssuer>,
    pub(crate) objects: Arc<DynObjectStore>,
    pub(crate) pipeline_writes: bool,
    pub(crate) max_body: usize,
}
