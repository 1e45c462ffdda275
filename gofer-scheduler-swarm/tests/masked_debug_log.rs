//! Debug logging with no secret in it, on the swarm: bollard logs the service create
//! body (which holds every container environment value) at `debug`/`trace`, and the
//! engine's `SecretRegistry` masks it (see `gofer_engine::testing::traced`). A test
//! binary of its own: it installs the process's subscriber.

mod common;

use std::sync::Arc;

use common::{instance, scheduler, IMAGE};

#[tokio::test]
async fn the_masking_writer_catches_what_bollard_logged() {
    let Some(swarm) = scheduler().await else {
        return;
    };
    gofer_engine::testing::traced::secrets_stay_out_of_debug_logs(
        Arc::new(swarm),
        IMAGE,
        &instance(),
        "bollard",
        true,
    )
    .await;
}
