//! The pipeline file format: what a TOML, YAML or JSON file holds (and the Gofer SDK's
//! pipeline JSON, whose spellings are accepted beside gofer's own).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// A pipeline file.
///
/// gofer's own fields and the Gofer SDK's spellings (`always_pull_newest_image`,
/// `registry_auth.user`/`pass`, `depends_on` values `Any`/`Success`/`Failure`) are both
/// accepted, so the JSON a Gofer pipeline program prints runs unchanged.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "gofer pipeline file")]
pub struct PipelineFile {
    /// Unique id: 3–64 characters of `[A-Za-z0-9_-]`.
    pub id: String,
    /// Human-readable name (default: the id).
    #[serde(default)]
    pub name: Option<String>,
    /// Free-text description.
    #[serde(default)]
    pub description: Option<String>,
    /// Most runs of this pipeline in progress at once within one `gofer` process; 0
    /// (the default) is unlimited.
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// The tasks (containers) of the pipeline.
    #[serde(default)]
    pub tasks: Vec<TaskFile>,
    /// Each run gets a shared workspace volume, mounted at `/gofer/workspace` in every
    /// task and removed with the run (default `false`).
    #[serde(default)]
    pub workspace: Option<bool>,
    /// Service containers (a database, a web server) started before the tasks that
    /// name them in `needs_services`, reachable from those tasks on `localhost`.
    #[serde(default)]
    pub services: Vec<ServiceFile>,
    /// The image of the run's network sandbox holder when the pipeline has services: it
    /// must have `sh` and `sleep` (default: the first service's image).
    #[serde(default)]
    pub sandbox_image: Option<String>,
    /// A concurrency group every run of the pipeline is a member of, for the whole run
    /// (as a task's `concurrency`, resolved from the run's variables).
    #[serde(default)]
    pub concurrency: Option<ConcurrencyFile>,
}

/// A service container of the pipeline.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// Unique id among the services: 3–64 characters of `[A-Za-z0-9_-]`.
    pub id: String,
    /// The container image.
    pub image: String,
    /// The command (arguments to the entrypoint).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Replaces the image's entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables; placeholders allowed, as in a task's.
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
    /// When the image is pulled (default `if_not_present`).
    #[serde(default)]
    pub pull_policy: Option<PullPolicyFile>,
    /// How the engine knows the service is ready (default: ready once started).
    #[serde(default)]
    pub readiness: Option<ReadinessFile>,
}

/// A service's readiness check: a command, run in a probe container of the service's
/// image on the service's `localhost`, that exits 0 once the service is ready.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadinessFile {
    /// The probe's command (argv), for example `["nc", "-z", "127.0.0.1", "5432"]`.
    pub command: Vec<String>,
    /// The wait between two probes (default `1s`).
    #[serde(default)]
    pub interval: Option<String>,
    /// The longest the service may take to become ready (default `60s`).
    #[serde(default)]
    pub deadline: Option<String>,
}

/// One task: a container the run executes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    /// Unique id within the pipeline: 3–64 characters of `[A-Za-z0-9_-]`.
    pub id: String,
    /// The container image.
    pub image: String,
    /// Free-text description.
    #[serde(default)]
    pub description: Option<String>,
    /// The command (arguments to the entrypoint).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Replaces the image's entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables (source PipelineConfig). A value may be exactly one
    /// placeholder: `secret{{key}}`, `pipeline_secret{{key}}`, `global_secret{{key}}`,
    /// `pipeline_object{{key}}`, `run_object{{key}}`.
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
    /// Parent task id → the status the parent must end with for this task to run.
    #[serde(default)]
    pub depends_on: Option<BTreeMap<String, ParentStatus>>,
    /// Credentials of the registry holding the image; the password must be a secret
    /// placeholder (`secret{{key}}` or `global_secret{{key}}`).
    #[serde(default)]
    pub registry_auth: Option<RegistryAuthFile>,
    /// Gives the task a `GOFER_API_TOKEN`.
    #[serde(default)]
    pub inject_api_token: Option<bool>,
    /// When the image is pulled (default `if_not_present`).
    #[serde(default)]
    pub pull_policy: Option<PullPolicyFile>,
    /// The Gofer SDK's spelling: `true` is `pull_policy = "always"`.
    #[serde(default)]
    pub always_pull_newest_image: Option<bool>,
    /// Fails the task when it runs longer than this (`30s`, `5m`, `1h 30m`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Resource limits.
    #[serde(default)]
    pub resources: Option<ResourcesFile>,
    /// Attempts the task again when it fails.
    #[serde(default)]
    pub retry: Option<RetryFile>,
    /// Ids of the pipeline's services this task needs: it starts once they are ready.
    #[serde(default)]
    pub needs_services: Option<Vec<String>>,
    /// Runs the task once per combination of values: `{os: [linux, bsd], ver: ["1"],
    /// exclude: [{os: bsd}], include: [{os: mac, ver: "2"}], fail_fast: true}`. Every
    /// key but `include`, `exclude` and `fail_fast` is an axis; each combination is a
    /// task `<id>_<key>-<value>...` with its keys as variables; a task depending on this
    /// one waits for every combination.
    #[serde(default)]
    pub matrix: Option<MatrixFile>,
    /// A concurrency group: at most `limit` (default 1) of its members at once in this
    /// engine, the others waiting in order (`policy = "queue"`, the default) or the
    /// newest cancelling the one in progress (`"cancel_in_progress"`). The group is a
    /// template over variables: `{group = "deploy-{{ENV}}"}`.
    #[serde(default)]
    pub concurrency: Option<ConcurrencyFile>,
    /// Directories kept between runs: `[{key = "cargo-{{digest:Cargo.lock}}", path =
    /// "/usr/local/cargo/registry", restore_keys = ["cargo-"]}]`. A run restores the
    /// newest saved cache of the key (else of the first restore key prefix that
    /// matches) into the path, and saves the path under the key when the task
    /// succeeds and the key had no cache yet.
    #[serde(default)]
    pub caches: Vec<CacheFile>,
}

/// A task's cache (see `TaskFile::caches`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// The key: `{{NAME}}` is the plain value of variable NAME, `{{digest:PATH}}` the
    /// first 16 hex digits of the SHA-256 of workspace file PATH when the task starts.
    pub key: String,
    /// Where the task sees the cache (an absolute path).
    pub path: String,
    /// Key prefixes (templates too) tried in order when the key has no cache.
    #[serde(default)]
    pub restore_keys: Vec<String>,
}

/// A task's concurrency group (see `TaskFile::concurrency`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyFile {
    /// The group's name; `{{NAME}}` is the value of variable NAME.
    pub group: String,
    /// Most members running at once (1 to 1000, default 1).
    #[serde(default)]
    pub limit: Option<u32>,
    /// `queue` (default) or `cancel_in_progress`.
    #[serde(default)]
    pub policy: Option<ConcurrencyPolicyFile>,
}

/// What a member past the limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyPolicyFile {
    /// Waits its turn.
    Queue,
    /// Cancels the one in progress.
    CancelInProgress,
}

/// A task's matrix (see `TaskFile::matrix`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct MatrixFile {
    /// Combinations to add, or keys to add to the combinations they match on the axes.
    #[serde(default)]
    pub include: Vec<BTreeMap<String, ScalarFile>>,
    /// Combinations to leave out: each one matching all of an entry's keys.
    #[serde(default)]
    pub exclude: Vec<BTreeMap<String, ScalarFile>>,
    /// The first combination that fails cancels the others.
    #[serde(default)]
    pub fail_fast: bool,
    /// The axes: name → values.
    #[serde(flatten)]
    pub axes: BTreeMap<String, Vec<ScalarFile>>,
}

/// A matrix value: text, a number or a boolean (used as its text).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ScalarFile {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl ScalarFile {
    /// The value's text.
    pub fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

/// How a failed task is attempted again.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    /// Attempts in all, the first included (1 to 100).
    pub attempts: u32,
    /// The wait before the second attempt (`1s`, `500ms`; default none).
    #[serde(default)]
    pub initial_backoff: Option<String>,
    /// What each later wait is multiplied by (1 to 1000; default 1).
    #[serde(default)]
    pub factor: Option<f64>,
    /// The longest wait (default `5m`).
    #[serde(default)]
    pub max_backoff: Option<String>,
    /// Retry only an exit with one of these codes (default: any failure).
    #[serde(default)]
    pub exit_codes: Option<Vec<i64>>,
    /// Retry only scheduler errors (a failed pull or start); not with `exit_codes`.
    #[serde(default)]
    pub scheduler_errors_only: Option<bool>,
}

/// What a parent must have ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ParentStatus {
    /// Successful, Failed or Skipped.
    #[serde(rename = "any", alias = "Any", alias = "ANY")]
    Any,
    /// Successful.
    #[serde(rename = "success", alias = "Success", alias = "SUCCESS")]
    Success,
    /// Failed.
    #[serde(rename = "failure", alias = "Failure", alias = "FAILURE")]
    Failure,
}

/// When the image is pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicyFile {
    /// Before every start.
    Always,
    /// Only when absent locally.
    IfNotPresent,
    /// Never; fail when absent.
    Never,
}

/// Registry credentials. `username` (SDK: `user`) and `password` (SDK: `pass`); the
/// password must be a secret placeholder, never the password itself.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuthFile {
    /// The user name.
    #[serde(default)]
    pub username: Option<String>,
    /// The Gofer SDK's spelling of `username`.
    #[serde(default)]
    pub user: Option<String>,
    /// A secret placeholder naming the password: `secret{{key}}` or
    /// `global_secret{{key}}`.
    #[serde(default)]
    pub password: Option<String>,
    /// The Gofer SDK's spelling of `password`.
    #[serde(default)]
    pub pass: Option<String>,
}

/// Resource limits of a task's container.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesFile {
    /// Memory limit in bytes.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// CPU limit in cores (`0.5` is half a core).
    #[serde(default)]
    pub cpus: Option<f64>,
}

/// The JSON Schema of the file format, pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(PipelineFile);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
