//! [`FakeScheduler`]: the in-memory engine, its scripting API and its records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;

use super::behaviour::{Behaviour, PullFailure};
use super::container::{Clock, Container, Process};
use crate::error::SchedulerError;
use crate::scheduler::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, ExitStatus,
    LogStream, NetworkMode, PullProgress, SandboxSpec, Scheduler,
};
use crate::task::PullPolicy;

/// The fake's name in errors and spans.
pub const NAME: &str = "fake";

/// One image pull the fake performed (or tried).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullRecord {
    /// The image reference as requested.
    pub image: String,
    /// The registry user name sent, if any (never the password).
    pub username: Option<String>,
    /// The pull policy of the request.
    pub policy: PullPolicy,
    /// Whether the pull succeeded.
    pub succeeded: bool,
}

/// An image's configuration: what runs when a request overrides nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageConfig {
    /// The image's entrypoint.
    pub entrypoint: Vec<String>,
    /// The image's command.
    pub cmd: Vec<String>,
    /// The image's environment (`ENV` lines); a request's env overrides it.
    pub env: Vec<(String, String)>,
}

impl ImageConfig {
    /// An image whose default command is `cmd`, with no entrypoint and no env.
    pub fn cmd<I, S>(cmd: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            cmd: cmd.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds an image environment variable.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the entrypoint.
    #[must_use]
    pub fn entrypoint<I, S>(mut self, e: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = e.into_iter().map(Into::into).collect();
        self
    }
}

#[derive(Debug, Clone)]
struct RegistryImage {
    /// `(username, password)` the registry requires, if any.
    credentials: Option<(String, String)>,
}

#[derive(Debug)]
struct State {
    capabilities: Capabilities,
    default_behaviour: Behaviour,
    image_rules: HashMap<String, Behaviour>,
    program_rules: HashMap<String, Behaviour>,
    name_rules: Vec<(String, Behaviour)>,
    image_configs: HashMap<String, ImageConfig>,
    local_images: BTreeSet<String>,
    registry: HashMap<String, RegistryImage>,
    containers: BTreeMap<ContainerId, Arc<Container>>,
    names: HashMap<String, ContainerId>,
    requests: Vec<ContainerSpec>,
    pulls: Vec<PullRecord>,
    sandboxes: Vec<SandboxSpec>,
    next_id: u64,
}

/// A faithful in-memory container engine, for tests.
///
/// It has the state machine of a real engine (a name cannot be used twice, logs stay
/// readable after exit, removing a running container needs force, a wait returns at
/// once for an exited container and [`ExitStatus::Removed`] when the container is
/// removed while waited on, ...), and it passes the conformance suite. What a
/// container does is scripted with a [`Behaviour`], chosen in this order: by container
/// name ([`FakeScheduler::on_name`], longest matching prefix), by program (the first
/// word of the effective command, [`FakeScheduler::program`]), by image
/// ([`FakeScheduler::image`]), else the default ([`FakeScheduler::default_behaviour`],
/// exit 0 at once).
///
/// Images: an image is *present locally* ([`FakeScheduler::local_image`]) or can be
/// pulled from the fake registry ([`FakeScheduler::image`] and
/// [`FakeScheduler::registry_image`], optionally with required credentials); the pull
/// policy is honoured like a real engine and every pull is recorded
/// ([`FakeScheduler::pulls`]). Every request is recorded whole, environment included
/// ([`FakeScheduler::requests`]).
///
/// Everything runs on tokio time, so under `tokio::time::pause()` a test is
/// deterministic and sleeps cost nothing. `FakeScheduler` is a cheap handle: clones
/// share the same engine, so a test can keep one and hand another to the code under
/// test.
///
/// ```
/// # tokio_test_block_on(async {
/// use gofer_core::fake::{Behaviour, FakeScheduler};
/// use gofer_core::{ContainerSpec, ExitStatus, Scheduler};
///
/// let fake = FakeScheduler::new().image("busybox", Behaviour::new().stdout("hi\n").exit_code(3));
/// let id = fake.start(ContainerSpec::new("job-1", "busybox").env_var("A", "1")).await?;
/// assert_eq!(fake.wait(&id).await?, ExitStatus::Exited { code: 3 });
/// assert_eq!(fake.requests()[0].env["A"].expose(), "1");
/// assert_eq!(fake.pulls().len(), 1);
/// # Ok::<_, gofer_core::SchedulerError>(())
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FakeScheduler {
    state: Arc<Mutex<State>>,
    clock: Clock,
}

impl Default for FakeScheduler {
    fn default() -> Self {
        Self::new()
    }
}

/// `name:latest` when the reference has neither tag nor digest.
pub(crate) fn normalize_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

impl FakeScheduler {
    /// An engine with no images, every capability but exec and attach, and the
    /// default behaviour "exit 0 at once".
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                capabilities: Capabilities::none()
                    .with_memory_limit(true)
                    .with_cpu_limit(true)
                    .with_network_sandbox(true)
                    .with_registry_auth(true),
                default_behaviour: Behaviour::new(),
                image_rules: HashMap::new(),
                program_rules: HashMap::new(),
                name_rules: Vec::new(),
                image_configs: HashMap::new(),
                local_images: BTreeSet::new(),
                registry: HashMap::new(),
                containers: BTreeMap::new(),
                names: HashMap::new(),
                requests: Vec::new(),
                pulls: Vec::new(),
                sandboxes: Vec::new(),
                next_id: 1,
            })),
            clock: Clock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Scripts containers of `image` and makes the image pullable from the registry.
    #[must_use]
    pub fn image(self, image: &str, behaviour: Behaviour) -> Self {
        {
            let mut s = self.lock();
            let key = normalize_image(image);
            s.registry
                .entry(key.clone())
                .or_insert(RegistryImage { credentials: None });
            s.image_rules.insert(key, behaviour);
        }
        self
    }

    /// Scripts containers whose name is `name_or_prefix` or starts with it (the
    /// longest matching prefix wins).
    #[must_use]
    pub fn on_name(self, name_or_prefix: &str, behaviour: Behaviour) -> Self {
        self.lock()
            .name_rules
            .push((name_or_prefix.to_string(), behaviour));
        self
    }

    /// Scripts containers whose effective command's program (first word, without
    /// directories) is `program`, e.g. `"env"` or `"echo"`.
    #[must_use]
    pub fn program(self, program: &str, behaviour: Behaviour) -> Self {
        self.lock()
            .program_rules
            .insert(program.to_string(), behaviour);
        self
    }

    /// Sets the behaviour of containers no rule matches.
    #[must_use]
    pub fn default_behaviour(self, behaviour: Behaviour) -> Self {
        self.lock().default_behaviour = behaviour;
        self
    }

    /// Makes `image` present locally (no pull needed; a pull may still fail if the
    /// registry lacks it).
    #[must_use]
    pub fn local_image(self, image: &str) -> Self {
        self.lock().local_images.insert(normalize_image(image));
        self
    }

    /// Makes `image` pullable from the registry without credentials.
    #[must_use]
    pub fn registry_image(self, image: &str) -> Self {
        self.lock()
            .registry
            .insert(normalize_image(image), RegistryImage { credentials: None });
        self
    }

    /// Makes `image` pullable only with these credentials; other or missing
    /// credentials give [`SchedulerError::Unauthorized`].
    #[must_use]
    pub fn private_registry_image(self, image: &str, username: &str, password: &str) -> Self {
        self.lock().registry.insert(
            normalize_image(image),
            RegistryImage {
                credentials: Some((username.to_string(), password.to_string())),
            },
        );
        self
    }

    /// Sets an image's default entrypoint, command and environment.
    #[must_use]
    pub fn image_config(self, image: &str, config: ImageConfig) -> Self {
        self.lock()
            .image_configs
            .insert(normalize_image(image), config);
        self
    }

    /// Sets the declared capabilities (for instance without
    /// [`Capabilities::network_sandbox`], to model a backend that has none).
    #[must_use]
    pub fn capabilities(self, capabilities: Capabilities) -> Self {
        self.lock().capabilities = capabilities;
        self
    }

    /// Every start request received, in order, whole (environment included), also
    /// those that failed.
    pub fn requests(&self) -> Vec<ContainerSpec> {
        self.lock().requests.clone()
    }

    /// The last start request for a container of this name.
    pub fn request(&self, name: &str) -> Option<ContainerSpec> {
        self.lock()
            .requests
            .iter()
            .rev()
            .find(|r| r.name == name)
            .cloned()
    }

    /// Every image pull performed or tried, in order.
    pub fn pulls(&self) -> Vec<PullRecord> {
        self.lock().pulls.clone()
    }

    /// Every sandbox request received, in order.
    pub fn sandbox_requests(&self) -> Vec<SandboxSpec> {
        self.lock().sandboxes.clone()
    }

    /// How many containers exist (created and not removed), sandboxes included.
    pub fn containers(&self) -> usize {
        self.lock().containers.len()
    }

    /// How many containers are running now.
    pub fn running(&self) -> usize {
        self.lock()
            .containers
            .values()
            .filter(|c| c.state() == ContainerState::Running)
            .count()
    }

    /// Whether `image` is present locally now (after pulls).
    pub fn has_local_image(&self, image: &str) -> bool {
        self.lock().local_images.contains(&normalize_image(image))
    }

    fn find(&self, id: &ContainerId) -> Result<Arc<Container>, SchedulerError> {
        let s = self.lock();
        let found = s
            .containers
            .get(id)
            .or_else(|| s.names.get(&id.0).and_then(|real| s.containers.get(real)));
        found
            .cloned()
            .ok_or_else(|| SchedulerError::NoSuchContainer {
                scheduler: NAME,
                id: id.0.clone(),
            })
    }

    /// The behaviour and the effective argv for a request.
    fn resolve(&self, spec: &ContainerSpec) -> (Behaviour, Vec<String>, Vec<(String, String)>) {
        let s = self.lock();
        let image = normalize_image(&spec.image);
        let config = s.image_configs.get(&image).cloned().unwrap_or_default();
        // Like Docker: overriding the entrypoint also drops the image's command.
        let (entrypoint, cmd) = match (&spec.entrypoint, &spec.command) {
            (Some(e), Some(c)) => (e.clone(), c.clone()),
            (Some(e), None) => (e.clone(), Vec::new()),
            (None, Some(c)) => (config.entrypoint.clone(), c.clone()),
            (None, None) => (config.entrypoint.clone(), config.cmd.clone()),
        };
        let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
        let program = argv
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string());
        let by_name = s
            .name_rules
            .iter()
            .filter(|(p, _)| spec.name.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, b)| b.clone());
        let behaviour = by_name
            .or_else(|| program.and_then(|p| s.program_rules.get(&p).cloned()))
            .or_else(|| s.image_rules.get(&image).cloned())
            .unwrap_or_else(|| s.default_behaviour.clone());
        (behaviour, argv, config.env)
    }

    fn pull(&self, spec: &ContainerSpec, behaviour: &Behaviour) -> Result<(), SchedulerError> {
        let image = normalize_image(&spec.image);
        let username = spec.registry_auth.as_ref().map(|a| a.username.clone());
        let result = {
            let s = self.lock();
            match (behaviour.pull_failure, s.registry.get(&image)) {
                (Some(PullFailure::NoSuchImage), _) | (None, None) => {
                    Err(SchedulerError::NoSuchImage {
                        scheduler: NAME,
                        image: spec.image.clone(),
                        message: "manifest unknown: not found in the registry".to_string(),
                    })
                }
                (Some(PullFailure::Unauthorized), _) => Err(unauthorized(spec)),
                (None, Some(reg)) => match (&reg.credentials, &spec.registry_auth) {
                    (None, _) => Ok(()),
                    (Some((u, p)), Some(auth))
                        if *u == auth.username && p.as_str() == auth.password.expose_secret() =>
                    {
                        Ok(())
                    }
                    (Some(_), _) => Err(unauthorized(spec)),
                },
            }
        };
        let mut s = self.lock();
        s.pulls.push(PullRecord {
            image: spec.image.clone(),
            username,
            policy: spec.pull_policy,
            succeeded: result.is_ok(),
        });
        if result.is_ok() {
            s.local_images.insert(image);
        }
        drop(s);
        if result.is_ok() {
            if let Some(report) = &spec.pull_progress {
                report(PullProgress::new(spec.image.clone(), "Pulling fs layer"));
                report(PullProgress::new(spec.image.clone(), "Download complete"));
            }
        }
        result
    }

    /// Creates and starts a container under the lock, so a name is never used twice.
    fn create(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Arc<Container>, SchedulerError> {
        let mut s = self.lock();
        if s.names.contains_key(name) {
            return Err(SchedulerError::Conflict {
                scheduler: NAME,
                id: name.to_string(),
                message: "the container name is already in use".to_string(),
            });
        }
        let id = ContainerId(format!(
            "{:016x}",
            s.next_id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ));
        s.next_id += 1;
        let c = Container::new(id.clone(), name.to_string(), labels, self.clock);
        s.names.insert(name.to_string(), id.clone());
        s.containers.insert(id, Arc::clone(&c));
        Ok(c)
    }

    fn forget(&self, c: &Container) {
        let mut s = self.lock();
        s.containers.remove(&c.id);
        if s.names.get(&c.name) == Some(&c.id) {
            s.names.remove(&c.name);
        }
    }
}

fn unauthorized(spec: &ContainerSpec) -> SchedulerError {
    SchedulerError::Unauthorized {
        scheduler: NAME,
        image: spec.image.clone(),
        message: if spec.registry_auth.is_some() {
            "the registry refused the credentials".to_string()
        } else {
            "the registry requires credentials".to_string()
        },
    }
}

#[async_trait]
impl Scheduler for FakeScheduler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        self.lock().capabilities
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scheduler = NAME, name = %spec.name, image = %spec.image))]
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        self.lock().requests.push(spec.clone());
        if spec.name.is_empty() {
            return Err(SchedulerError::InvalidRequest {
                scheduler: NAME,
                field: "name",
                message: "a container name is required".to_string(),
            });
        }
        if let NetworkMode::Sandbox(sandbox) = &spec.network {
            let holder = self.find(sandbox)?;
            if holder.state() != ContainerState::Running {
                return Err(SchedulerError::Conflict {
                    scheduler: NAME,
                    id: sandbox.0.clone(),
                    message: "the network sandbox is not running".to_string(),
                });
            }
        }
        let (behaviour, argv, image_env) = self.resolve(&spec);
        let present = self
            .lock()
            .local_images
            .contains(&normalize_image(&spec.image));
        match spec.pull_policy {
            PullPolicy::Never if !present => {
                return Err(SchedulerError::NoSuchImage {
                    scheduler: NAME,
                    image: spec.image.clone(),
                    message: "not present locally and the pull policy is Never".to_string(),
                })
            }
            PullPolicy::Never => {}
            PullPolicy::IfNotPresent if present => {}
            PullPolicy::IfNotPresent | PullPolicy::Always => self.pull(&spec, &behaviour)?,
        }
        // Tokio-aware yield, so concurrent starts interleave like real ones.
        tokio::task::yield_now().await;
        let container = self.create(&spec.name, spec.labels.clone())?;
        if let Some(message) = &behaviour.start_failure {
            self.forget(&container);
            container.mark_removed();
            return Err(SchedulerError::engine(NAME, "start", message.clone()));
        }
        let process = Process::from_spec(&spec, argv, &image_env);
        container.spawn(behaviour, process);
        tracing::debug!(id = %container.id, "started");
        Ok(container.id.clone())
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        let c = self.find(id)?;
        Ok(c.wait().await)
    }

    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        Ok(self.find(id)?.state())
    }

    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        Ok(self.find(id)?.logs())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scheduler = NAME, id = %id))]
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        let c = self.find(id)?;
        if matches!(c.state(), ContainerState::Exited { .. }) {
            return Ok(());
        }
        c.send_term();
        if tokio::time::timeout(grace, c.wait()).await.is_err() {
            c.send_kill();
            c.wait().await;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scheduler = NAME, id = %id, force))]
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        let c = self.find(id)?;
        if c.state() == ContainerState::Running && !force {
            return Err(SchedulerError::Conflict {
                scheduler: NAME,
                id: id.0.clone(),
                message: "cannot remove a running container without force".to_string(),
            });
        }
        self.forget(&c);
        c.mark_removed();
        Ok(())
    }

    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        let all: Vec<Arc<Container>> = self.lock().containers.values().cloned().collect();
        Ok(all
            .into_iter()
            .filter(|c| labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
            .map(|c| ContainerSummary::new(c.id.clone(), &c.name, c.labels.clone(), c.state()))
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scheduler = NAME, name = %spec.name))]
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        self.lock().sandboxes.push(spec.clone());
        if !self.lock().capabilities.network_sandbox {
            return Err(SchedulerError::NotSupported {
                scheduler: NAME,
                operation: "create_sandbox",
            });
        }
        let c = self.create(&spec.name, spec.labels.clone())?;
        let process = Process {
            argv: vec!["sleep".to_string(), "infinity".to_string()],
            env: Vec::new(),
            init: true,
        };
        c.spawn(Behaviour::run_until_stopped(), process);
        Ok(c.id.clone())
    }
}
