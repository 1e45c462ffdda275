//! Variable resolution: merge a task's variables by precedence and substitute store
//! placeholders, just before its container starts.
//!
//! Placeholders are parsed once per run ([`Placeholders::parse`]), when the run starts;
//! resolution only looks values up.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;

use gofer_core::{
    merge_variables, system_variables, EnvValue, Variable, VariableSource, API_MOUNT_DIR,
    API_SOCKET_NAME, GOFER_API_SOCKET, GOFER_API_URL, GOFER_TASK_ATTEMPT,
};
use gofer_core::{
    parse_placeholder, BoxError, DynObjectStore, DynSecretStore, InjectedVariable, Placeholder,
    PlaceholderError, PlaceholderKind, RegistryAuth, RunOptions, StoreError, Task,
};
use gofer_core::{Env, Pipeline};

/// Why a task's variables could not be resolved; the task fails with reason
/// `FailedPrecondition` and no container is created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ResolveError {
    /// The run's API token could not be issued.
    #[error("cannot issue the GOFER_API_TOKEN for this run: {0}")]
    Token(Arc<BoxError>),
    /// A value holds a malformed placeholder.
    #[error("variable {key:?}: {source}")]
    Placeholder {
        key: String,
        #[source]
        source: PlaceholderError,
    },
    /// The store has no such key, refused it, or failed.
    #[error(
        "{}: cannot substitute `{prefix}{{{{{name}}}}}`: {source}",
        subject(key)
    )]
    Lookup {
        key: String,
        prefix: &'static str,
        name: String,
        #[source]
        source: Box<StoreError>,
    },
    /// An object substituted into a variable is not UTF-8 text.
    #[error("variable {key:?}: cannot substitute `{prefix}{{{{{name}}}}}`: object {name:?} is not UTF-8 text")]
    NotText {
        key: String,
        prefix: &'static str,
        name: String,
    },
}

type Parsed = Result<Option<Placeholder>, PlaceholderError>;

/// Every placeholder of a run, parsed once: run options' and each task's variables.
#[derive(Debug, Default)]
pub(crate) struct Placeholders {
    options: HashMap<String, Parsed>,
    tasks: Vec<HashMap<String, Parsed>>,
}

fn parse(value: &str) -> Parsed {
    // Only values holding `{{` can be placeholders (parsing allocates).
    if value.contains("{{") {
        parse_placeholder(value)
    } else {
        Ok(None)
    }
}

impl Placeholders {
    pub(crate) fn parse(pipeline: &Pipeline, options: &RunOptions) -> Self {
        Self {
            options: options
                .variable_list()
                .iter()
                .map(|(k, v)| (k.clone(), parse(v)))
                .collect(),
            // The tasks', then the services' (service `j` resolves as index
            // `tasks.len() + j`).
            tasks: pipeline
                .tasks
                .iter()
                .map(|t| &t.variables)
                .chain(pipeline.services.iter().map(|s| &s.variables))
                .map(|vars| {
                    vars.iter()
                        .filter(|(_, v)| v.contains("{{"))
                        .map(|(k, v)| (k.clone(), parse(v)))
                        .collect()
                })
                .collect(),
        }
    }

    fn get(&self, idx: usize, source: VariableSource, key: &str) -> Parsed {
        let found = match source {
            VariableSource::System => None,
            VariableSource::RunOptions => self.options.get(key),
            VariableSource::PipelineConfig => self.tasks.get(idx).and_then(|m| m.get(key)),
        };
        found.cloned().unwrap_or(Ok(None))
    }
}

/// What a task's container gets.
pub(crate) struct Resolved {
    pub(crate) env: Env,
    /// For display: every injected variable with its source, secrets masked.
    pub(crate) shown: Vec<InjectedVariable>,
    /// Secret values the task's log must be masked with.
    pub(crate) secrets: Vec<SecretString>,
    /// The task's registry credentials, a placeholder password looked up.
    pub(crate) registry_auth: Option<RegistryAuth>,
}

/// The stores and run a task resolves against.
pub(crate) struct Lookup<'a> {
    pub(crate) secrets: &'a DynSecretStore,
    pub(crate) objects: &'a DynObjectStore,
    pub(crate) pipeline: &'a str,
    pub(crate) run: u64,
    pub(crate) options: &'a RunOptions,
    pub(crate) placeholders: &'a Placeholders,
    pub(crate) token: Option<&'a Result<SecretString, Arc<BoxError>>>,
    /// Whether the engine serves its API to tasks on a socket (`GOFER_API_SOCKET`).
    pub(crate) api_socket: bool,
    /// The task's attempt (`GOFER_TASK_ATTEMPT`); `None` for a service.
    pub(crate) attempt: Option<u32>,
}

/// Merges the task's variables by precedence and substitutes store placeholders in
/// the winners of source PipelineConfig and RunOptions (never System).
pub(crate) async fn resolve(
    at: &Lookup<'_>,
    idx: usize,
    task: &Task,
) -> Result<Resolved, ResolveError> {
    let token = match (at.token, task.inject_api_token) {
        (Some(Err(e)), true) => return Err(ResolveError::Token(e.clone())),
        (Some(Ok(t)), _) => Some(t),
        _ => None,
    };
    let mut vars = system_variables(
        at.pipeline,
        at.run,
        &task.id,
        &task.image,
        task.inject_api_token,
        token,
    );
    if let Some(attempt) = at.attempt {
        vars.push(Variable::new(
            GOFER_TASK_ATTEMPT,
            attempt.to_string(),
            VariableSource::System,
        ));
    }
    if task.inject_api_token && token.is_some() && at.api_socket {
        let path = format!("{API_MOUNT_DIR}/{API_SOCKET_NAME}");
        vars.push(Variable::new(
            GOFER_API_URL,
            format!("unix://{path}"),
            VariableSource::System,
        ));
        vars.push(Variable::new(
            GOFER_API_SOCKET,
            path,
            VariableSource::System,
        ));
    }
    vars.extend(
        at.options
            .variable_list()
            .iter()
            .map(|(k, v)| Variable::new(k.clone(), v.clone(), VariableSource::RunOptions)),
    );
    vars.extend(
        task.variables
            .iter()
            .map(|(k, v)| Variable::new(k.clone(), v.clone(), VariableSource::PipelineConfig)),
    );
    let merged = merge_variables(vars);
    let mut env = Env::new();
    let mut shown = Vec::with_capacity(merged.len());
    let mut secrets = Vec::new();
    let registry_auth = match &task.registry_auth {
        None => None,
        Some(auth) => {
            let auth = match auth.password_placeholder() {
                None => auth.clone(),
                Some(p) => match lookup(at, REGISTRY_PASSWORD, &p).await? {
                    EnvValue::Secret(password) => RegistryAuth {
                        username: auth.username.clone(),
                        password,
                    },
                    // A secret placeholder always gives a secret.
                    EnvValue::Plain(text) => RegistryAuth::new(&auth.username, text),
                },
            };
            secrets.push(auth.password.clone());
            Some(auth)
        }
    };
    for var in merged {
        let placeholder = at
            .placeholders
            .get(idx, var.source, &var.key)
            .map_err(|source| ResolveError::Placeholder {
                key: var.key.clone(),
                source,
            })?;
        let (value, kind) = match placeholder {
            None => (var.value, None),
            Some(p) => (lookup(at, &var.key, &p).await?, Some(p.kind)),
        };
        if let EnvValue::Secret(s) = &value {
            secrets.push(s.clone());
        }
        shown.push(InjectedVariable::shown(
            var.key.clone(),
            &value,
            var.source,
            kind,
        ));
        env.insert(var.key, value);
    }
    Ok(Resolved {
        env,
        shown,
        secrets,
        registry_auth,
    })
}

/// What a failed lookup of a registry password names as its key.
const REGISTRY_PASSWORD: &str = "registry_auth.password";

/// What a lookup error names: the registry password's field, or a variable.
fn subject(key: &str) -> String {
    if key == REGISTRY_PASSWORD {
        format!("field `{key}`")
    } else {
        format!("variable {key:?}")
    }
}

async fn lookup(at: &Lookup<'_>, var: &str, p: &Placeholder) -> Result<EnvValue, ResolveError> {
    let failed = |source: StoreError| ResolveError::Lookup {
        key: var.to_string(),
        prefix: p.kind.prefix(),
        name: p.key.clone(),
        source: Box::new(source),
    };
    let text = |bytes: bytes::Bytes| {
        String::from_utf8(bytes.to_vec())
            .map(EnvValue::Plain)
            .map_err(|_| ResolveError::NotText {
                key: var.to_string(),
                prefix: p.kind.prefix(),
                name: p.key.clone(),
            })
    };
    match p.kind {
        PlaceholderKind::PipelineSecret => at
            .secrets
            .get_pipeline_secret(at.pipeline, &p.key)
            .await
            .map(EnvValue::Secret)
            .map_err(failed),
        PlaceholderKind::GlobalSecret => at
            .secrets
            .get_global_secret(at.pipeline, &p.key)
            .await
            .map(EnvValue::Secret)
            .map_err(failed),
        PlaceholderKind::PipelineObject => text(
            at.objects
                .get_pipeline_object(at.pipeline, &p.key)
                .await
                .map_err(failed)?,
        ),
        PlaceholderKind::RunObject => text(
            at.objects
                .get_run_object(at.pipeline, at.run, &p.key)
                .await
                .map_err(failed)?,
        ),
    }
}
