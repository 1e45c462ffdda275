//! Debug logging with no secret in it, on Podman: at trace level the client library
//! (containers-api) logs every request, and no secret value reaches the records the
//! engine's `SecretRegistry` masks (see `gofer_engine::testing::traced`). A test binary
//! of its own: it installs the process's subscriber.

mod common;

use std::sync::Arc;

use common::{podman, unique_name, IMAGE};

#[tokio::test]
async fn no_secret_reaches_the_trace_records() {
    let Some(p) = podman().await else { return };
    gofer_engine::testing::traced::secrets_stay_out_of_debug_logs(
        Arc::new(p),
        IMAGE,
        &unique_name("trace"),
        "containers_api",
        false,
    )
    .await;
}
