//! Variables, their sources, and the precedence merge.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Where a variable came from. Ordered from most to least important: on a key conflict
/// the more important source wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableSource {
    /// Set on the task in the pipeline configuration (most important).
    PipelineConfig,
    /// Given when the run was started (hosts and extensions).
    RunOptions,
    /// Injected by the engine (least important).
    System,
}

/// A variable's value: plain text, or a secret that is never shown.
#[derive(Clone)]
pub enum EnvValue {
    /// Shown as is.
    Plain(String),
    /// Shown only as `[MASKED]`; reach the text with [`EnvValue::expose`].
    Secret(SecretString),
}

impl EnvValue {
    /// The text handed to the container.
    pub fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(s) => s,
            EnvValue::Secret(s) => s.expose_secret(),
        }
    }

    /// Whether this value is a secret.
    pub fn is_secret(&self) -> bool {
        matches!(self, EnvValue::Secret(_))
    }

    /// The text to show a human: the value, or [`MASK`] for a secret.
    pub fn display(&self) -> &str {
        match self {
            EnvValue::Plain(s) => s,
            EnvValue::Secret(_) => MASK,
        }
    }
}

/// What a masked value is shown as.
pub const MASK: &str = "[MASKED]";

impl fmt::Debug for EnvValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvValue::Plain(s) => fmt::Debug::fmt(s, f),
            EnvValue::Secret(_) => f.write_str(MASK),
        }
    }
}

impl PartialEq for EnvValue {
    fn eq(&self, other: &Self) -> bool {
        self.is_secret() == other.is_secret() && self.expose() == other.expose()
    }
}

impl From<String> for EnvValue {
    fn from(s: String) -> Self {
        EnvValue::Plain(s)
    }
}

impl From<&str> for EnvValue {
    fn from(s: &str) -> Self {
        EnvValue::Plain(s.to_string())
    }
}

/// One environment variable with its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// The environment variable name.
    pub key: String,
    /// The value.
    pub value: EnvValue,
    /// Where it came from.
    pub source: VariableSource,
}

impl Variable {
    /// A plain variable.
    pub fn new(key: impl Into<String>, value: impl Into<String>, source: VariableSource) -> Self {
        Self {
            key: key.into(),
            value: EnvValue::Plain(value.into()),
            source,
        }
    }
}

/// `GOFER_PIPELINE_ID`: the pipeline id.
pub const GOFER_PIPELINE_ID: &str = "GOFER_PIPELINE_ID";
/// `GOFER_RUN_ID`: the run number.
pub const GOFER_RUN_ID: &str = "GOFER_RUN_ID";
/// `GOFER_TASK_ID`: the task id.
pub const GOFER_TASK_ID: &str = "GOFER_TASK_ID";
/// `GOFER_TASK_IMAGE`: the image the task runs.
pub const GOFER_TASK_IMAGE: &str = "GOFER_TASK_IMAGE";
/// `GOFER_TASK_ATTEMPT`: which attempt of the task this container is, `1` for the first
/// (see [`RetryPolicy`](crate::RetryPolicy)); not set in services.
pub const GOFER_TASK_ATTEMPT: &str = "GOFER_TASK_ATTEMPT";
/// `GOFER_API_TOKEN`: a per-run API token, when asked for and available.
pub const GOFER_API_TOKEN: &str = "GOFER_API_TOKEN";
/// `GOFER_API_SOCKET`: the path, inside the task's container, of the Unix socket the
/// host's API answers on, beside `GOFER_API_TOKEN` when the engine has an API socket.
pub const GOFER_API_SOCKET: &str = "GOFER_API_SOCKET";
/// `GOFER_API_URL`: the same socket as a URL, `unix:///run/gofer/api.sock`.
pub const GOFER_API_URL: &str = "GOFER_API_URL";
/// Where a task's container sees the host's API socket directory.
pub const API_MOUNT_DIR: &str = "/run/gofer";
/// The file name of the API socket in its directory (host and container alike).
pub const API_SOCKET_NAME: &str = "api.sock";

/// Every key the engine sets itself in a task's container. A task variable or a run
/// variable of one of these names replaces the engine's value (the precedence is the
/// specification's), which a host may want to warn about.
pub const SYSTEM_KEYS: &[&str] = &[
    GOFER_PIPELINE_ID,
    GOFER_RUN_ID,
    GOFER_TASK_ID,
    GOFER_TASK_IMAGE,
    GOFER_TASK_ATTEMPT,
    GOFER_API_TOKEN,
    GOFER_API_SOCKET,
    GOFER_API_URL,
];

/// The system variables the engine injects into a task's container.
///
/// `api_token` is added as `GOFER_API_TOKEN` only when the task asked for a token
/// (`inject_api_token`) **and** one is available; it is a secret value.
pub fn system_variables(
    pipeline_id: &str,
    run_id: u64,
    task_id: &str,
    image: &str,
    inject_api_token: bool,
    api_token: Option<&SecretString>,
) -> Vec<Variable> {
    let mut vars = vec![
        Variable::new(GOFER_PIPELINE_ID, pipeline_id, VariableSource::System),
        Variable::new(GOFER_RUN_ID, run_id.to_string(), VariableSource::System),
        Variable::new(GOFER_TASK_ID, task_id, VariableSource::System),
        Variable::new(GOFER_TASK_IMAGE, image, VariableSource::System),
    ];
    if let (true, Some(token)) = (inject_api_token, api_token) {
        vars.push(Variable {
            key: GOFER_API_TOKEN.to_string(),
            value: EnvValue::Secret(token.clone()),
            source: VariableSource::System,
        });
    }
    vars
}

/// Merges variables from any sources: for each key the most important source wins
/// (within one source the last one given wins). The result is sorted by key.
///
/// ```
/// use gofer_core::{merge_variables, Variable, VariableSource::*};
/// let merged = merge_variables([
///     Variable::new("GOFER_PIPELINE_ID", "system", System),
///     Variable::new("GOFER_PIPELINE_ID", "mine", PipelineConfig),
/// ]);
/// assert_eq!(merged[0].value.expose(), "mine");
/// ```
pub fn merge_variables(vars: impl IntoIterator<Item = Variable>) -> Vec<Variable> {
    let mut out: BTreeMap<String, Variable> = BTreeMap::new();
    for v in vars {
        match out.get(&v.key) {
            Some(existing) if existing.source < v.source => {}
            _ => {
                out.insert(v.key.clone(), v);
            }
        }
    }
    out.into_values().collect()
}

/// Whether `key` is a valid environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_valid_env_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn task_config_replaces_system_pipeline_id() {
        let mut vars = system_variables("pipe", 7, "task", "busybox", false, None);
        vars.push(Variable::new(
            GOFER_PIPELINE_ID,
            "override",
            VariableSource::PipelineConfig,
        ));
        vars.push(Variable::new(
            GOFER_PIPELINE_ID,
            "from-run",
            VariableSource::RunOptions,
        ));
        let merged = merge_variables(vars);
        let pid = merged
            .iter()
            .find(|v| v.key == GOFER_PIPELINE_ID)
            .expect("present");
        assert_eq!(pid.value.expose(), "override");
        assert_eq!(pid.source, VariableSource::PipelineConfig);
        assert_eq!(merged.len(), 4);
    }

    #[test]
    fn token_only_when_asked_and_available() {
        let token = SecretString::from("tok-123".to_string());
        let keys = |v: Vec<Variable>| v.into_iter().map(|v| v.key).collect::<Vec<_>>();
        assert!(!keys(system_variables("p", 1, "t", "i", true, None))
            .contains(&GOFER_API_TOKEN.to_string()));
        assert!(
            !keys(system_variables("p", 1, "t", "i", false, Some(&token)))
                .contains(&GOFER_API_TOKEN.to_string())
        );
        let vars = system_variables("p", 1, "t", "i", true, Some(&token));
        let tok = vars
            .iter()
            .find(|v| v.key == GOFER_API_TOKEN)
            .expect("token");
        assert!(tok.value.is_secret());
        assert!(!format!("{vars:?}").contains("tok-123"));
    }

    #[test]
    fn env_key_rules() {
        for ok in ["A", "_", "GOFER_X1", "a_b"] {
            assert!(is_valid_env_key(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "É"] {
            assert!(!is_valid_env_key(bad), "{bad}");
        }
    }

    fn source() -> impl Strategy<Value = VariableSource> {
        prop_oneof![
            Just(VariableSource::PipelineConfig),
            Just(VariableSource::RunOptions),
            Just(VariableSource::System)
        ]
    }

    proptest! {
        #[test]
        fn merge_keeps_most_important_source(
            vars in proptest::collection::vec(("[A-E]", "[a-z]{0,3}", source()), 0..40)
        ) {
            let input: Vec<Variable> = vars.iter().map(|(k, v, s)| Variable::new(k.clone(), v.clone(), *s)).collect();
            let merged = merge_variables(input.clone());
            // One entry per distinct key.
            let mut keys: Vec<_> = input.iter().map(|v| v.key.clone()).collect();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(merged.iter().map(|v| v.key.clone()).collect::<Vec<_>>(), keys);
            for m in &merged {
                let best = input.iter().filter(|v| v.key == m.key).map(|v| v.source).min().expect("key seen");
                prop_assert_eq!(m.source, best);
                // Last of the winning source wins.
                let last = input.iter().rev().find(|v| v.key == m.key && v.source == best).expect("seen");
                prop_assert_eq!(&m.value, &last.value);
            }
        }
    }
}
