//! Traces on the fake: a recording subscriber sees one span per run and one per task
//! attempt (pipeline, run, task, attempt, backend, container), with the attempt's
//! start, wait and cleanup as its children: the tree an OpenTelemetry layer shows as a
//! waterfall. No span field holds a secret value.
//!
//! A test binary of its own, with the process's subscriber: tracing caches each
//! callsite's interest across threads, so a scoped subscriber beside other tests'
//! would miss spans first met under theirs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::secrecy::SecretString;
use gofer_core::{
    InMemorySecretStore, Pipeline, RequiredParentStatus, RetryPolicy, RunOptions, SecretStore, Task,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone)]
struct SpanRec {
    name: String,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<BTreeMap<u64, SpanRec>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            format!("{value:?}").trim_matches('"').to_string(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorded {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.id().into_u64());
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().insert(
            id.into_u64(),
            SpanRec {
                name: attrs.metadata().name().to_string(),
                parent,
                fields,
            },
        );
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(s) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut s.fields));
        }
    }
}

#[test]
fn a_two_task_run_is_a_tree_of_run_attempts_and_their_steps() {
    let recorded = Recorded::default();
    let subscriber = tracing_subscriber::registry().with(recorded.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let fake = FakeScheduler::new()
                .image("env", Behaviour::print_env())
                .image("bad", Behaviour::new().exit_code(3));
            let secrets = Arc::new(InMemorySecretStore::new());
            secrets
                .put_pipeline_secret(
                    "traced",
                    "pw",
                    SecretString::from("tr4ced-secret".to_string()),
                    false,
                )
                .await
                .unwrap();
            let engine = gofer_engine::Engine::builder(Arc::new(fake))
                .instance_id("test")
                .log_sink(Arc::new(gofer_engine::InMemoryLogSink::new()))
                .secret_store(secrets)
                .build()
                .unwrap();
            let p = Pipeline::new("traced", "Traced").tasks([
                Task::new("build", "env").variable("PW", "secret{{pw}}"),
                Task::new("test", "bad")
                    .depends_on("build", RequiredParentStatus::Success)
                    .retry(RetryPolicy::new(2).backoff(
                        Duration::from_secs(1),
                        1.0,
                        Duration::from_secs(1),
                    )),
            ]);
            engine
                .start_run(&p, RunOptions::new())
                .unwrap()
                .wait()
                .await
                .unwrap();
        });
    }
    let spans = recorded.0.lock().unwrap().clone();
    let named = |n: &str| {
        spans
            .iter()
            .filter(move |(_, s)| s.name == n)
            .collect::<Vec<_>>()
    };
    let runs = named("run");
    assert_eq!(runs.len(), 1, "{spans:#?}");
    let (run_id, run) = runs[0];
    assert_eq!(
        run.fields.get("pipeline").map(String::as_str),
        Some("traced")
    );
    assert_eq!(run.fields.get("run").map(String::as_str), Some("1"));
    // build once, test twice (a retry): three attempts, each a child of the run.
    let attempts = named("attempt");
    let mut seen: Vec<(String, String)> = attempts
        .iter()
        .map(|(_, a)| (a.fields["task"].clone(), a.fields["attempt"].clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("build".into(), "1".into()),
            ("test".into(), "1".into()),
            ("test".into(), "2".into())
        ]
    );
    for (id, a) in &attempts {
        assert_eq!(a.parent, Some(*run_id), "an attempt under the run: {a:?}");
        assert_eq!(a.fields["pipeline"], "traced");
        assert_eq!(a.fields["run"], "1");
        assert_eq!(a.fields["backend"], "fake");
        assert!(
            a.fields["container"].starts_with("gofer-test-traced-1-"),
            "{a:?}"
        );
        // Its steps, as children.
        let children: Vec<&str> = spans
            .values()
            .filter(|s| s.parent == Some(**id))
            .map(|s| s.name.as_str())
            .collect();
        for step in ["start", "wait", "cleanup"] {
            assert!(
                children.contains(&step),
                "{step} missing under {a:?}: {children:?}"
            );
        }
    }
    // No span field holds the secret.
    for s in spans.values() {
        for v in s.fields.values() {
            assert!(
                !v.contains("tr4ced-secret"),
                "a secret in span {}: {v}",
                s.name
            );
        }
    }
}
