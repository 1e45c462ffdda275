//! Prints the throughput of the SQLite stores as a ratio against the in-memory stores
//! measured in the same run: `cargo run --release -p gofer-secrets --example throughput`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gofer_core::secrecy::SecretString;
use gofer_core::{DynObjectStore, DynSecretStore, InMemoryObjectStore, InMemorySecretStore};
use gofer_secrets::{EncryptionKey, SqliteObjectStore, SqliteSecretStore};

const OPS: usize = 2_000;

async fn secrets(store: &DynSecretStore) -> anyhow::Result<(Duration, Duration)> {
    let start = Instant::now();
    for i in 0..OPS {
        let value = SecretString::from(format!("value-{i}-{}", "x".repeat(40)));
        store
            .put_pipeline_secret("bench", &format!("K{i}"), value, true)
            .await?;
    }
    let put = start.elapsed();
    let start = Instant::now();
    for i in 0..OPS {
        store.get_pipeline_secret("bench", &format!("K{i}")).await?;
    }
    Ok((put, start.elapsed()))
}

async fn objects(store: &DynObjectStore) -> anyhow::Result<(Duration, Duration)> {
    let start = Instant::now();
    for i in 0..OPS {
        store
            .put_run_object(
                "bench",
                1,
                &format!("K{i}"),
                Bytes::from(vec![7u8; 256]),
                true,
            )
            .await?;
    }
    let put = start.elapsed();
    let start = Instant::now();
    for i in 0..OPS {
        store.get_run_object("bench", 1, &format!("K{i}")).await?;
    }
    Ok((put, start.elapsed()))
}

fn report(what: &str, base: Duration, measured: Duration) {
    let per_op = |d: Duration| d.as_secs_f64() * 1e6 / OPS as f64;
    println!(
        "{what:<22} memory {:>8.2} µs/op   sqlite {:>8.2} µs/op   ratio {:>7.1}x",
        per_op(base),
        per_op(measured),
        measured.as_secs_f64() / base.as_secs_f64().max(f64::MIN_POSITIVE)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sqlite =
        SqliteSecretStore::open(dir.path().join("s.db"), EncryptionKey::generate()?).await?;
    let (mem_put, mem_get) = secrets(&InMemorySecretStore::new()).await?;
    let (sql_put, sql_get) = secrets(&sqlite).await?;
    report("secret put (sync)", mem_put, sql_put);
    report("secret get (decrypt)", mem_get, sql_get);
    let sqlite = SqliteObjectStore::open(dir.path().join("o.db")).await?;
    let (mem_put, mem_get) = objects(&InMemoryObjectStore::new()).await?;
    let (sql_put, sql_get) = objects(&sqlite).await?;
    report("run object put", mem_put, sql_put);
    report("run object get", mem_get, sql_get);
    Ok(())
}
