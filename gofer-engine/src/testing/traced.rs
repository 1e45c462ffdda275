//! Debug logs with no secret in them, on a real backend: [`secrets_stay_out_of_debug_logs`]
//! runs a task with a pipeline secret and a global secret through an engine whose
//! [`SecretRegistry`] masks a trace-level subscriber's records,
//! keeping each record twice (as formatted, and masked) to show what the client
//! library really logged.

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use gofer_core::secrecy::SecretString;
use gofer_core::{
    DynScheduler, InMemorySecretStore, Pipeline, PullPolicy, RunOptions, RunStatus, SecretStore,
    Task, MASK,
};
use tracing_subscriber::fmt::MakeWriter;

use crate::{Engine, InMemoryLogSink, SecretRegistry};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Buf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
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

/// The process's capture: one global trace-level subscriber (with the bridge for
/// libraries that log through the `log` crate), its registry, the raw and the masked
/// records.
struct Capture {
    registry: SecretRegistry,
    raw: Buf,
    masked: Buf,
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c = Capture {
            registry: SecretRegistry::new(),
            raw: Buf::default(),
            masked: Buf::default(),
        };
        let into = c.masked.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(Tee {
                raw: c.raw.clone(),
                masked: c.registry.make_writer(move || into.clone()),
            })
            .finish();
        tracing_subscriber::util::SubscriberInitExt::try_init(subscriber)
            .expect("no other subscriber in this test binary");
        c
    })
}

/// Runs, at trace level, a task given a pipeline secret and a global secret on `s`
/// (the task prints nothing of them), and asserts that no value reached the masked
/// records while the records of `client_target` (the backend's client library, such
/// as `bollard`) did. With `logs_bodies`, the client library is known to log request
/// bodies: the raw records must hold the value (else the check shows nothing) and the
/// masked ones the mask instead. Every record is kept, none lost.
///
/// Call it from a test binary of its own: it installs the process's subscriber.
///
/// # Panics
/// When a value reaches the masked records, or the records are not what is said above.
pub async fn secrets_stay_out_of_debug_logs(
    s: Arc<DynScheduler>,
    image: &str,
    instance: &str,
    client_target: &str,
    logs_bodies: bool,
) {
    let c = capture();
    let value = format!("leak-{instance}-pipeline");
    let global = format!("leak-{instance}-global");
    let secrets = Arc::new(InMemorySecretStore::new());
    secrets
        .put_pipeline_secret("tracing", "pw", SecretString::from(value.clone()), false)
        .await
        .expect("a pipeline secret");
    secrets
        .put_global_secret(
            "gpw",
            SecretString::from(global.clone()),
            vec!["tracing".into()],
            false,
        )
        .await
        .expect("a global secret");
    let engine = Engine::builder(s.clone())
        .instance_id(instance)
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .secret_store(secrets)
        .secret_registry(c.registry.clone())
        .build()
        .expect("an engine");
    let pipeline = Pipeline::new("tracing", "Tracing").task(
        Task::new("env", image)
            .command(["true"])
            .pull_policy(PullPolicy::Never)
            .variable("PW", "secret{{pw}}")
            .variable("GPW", "global_secret{{gpw}}"),
    );
    let run = engine
        .start_run(&pipeline, RunOptions::new())
        .expect("the run starts");
    let done = run.wait().await.expect("the run");
    assert_eq!(done.status, RunStatus::Successful, "{done:?}");
    super::assert_nothing_left(&*s, instance).await;

    let raw = c.raw.text();
    let masked = c.masked.text();
    for v in [&value, &global] {
        assert!(
            !masked.contains(v.as_str()),
            "a secret value in the masked records"
        );
    }
    assert!(
        masked.lines().any(|l| l.contains(client_target)),
        "records of {client_target} (else the check shows nothing)"
    );
    if logs_bodies {
        assert!(
            raw.lines()
                .any(|l| l.contains(client_target) && l.contains(value.as_str())),
            "{client_target} logged the value (else the check shows nothing)"
        );
        assert!(masked.contains(MASK), "the masked records show the mask");
    }
    assert_eq!(
        raw.lines().count(),
        masked.lines().count(),
        "no record lost"
    );
}
