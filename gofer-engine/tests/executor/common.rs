//! Shared helpers.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use gofer_core::fake::FakeScheduler;
use gofer_core::secrecy::{ExposeSecret, SecretString};
use gofer_core::{BoxError, Run, TaskExecution, TokenIssuer};
use gofer_engine::{Engine, EngineBuilder, InMemoryLogSink, RunHandle};

/// An engine over `fake` with an in-memory log sink.
pub fn builder(fake: &FakeScheduler) -> (EngineBuilder, InMemoryLogSink) {
    let sink = InMemoryLogSink::new();
    let b = Engine::builder(Arc::new(fake.clone()))
        .instance_id("test")
        .log_sink(Arc::new(sink.clone()));
    (b, sink)
}

pub fn engine(fake: &FakeScheduler) -> Engine {
    builder(fake).0.build().unwrap()
}

pub async fn finish(h: &RunHandle) -> Run {
    h.wait().await.unwrap()
}

pub fn task<'a>(run: &'a Run, id: &str) -> &'a TaskExecution {
    run.task(id)
        .unwrap_or_else(|| panic!("task {id} missing in {run:?}"))
}

/// The container name the engine gives a task of run `run` of pipeline `pipeline`.
pub fn cname(pipeline: &str, run: u64, task: &str) -> String {
    gofer_core::naming::task_container_name("test", pipeline, run, task)
}

/// A token issuer that records what it issued, resumed and revoked; with
/// `resumable`, it gives a resumed run its token again.
#[derive(Debug, Default)]
pub struct Tokens {
    pub issued: Mutex<Vec<(u64, String)>>,
    pub revoked: Mutex<Vec<(u64, String)>>,
    pub resumed: Mutex<Vec<u64>>,
    pub resumable: bool,
}

fn token_of(run: u64) -> String {
    format!("tok-{run}-{:08x}", run.wrapping_mul(0x9e37_79b9))
}

#[async_trait]
impl TokenIssuer for Tokens {
    async fn issue(&self, _pipeline: &str, run: u64) -> Result<SecretString, BoxError> {
        let token = token_of(run);
        self.issued.lock().unwrap().push((run, token.clone()));
        Ok(SecretString::from(token))
    }

    async fn resume(&self, _pipeline: &str, run: u64) -> Result<Option<SecretString>, BoxError> {
        if !self.resumable {
            return Ok(None);
        }
        self.resumed.lock().unwrap().push(run);
        Ok(Some(SecretString::from(token_of(run))))
    }

    async fn revoke(&self, _pipeline: &str, run: u64, token: SecretString) -> Result<(), BoxError> {
        self.revoked
            .lock()
            .unwrap()
            .push((run, token.expose_secret().to_string()));
        Ok(())
    }
}
