//! Debug logging with no secret in it: bollard logs request bodies (which hold every
//! container environment value) at `debug`/`trace`; a subscriber writing through the
//! engine's `SecretRegistry` masks them. The raw records are kept too, to show the
//! value really was logged (so the check could fail).
#![allow(clippy::unwrap_used)]

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use common::{scheduler, unique, IMAGE};
use gofer_core::secrecy::SecretString;
use gofer_core::{
    InMemorySecretStore, Pipeline, PullPolicy, RunOptions, RunStatus, SecretStore, Task, MASK,
};
use gofer_engine::{Engine, InMemoryLogSink, SecretRegistry};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Buf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Every record twice: as formatted (raw) and through the masking writer.
struct Tee<M> {
    raw: Buf,
    masked: M,
}

struct TeeWriter<W: io::Write> {
    raw: Buf,
    masked: W,
}

impl<W: io::Write> io::Write for TeeWriter<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.raw.write_all(b)?;
        self.masked.write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.masked.flush()
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Tee<M> {
    type Writer = TeeWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        TeeWriter {
            raw: self.raw.clone(),
            masked: self.masked.make_writer(),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_masking_writer_catches_what_bollard_logged() {
    let registry = SecretRegistry::new();
    let (raw, masked) = (Buf::default(), Buf::default());
    let into = masked.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(Tee {
            raw: raw.clone(),
            masked: registry.make_writer(move || into.clone()),
        })
        .finish();
    // The process's subscriber (the only test of this binary), and the bridge that
    // brings bollard's `log` records to it.
    tracing_subscriber::util::SubscriberInitExt::try_init(subscriber).unwrap();

    let Some(docker) = scheduler().await else {
        return;
    };
    let value = format!("leak-{}-value", unique("pw"));
    let secrets = Arc::new(InMemorySecretStore::new());
    secrets
        .put_pipeline_secret("tracing", "pw", SecretString::from(value.clone()), false)
        .await
        .unwrap();
    let instance = unique("trace");
    let engine = Engine::builder(Arc::new(docker))
        .instance_id(&instance)
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .secret_store(secrets)
        .secret_registry(registry.clone())
        .build()
        .unwrap();
    let pipeline = Pipeline::new("tracing", "Tracing").task(
        Task::new("env", IMAGE)
            .command(["true"])
            .pull_policy(PullPolicy::Never)
            .variable("PW", "secret{{pw}}"),
    );
    let run = engine.start_run(&pipeline, RunOptions::new()).unwrap();
    assert_eq!(run.wait().await.unwrap().status, RunStatus::Successful);

    let raw = raw.text();
    let masked = masked.text();
    assert!(
        raw.lines()
            .any(|l| l.contains("bollard") && l.contains(&value)),
        "bollard logged the value (else this test shows nothing): {} raw bytes",
        raw.len()
    );
    assert!(!masked.contains(&value), "a value in the masked records");
    assert!(masked.contains(MASK), "the masked records show the mask");
    assert_eq!(
        raw.lines().count(),
        masked.lines().count(),
        "no record lost"
    );
}
