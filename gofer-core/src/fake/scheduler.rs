//! [`FakeScheduler`]: the in-memory engine, its scripting API and its records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use secrecy::{ExposeSecret, SecretString};

use super::behaviour::{Behaviour, PullFailure};
use super::container::{Clock, Container};
use super::image::{normalize_image, ImageConfig, PullRecord, RegistryImage};
use crate::error::SchedulerError;
use crate::scheduler::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, PullProgress, SandboxSpec,
};

/// The fake's name in errors and spans.
pub const NAME: &str = "fake";

pub(super) struct State {
    pub(super) capabilities: Capabilities,
    pub(super) default_behaviour: Behaviour,
    pub(super) image_rules: HashMap<String, Behaviour>,
    pub(super) program_rules: HashMap<String, Behaviour>,
    pub(super) name_rules: Vec<(String, Behaviour)>,
    pub(super) image_configs: HashMap<String, ImageConfig>,
    pub(super) local_images: BTreeSet<String>,
    pub(super) registry: HashMap<String, RegistryImage>,
    pub(super) containers: BTreeMap<ContainerId, Arc<Container>>,
    pub(super) names: HashMap<String, ContainerId>,
    pub(super) requests: Vec<ContainerSpec>,
    pub(super) pulls: Vec<PullRecord>,
    pub(super) sandboxes: Vec<SandboxSpec>,
    pub(super) next_id: u64,
    /// How many times a container under each name began to run.
    pub(super) started: HashMap<String, usize>,
}

/// A faithful in-memory container engine, for tests.
///
/// It has the state machine of a real engine (a name cannot be used twice, logs stay
/// readable after exit, removing a running container needs force, a wait returns at
/// once for an exited container and [`ExitStatus::Removed`](crate::ExitStatus::Removed) when the container is
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
/// deterministic and sleeps cost nothing. Each container's process is a tokio task, so
/// calls must run inside a tokio runtime with time enabled. `FakeScheduler` is a cheap handle: clones
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
#[derive(Clone)]
pub struct FakeScheduler {
    state: Arc<Mutex<State>>,
    clock: Clock,
}

impl std::fmt::Debug for FakeScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("FakeScheduler")
            .field("containers", &s.containers.len())
            .field("requests", &s.requests.len())
            .field("pulls", &s.pulls.len())
            .field("local_images", &s.local_images)
            .finish_non_exhaustive()
    }
}

impl Default for FakeScheduler {
    fn default() -> Self {
        Self::new()
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
                    .with_registry_auth(true)
                    .with_mounts(true)
                    .with_local_bind_mounts(true)
                    .with_per_stop_grace(true),
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
                started: HashMap::new(),
            })),
            clock: Clock::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
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
                credentials: Some((
                    username.to_string(),
                    SecretString::from(password.to_string()),
                )),
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
    pub fn with_capabilities(self, capabilities: Capabilities) -> Self {
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

    /// How many times a container named `name` began to run (a start, or a start of
    /// a container created unstarted); more than one means a task ran twice.
    pub fn started_count(&self, name: &str) -> usize {
        self.lock().started.get(name).copied().unwrap_or(0)
    }

    pub(super) fn count_start(&self, name: &str) {
        *self.lock().started.entry(name.to_string()).or_default() += 1;
    }

    /// Whether `image` is present locally now (after pulls).
    pub fn has_local_image(&self, image: &str) -> bool {
        self.lock().local_images.contains(&normalize_image(image))
    }

    pub(super) fn find(&self, id: &ContainerId) -> Result<Arc<Container>, SchedulerError> {
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
    pub(super) fn resolve(
        &self,
        spec: &ContainerSpec,
    ) -> (Behaviour, Vec<String>, Vec<(String, String)>) {
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

    pub(super) fn pull(
        &self,
        spec: &ContainerSpec,
        behaviour: &Behaviour,
    ) -> Result<(), SchedulerError> {
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
                        if *u == auth.username
                            && p.expose_secret() == auth.password.expose_secret() =>
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
    pub(super) fn create(
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

    pub(super) fn forget(&self, c: &Container) {
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
