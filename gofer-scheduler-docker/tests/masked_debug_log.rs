//! Debug logging with no secret in it, on Docker: bollard logs request bodies (which
//! hold every container environment value) at `debug`/`trace`, and the engine's
//! `SecretRegistry` masks them (see `gofer_engine::testing::traced`). A test binary of
//! its own: it installs the process's subscriber.

mod common;

use std::sync::Arc;

use common::{scheduler, unique, IMAGE};

#[tokio::test]
async fn the_masking_writer_catches_what_bollard_logged() {
    let Some(docker) = scheduler().await else {
        return;
    };
    gofer_engine::testing::traced::secrets_stay_out_of_debug_logs(
        Arc::new(docker),
        IMAGE,
        &unique("trace"),
        "bollard",
        true,
    )
    .await;
}
