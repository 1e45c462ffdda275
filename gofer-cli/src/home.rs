//! The data directory and the stores in it.
//!
//! ```text
//! <home>/gofer-runs.sqlite3     run store (SqliteRunStore)
//! <home>/secrets.sqlite3        secret store (SqliteSecretStore, AES-256-GCM)
//! <home>/objects.sqlite3        object store (SqliteObjectStore)
//! <home>/secret.key             the secret store's key (mode 0600), unless GOFER_SECRET_KEY
//! <home>/logs/<pipeline>/<run>/<task>.log   task logs (FileLogSink)
//! <home>/home.id               this data directory's random id (in instance ids)
//! <home>/slots/cli-<id>-<n>.lock  engine instance slots (see `slots`)
//! <home>/start.lock             held while a run number is allocated
//! <home>/config.toml            settings (optional): `[retention] keep, older_than`
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gofer_core::secrecy::SecretBox;
use gofer_core::{DynObjectStore, DynRunStore, DynSecretStore};
use gofer_engine::FileLogSink;
use gofer_secrets::{EncryptionKey, SqliteObjectStore, SqliteSecretStore};
use gofer_store_sqlite::SqliteRunStore;

use crate::error::CliError;

/// The environment variable that may hold the secret store's key (hex or base64 of
/// 32 bytes); when unset the key lives in `<home>/secret.key`.
pub const KEY_ENV: &str = "GOFER_SECRET_KEY";

/// The data directory's settings, `<home>/config.toml` (optional, every field too).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which old runs `gofer prune` (without flags) and every `gofer run` remove.
    #[serde(default)]
    pub retention: Option<RetentionConfig>,
}

/// `[retention]` of the config: keep the newest `keep` runs of each pipeline, and/or
/// runs that ended less than `older_than` ago (either limit removes a complete run).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// The newest runs kept per pipeline.
    pub keep: Option<u32>,
    /// The age beyond which complete runs go (`30d`, `12h`).
    pub older_than: Option<String>,
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
    id: String,
}

impl Home {
    /// The data directory: `explicit` (`--home`), else `GOFER_HOME`, else the platform's
    /// data directory; created (mode 0700) when absent.
    ///
    /// # Errors
    /// [`CliError::NoHome`] or [`CliError::Io`].
    pub fn open(explicit: Option<PathBuf>) -> Result<Self, CliError> {
        let from_env = std::env::var_os("GOFER_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let dir = match explicit.or(from_env) {
            Some(d) => d,
            None => directories::ProjectDirs::from("dev", "gofer", "gofer")
                .map(|d| d.data_dir().to_path_buf())
                .ok_or(CliError::NoHome)?,
        };
        create_private_dir(&dir)?;
        let id = home_id(&dir)?;
        Ok(Self { dir, id })
    }

    /// The settings in `<home>/config.toml` (defaults when the file is absent).
    ///
    /// # Errors
    /// [`CliError::Usage`] naming the file, the line and the field of a bad setting.
    pub fn config(&self) -> Result<Config, CliError> {
        let path = self.dir.join("config.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(CliError::io(path, "read")(e)),
        };
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| {
                    format!(
                        ":{}",
                        text[..s.start.min(text.len())].matches('\n').count() + 1
                    )
                })
                .unwrap_or_default();
            let message = e.message().lines().collect::<Vec<_>>().join("; ");
            CliError::Usage(format!("{}{line}: {message}", path.display()))
        })
    }

    /// The retention policy of the config, when it sets one.
    ///
    /// # Errors
    /// As [`Home::config`]; a bad `older_than`, named.
    pub fn retention(&self) -> Result<Option<gofer_engine::RetentionPolicy>, CliError> {
        let Some(r) = self.config()?.retention else {
            return Ok(None);
        };
        let mut policy = gofer_engine::RetentionPolicy::new();
        if let Some(n) = r.keep {
            policy = policy.keep_last(n);
        }
        if let Some(age) = &r.older_than {
            let d = crate::pipeline_file::duration(age, "`30d`, `12h`").map_err(|why| {
                CliError::Usage(format!(
                    "{}: retention.older_than: {why}",
                    self.dir.join("config.toml").display()
                ))
            })?;
            policy = policy.max_age(d);
        }
        Ok((!policy.is_empty()).then_some(policy))
    }

    /// The data directory's id: 8 random hex digits, made on first use.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of the task logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// The directory of the engine instance slots.
    pub fn slots_dir(&self) -> PathBuf {
        self.dir.join("slots")
    }

    /// The directory whose `api.sock` serves the API to the tasks of instance `slot`
    /// (one per `gofer run` process, so concurrent runs each serve their own).
    pub fn api_dir(&self, slot: &str) -> PathBuf {
        self.dir.join("api").join(slot)
    }

    /// The log sink over [`Home::logs_dir`].
    pub fn log_sink(&self) -> FileLogSink {
        FileLogSink::new(self.logs_dir())
    }

    async fn sqlite_run_store(&self) -> Result<SqliteRunStore, CliError> {
        let dir = self.dir.clone();
        Ok(
            tokio::task::spawn_blocking(move || SqliteRunStore::open_dir(dir))
                .await
                .map_err(|e| CliError::Usage(format!("opening the run store: {e}")))??,
        )
    }

    /// Opens the secret store, with the key from [`KEY_ENV`] or `<home>/secret.key`
    /// (created on first use, mode 0600).
    ///
    /// # Errors
    /// [`CliError::Key`] or [`CliError::Store`].
    pub async fn secret_store(&self) -> Result<Arc<DynSecretStore>, CliError> {
        let store =
            SqliteSecretStore::open(self.dir.join("secrets.sqlite3"), self.key().await?).await?;
        Ok(Arc::new(store))
    }

    /// The run store, the secret store, and the key the run tokens of `gofer run`
    /// derive from (see `gofer_api::RunTokens::keyed`), with the secret store's key
    /// read once. The token key is derived from the secret store's key, this data
    /// directory's id and the run store's id: a run resumed by
    /// another process gets the token its containers already hold; homes sharing a key
    /// (`GOFER_SECRET_KEY`) and numbering runs alike still get different ones; and a
    /// run store made again (its file deleted) does not give the tokens of the old
    /// one's runs again.
    ///
    /// # Errors
    /// [`CliError::Key`] or [`CliError::Store`].
    pub async fn stores_and_token_key(
        &self,
    ) -> Result<(Arc<DynRunStore>, Arc<DynSecretStore>, SecretBox<[u8; 32]>), CliError> {
        let runs = self.sqlite_run_store().await?;
        let key = self.key().await?;
        let token_key = key.derive(&token_key_context(self.id(), runs.id()));
        let secrets = SqliteSecretStore::open(self.dir.join("secrets.sqlite3"), key).await?;
        Ok((Arc::new(runs), Arc::new(secrets), token_key))
    }

    /// The secret store's key, from [`KEY_ENV`] or `<home>/secret.key`.
    async fn key(&self) -> Result<EncryptionKey, CliError> {
        Ok(match std::env::var_os(KEY_ENV) {
            Some(_) => EncryptionKey::from_env(KEY_ENV)?,
            None => {
                let path = self.dir.join("secret.key");
                tokio::task::spawn_blocking(move || EncryptionKey::load_or_create_file(path))
                    .await
                    .map_err(|e| CliError::Usage(format!("reading the key: {e}")))??
            }
        })
    }

    /// Opens the object store.
    ///
    /// # Errors
    /// [`CliError::Store`].
    pub async fn object_store(&self) -> Result<Arc<DynObjectStore>, CliError> {
        let store = SqliteObjectStore::open(self.dir.join("objects.sqlite3")).await?;
        Ok(Arc::new(store))
    }
}

/// What the run-token key is derived with: the data directory's id and the run
/// store's. A store from before store ids has the empty one, and keeps the key it had.
pub(crate) fn token_key_context(home_id: &str, run_store_id: &str) -> String {
    if run_store_id.is_empty() {
        format!("gofer run tokens {home_id}")
    } else {
        format!("gofer run tokens {home_id} {run_store_id}")
    }
}

/// Creates a directory readable only by its owner (when it does not exist yet).
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(CliError::io(dir, "create directory"))
}

/// Reads `<dir>/home.id`, or creates it (atomically: a racing process reads the
/// winner's).
fn home_id(dir: &Path) -> Result<String, CliError> {
    let path = dir.join("home.id");
    let valid = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match std::fs::read_to_string(&path) {
        Ok(s) if valid(s.trim()) => return Ok(s.trim().to_string()),
        Ok(_) => {
            return Err(CliError::Usage(format!(
                "{}: not 8 hex digits; remove it to make a new one",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CliError::io(&path, "read")(e)),
    }
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes)
        .map_err(|e| CliError::io(&path, "make an id")(std::io::Error::other(e.to_string())))?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".home.id.{id}.tmp"));
    std::fs::write(&tmp, format!("{id}\n")).map_err(CliError::io(&tmp, "write"))?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(id),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => home_id(dir),
        Err(e) => Err(CliError::io(&path, "create")(e)),
    }
}
