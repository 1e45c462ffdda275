//! Everything the stores emit through `tracing` (span fields and events, at every
//! level) is captured and searched: it holds ids and keys, never a value or the key
//! material.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use gofer_core::{ObjectStore, SecretStore};
use gofer_secrets::{
    EncryptionKey, EnvSecretStore, FileSecretStore, SqliteObjectStore, SqliteSecretStore,
};
use secrecy::{ExposeSecret, SecretString};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Text<'a>(&'a mut String);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Capture {
    fn text(&self) -> String {
        self.0.lock().expect("capture").clone()
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut out = self.0.lock().expect("capture");
        let _ = write!(out, "\nspan {}:", attrs.metadata().name());
        attrs.record(&mut Text(&mut out));
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut Text(&mut self.0.lock().expect("capture")));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut out = self.0.lock().expect("capture");
        let _ = write!(out, "\nevent {}:", event.metadata().level());
        event.record(&mut Text(&mut out));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_or_key_material_in_tracing_output() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone()).expect("only subscriber");

    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("store.key");
    let key = EncryptionKey::load_or_create_file(&key_file).expect("key");
    let key_text = key.to_base64().expose_secret().to_string();
    let path = dir.path().join("gofer.db");
    let store = SqliteSecretStore::open(&path, key.clone())
        .await
        .expect("open");
    let values = [
        "TRACE-CANARY-pipeline-1x",
        "TRACE-CANARY-global-2y",
        "TRACE-CANARY-object-3z",
    ];
    store
        .put_pipeline_secret("pipe", "K", SecretString::from(values[0]), false)
        .await
        .expect("put");
    store
        .put_global_secret(
            "G",
            SecretString::from(values[1]),
            vec!["pipe".into()],
            false,
        )
        .await
        .expect("put");
    store.get_pipeline_secret("pipe", "K").await.expect("get");
    store.get_global_secret("pipe", "G").await.expect("get");
    let _ = store.get_global_secret("other", "G").await;
    store
        .rotate_key(EncryptionKey::generate().expect("key"))
        .await
        .expect("rotate");
    drop(store);
    let _ = SqliteSecretStore::open(&path, key).await; // wrong key now: logged as an error

    let objects = SqliteObjectStore::open(&path)
        .await
        .expect("objects")
        .max_pipeline_objects(1);
    for k in ["a", "b"] {
        objects
            .put_pipeline_object(
                "pipe",
                k,
                bytes::Bytes::from_static(values[2].as_bytes()),
                false,
            )
            .await
            .expect("put");
    }
    let env = EnvSecretStore::from_vars([("GOFER_SECRET_bad", values[0])]);
    let _ = env.list_pipeline_secrets("pipe").await;
    std::fs::write(dir.path().join("store.key.shared"), &key_text).expect("write");
    let _ = EncryptionKey::read_file(dir.path().join("store.key.shared"));
    let _ = FileSecretStore::new(dir.path())
        .get_pipeline_secret("pipe", "K")
        .await;

    let text = capture.text();
    // Control: the capture sees the stores' spans and events.
    for seen in [
        "rotated the encryption key",
        "wrong encryption key",
        "evicted",
        "generated a new encryption key",
        "GOFER_SECRET_bad",
    ] {
        assert!(text.contains(seen), "{seen:?} missing from {text}");
    }
    for v in values {
        assert!(!text.contains(v), "a value in tracing output: {text}");
    }
    assert!(!text.contains(&key_text), "key material in tracing output");
}
