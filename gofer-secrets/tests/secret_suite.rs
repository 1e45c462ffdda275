//! The SecretStore behaviour suite against every store of this crate and the
//! in-memory store of gofer-core.

use gofer_core::testing::stores::{self as testing, fixture};
use gofer_core::{DynSecretStore, InMemorySecretStore};
use gofer_secrets::{EncryptionKey, EnvSecretStore, FileSecretStore, SqliteSecretStore};
use tempfile::TempDir;

type Made = (Box<DynSecretStore>, Option<TempDir>);

async fn memory() -> Made {
    let store = InMemorySecretStore::new();
    testing::seed(&store, &fixture()).await;
    (Box::new(store), None)
}

async fn sqlite() -> Made {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = EncryptionKey::generate().expect("key");
    let store = SqliteSecretStore::open(dir.path().join("secrets.db"), key)
        .await
        .expect("open");
    testing::seed(&store, &fixture()).await;
    (Box::new(store), Some(dir))
}

async fn env() -> Made {
    let fx = fixture();
    let mut vars: Vec<(String, String)> = Vec::new();
    for s in &fx.pipeline_secrets {
        vars.push((
            format!("GOFER_SECRET_{}__{}", s.pipeline, s.key),
            s.value.into(),
        ));
    }
    for g in &fx.global_secrets {
        vars.push((format!("GOFER_GLOBAL_SECRET_{}", g.key), g.value.into()));
        if !g.allow.is_empty() {
            vars.push((format!("GOFER_GLOBAL_ALLOW_{}", g.key), g.allow.join(",")));
        }
    }
    vars.push(("PATH".into(), "/bin".into()));
    (Box::new(EnvSecretStore::from_vars(vars)), None)
}

async fn file() -> Made {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileSecretStore::new(dir.path());
    let fx = fixture();
    let write = |path: std::path::PathBuf, text: String| {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    for s in &fx.pipeline_secrets {
        // With the trailing newline `echo` would add; the store strips it.
        write(
            store.pipeline_secret_path(s.pipeline, s.key).expect("path"),
            format!("{}\n", s.value),
        );
    }
    for g in &fx.global_secrets {
        write(
            store.global_secret_path(g.key).expect("path"),
            g.value.into(),
        );
        if !g.allow.is_empty() {
            write(
                store.allow_list_path(g.key).expect("path"),
                g.allow.join("\n"),
            );
        }
    }
    (Box::new(store), Some(dir))
}

macro_rules! secret_suite {
    ($name:ident, $make:path, writable = $writable:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pipeline_reads() {
                let (store, _dir) = $make().await;
                testing::pipeline_reads(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn global_reads() {
                let (store, _dir) = $make().await;
                testing::global_reads(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn secrets_stay_hidden() {
                let (store, _dir) = $make().await;
                testing::secrets_stay_hidden(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pipeline_writes() {
                let (store, _dir) = $make().await;
                testing::pipeline_writes(&*store, $writable).await;
                // Writes leave the fixture as it was.
                testing::pipeline_reads(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn global_writes() {
                let (store, _dir) = $make().await;
                testing::global_writes(&*store, $writable).await;
                testing::global_reads(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_access() {
                let (store, _dir) = $make().await;
                testing::secret_concurrent_access(&*store, $writable).await;
            }
        }
    };
}

secret_suite!(memory_store, memory, writable = true);
secret_suite!(sqlite_store, sqlite, writable = true);
secret_suite!(env_store, env, writable = false);
secret_suite!(file_store, file, writable = false);
