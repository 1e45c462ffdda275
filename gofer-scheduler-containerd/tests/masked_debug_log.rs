//! Debug logging with no secret in it, on containerd: at trace level the gRPC stack
//! (h2, under tonic) logs every frame it sends — the OCI spec holding the container's
//! environment among them — and no secret value reaches the records the engine's
//! `SecretRegistry` masks (see `gofer_engine::testing::traced`). A test binary of its
//! own: it installs the process's subscriber.

mod common;

use std::sync::Arc;

#[tokio::test]
async fn no_secret_reaches_the_trace_records() {
    let Some(s) = common::containerd().await else {
        return;
    };
    gofer_engine::testing::traced::secrets_stay_out_of_debug_logs(
        Arc::new(s),
        common::IMAGE,
        &format!("ctesttrace{}", common::run_id().replace('-', "")),
        "h2",
        false,
    )
    .await;
}
