//! Images: pulled from a registry into containerd's content store and unpacked into
//! snapshots, as `ctr pull` does (containerd 1.6 has no server-side pull). The registry
//! half is oci-client's (manifest resolution, token and basic auth, blob streams); the
//! rest goes through containerd's content, diff, snapshot, image and lease services.
//!
//! Everything a pull writes is held by a lease until the image record points at it;
//! the image's manifest and config carry containerd's garbage-collection labels, so the
//! blobs and the unpacked snapshot chain stay exactly as long as the image does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::CreateRequest as CreateLease;
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, DeleteRequest, GetImageRequest, Image, InfoRequest,
    ReadContentRequest, UpdateImageRequest, WriteAction, WriteContentRequest,
};
use containerd_client::types::Descriptor;
use futures::StreamExt;
use gofer_core::{ContainerSpec, PullPolicy, PullProgress, SchedulerError};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::client::{exists, not_found, Client};
use crate::NAME;

/// Reports a pull step: status, and the layer it is about.
type Progress<'a> = dyn Fn(&str, Option<&str>) + Sync + 'a;

/// What a container needs of its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageConfig {
    /// The image's full name (`docker.io/library/busybox:latest`).
    pub(crate) name: String,
    pub(crate) env: Vec<String>,
    pub(crate) entrypoint: Vec<String>,
    pub(crate) cmd: Vec<String>,
    pub(crate) working_dir: String,
    pub(crate) user: String,
    /// The chain id of the top layer: the committed snapshot a container's is made on.
    pub(crate) chain_id: String,
}

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    manifests: Vec<Desc>,
    config: Option<Desc>,
    #[serde(default)]
    layers: Vec<Desc>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Desc {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: i64,
    platform: Option<Platform>,
}

#[derive(Deserialize, Clone)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
    rootfs: RootFs,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    env: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
}

#[derive(Deserialize, Default)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

impl Desc {
    fn proto(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            annotations: HashMap::new(),
        }
    }
}

/// This machine's architecture as OCI names it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The chain ids of a layer stack (the OCI image spec's `ChainID`).
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!("sha256:{:x}", Sha256::digest(format!("{prev} {d}"))),
        };
        out.push(next);
    }
    out
}

/// A pull step that failed, before it is said as the contract's error.
#[derive(Debug)]
enum PullError {
    Registry(oci_client::errors::OciDistributionError),
    Containerd(&'static str, tonic::Status),
    Bad(String),
}

impl From<oci_client::errors::OciDistributionError> for PullError {
    fn from(e: oci_client::errors::OciDistributionError) -> Self {
        Self::Registry(e)
    }
}

/// The images of one namespace, with what has been read of them.
#[derive(Debug)]
pub(crate) struct Images {
    client: Client,
    snapshotter: String,
    insecure: Vec<String>,
    /// Configs by manifest digest (a manifest never changes).
    configs: Mutex<HashMap<String, Arc<ImageConfig>>>,
    /// One pull at a time per image name.
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Images {
    pub(crate) fn new(client: Client, snapshotter: String, insecure: Vec<String>) -> Self {
        Self {
            client,
            snapshotter,
            insecure,
            configs: Mutex::default(),
            pulls: Mutex::default(),
        }
    }

    /// The image of `spec`, pulled as its policy says.
    pub(crate) async fn ensure(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Arc<ImageConfig>, SchedulerError> {
        let reference: Reference =
            spec.image
                .parse()
                .map_err(|e| SchedulerError::InvalidRequest {
                    scheduler: NAME,
                    field: "image",
                    message: format!("{:?} is not an image reference: {e}", spec.image),
                })?;
        let name = reference.whole();
        if spec.pull_policy != PullPolicy::Always {
            if let Some(c) = self
                .local(&name)
                .await
                .map_err(|e| self.say(&spec.image, e))?
            {
                return Ok(c);
            }
            if spec.pull_policy == PullPolicy::Never {
                return Err(SchedulerError::NoSuchImage {
                    scheduler: NAME,
                    image: spec.image.clone(),
                    message: "not present, and the pull policy is Never".into(),
                });
            }
        }
        let lock = {
            let mut pulls = self.pulls.lock().unwrap_or_else(PoisonError::into_inner);
            pulls.entry(name.clone()).or_default().clone()
        };
        let _one = lock.lock().await;
        if spec.pull_policy == PullPolicy::IfNotPresent {
            // Pulled by the one before us.
            if let Some(c) = self
                .local(&name)
                .await
                .map_err(|e| self.say(&spec.image, e))?
            {
                return Ok(c);
            }
        }
        self.pull(spec, &reference, &name)
            .await
            .map_err(|e| self.say(&spec.image, e))
    }

    /// The contract's error for a failed pull step, naming the image (never the
    /// credentials: oci-client's errors do not carry them).
    fn say(&self, image: &str, e: PullError) -> SchedulerError {
        use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
        let unauthorized = |message: String| SchedulerError::Unauthorized {
            scheduler: NAME,
            image: image.to_string(),
            message,
        };
        let missing = |message: String| SchedulerError::NoSuchImage {
            scheduler: NAME,
            image: image.to_string(),
            message,
        };
        match e {
            PullError::Registry(e) => {
                let message = e.to_string();
                match &e {
                    E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => {
                        unauthorized(message)
                    }
                    E::ImageManifestNotFoundError(_) => missing(message),
                    E::ServerError {
                        code: 401 | 403, ..
                    } => unauthorized(message),
                    E::ServerError { code: 404, .. } => missing(message),
                    E::RegistryError { envelope, .. } => {
                        if envelope
                            .errors
                            .iter()
                            .any(|x| matches!(x.code, C::Unauthorized | C::Denied))
                        {
                            unauthorized(message)
                        } else if envelope.errors.iter().any(|x| {
                            matches!(
                                x.code,
                                C::ManifestUnknown | C::NameUnknown | C::NotFound | C::BlobUnknown
                            )
                        }) {
                            missing(message)
                        } else {
                            SchedulerError::engine(
                                NAME,
                                "pull",
                                format!("pull of {image:?} failed: {message}"),
                            )
                        }
                    }
                    _ => SchedulerError::engine(
                        NAME,
                        "pull",
                        format!("pull of {image:?} failed: {message}"),
                    ),
                }
            }
            PullError::Containerd(step, s) => match self.client.error(step, s) {
                SchedulerError::Engine { source, .. } => SchedulerError::engine(
                    NAME,
                    "pull",
                    format!("pull of {image:?} failed at {step}: {source}"),
                ),
                other => other,
            },
            PullError::Bad(m) => {
                SchedulerError::engine(NAME, "pull", format!("pull of {image:?} failed: {m}"))
            }
        }
    }

    /// The image if it is in the namespace and unpacked (unpacking it from the content
    /// store when only the snapshots are missing); `None` when it is not there.
    async fn local(&self, name: &str) -> Result<Option<Arc<ImageConfig>>, PullError> {
        let c = &self.client;
        let got = c
            .images()
            .get(c.req(GetImageRequest {
                name: name.to_string(),
            }))
            .await;
        let target = match got {
            Ok(r) => r.into_inner().image.and_then(|i| i.target),
            Err(s) if not_found(&s) => return Ok(None),
            Err(s) => return Err(PullError::Containerd("image lookup", s)),
        };
        let Some(target) = target else {
            return Ok(None);
        };
        if let Some(c) = self.cached(&target.digest) {
            if self.snapshot_exists(&c.chain_id).await? {
                return Ok(Some(c));
            }
        }
        let mut digest = target.digest.clone();
        let mut manifest: Manifest = match self.read_json(&digest).await? {
            Some(m) => m,
            None => return Ok(None),
        };
        if !manifest.manifests.is_empty() {
            let Some(d) = pick_platform(&manifest.manifests) else {
                return Ok(None);
            };
            digest = d.digest.clone();
            manifest = match self.read_json(&digest).await? {
                Some(m) => m,
                None => return Ok(None),
            };
        }
        let Some(config_desc) = manifest.config.clone() else {
            return Err(PullError::Bad(format!("manifest {digest} has no config")));
        };
        let Some(file) = self.read_json::<ConfigFile>(&config_desc.digest).await? else {
            return Ok(None);
        };
        let config = Arc::new(image_config(name, &file)?);
        if !self.snapshot_exists(&config.chain_id).await? {
            // Imported without unpacking, or unpacked snapshots collected: unpack from
            // the content store, where the layers must be.
            let lease = self.lease().await?;
            let r = self
                .unpack(&lease, &manifest.layers, &file.rootfs.diff_ids, None, name)
                .await;
            self.drop_lease(&lease).await;
            if let Err(e) = r {
                tracing::debug!(image = %name, error = ?e, "local image cannot be unpacked; pulling");
                return Ok(None);
            }
        }
        self.remember(&target.digest, &config);
        Ok(Some(config))
    }

    fn cached(&self, digest: &str) -> Option<Arc<ImageConfig>> {
        self.configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .cloned()
    }

    fn remember(&self, digest: &str, config: &Arc<ImageConfig>) {
        self.configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(digest.to_string(), config.clone());
    }

    async fn snapshot_exists(&self, key: &str) -> Result<bool, PullError> {
        let c = &self.client;
        let r = c
            .snapshots()
            .stat(c.req(StatSnapshotRequest {
                snapshotter: self.snapshotter.clone(),
                key: key.to_string(),
            }))
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(s) if not_found(&s) => Ok(false),
            Err(s) => Err(PullError::Containerd("snapshot lookup", s)),
        }
    }

    /// A blob of the content store as JSON; `None` when it is not there.
    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        digest: &str,
    ) -> Result<Option<T>, PullError> {
        let c = &self.client;
        let r = c
            .content()
            .read(c.req(ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await;
        let mut stream = match r {
            Ok(s) => s.into_inner(),
            Err(s) if not_found(&s) => return Ok(None),
            Err(s) => return Err(PullError::Containerd("content read", s)),
        };
        let mut data = Vec::new();
        while let Some(part) = stream.next().await {
            match part {
                Ok(p) => data.extend_from_slice(&p.data),
                Err(s) if not_found(&s) => return Ok(None),
                Err(s) => return Err(PullError::Containerd("content read", s)),
            }
        }
        serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| PullError::Bad(format!("blob {digest} is not what it should be: {e}")))
    }

    async fn lease(&self) -> Result<String, PullError> {
        let c = &self.client;
        let id = format!(
            "gofer-pull-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        // A lease that outlives a host killed mid-pull expires on its own.
        let expire = humantime_rfc3339(SystemTime::now() + Duration::from_secs(3600));
        c.leases()
            .create(c.req(CreateLease {
                id: id.clone(),
                labels: HashMap::from([("containerd.io/gc.expire".to_string(), expire)]),
            }))
            .await
            .map_err(|s| PullError::Containerd("lease", s))?;
        Ok(id)
    }

    async fn drop_lease(&self, id: &str) {
        let c = &self.client;
        if let Err(e) = c
            .leases()
            .delete(c.req(DeleteRequest {
                id: id.to_string(),
                sync: false,
            }))
            .await
        {
            tracing::debug!(lease = %id, error = %e, "cannot delete pull lease (it expires)");
        }
    }

    #[tracing::instrument(name = "pull", skip_all, fields(image = %spec.image))]
    async fn pull(
        &self,
        spec: &ContainerSpec,
        reference: &Reference,
        name: &str,
    ) -> Result<Arc<ImageConfig>, PullError> {
        let registry = reference.resolve_registry().to_string();
        let plain_http = registry.starts_with("localhost")
            || registry.starts_with("127.")
            || self.insecure.contains(&registry);
        let oci = oci_client::Client::new(ClientConfig {
            protocol: if plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            ..ClientConfig::default()
        });
        let auth = match &spec.registry_auth {
            Some(a) => {
                RegistryAuth::Basic(a.username.clone(), a.password.expose_secret().to_string())
            }
            None => RegistryAuth::Anonymous,
        };
        let progress = |status: &str, layer: Option<&str>| {
            if let Some(f) = &spec.pull_progress {
                let mut p = PullProgress::new(spec.image.clone(), status);
                p.layer = layer.map(str::to_string);
                f(p);
            }
        };
        progress("Pulling", None);
        let (raw, digest) = oci
            .pull_manifest_raw(reference, &auth, MANIFEST_TYPES)
            .await?;
        let top: Manifest = parse_manifest(&raw)?;
        let lease = self.lease().await?;
        let result = async {
            let size = i64::try_from(raw.len()).unwrap_or(i64::MAX);
            let (target, manifest) = if top.manifests.is_empty() {
                self.write_manifest(&lease, &top, &digest, &raw).await?;
                let media_type = media_type_of(&top, false);
                (descriptor(media_type, &digest, size), top)
            } else {
                // An index: the image points at it, its platform's manifest hangs under it.
                let Some(d) = pick_platform(&top.manifests).cloned() else {
                    return Err(PullError::Bad(format!(
                        "the image has no manifest for linux/{}",
                        host_arch()
                    )));
                };
                let by_digest = reference.clone_with_digest(d.digest.clone());
                let (child_raw, child_digest) = oci
                    .pull_manifest_raw(&by_digest, &auth, MANIFEST_TYPES)
                    .await?;
                let child: Manifest = parse_manifest(&child_raw)?;
                self.write_manifest(&lease, &child, &child_digest, &child_raw)
                    .await?;
                let refs = HashMap::from([(
                    "containerd.io/gc.ref.content.m.0".to_string(),
                    child_digest.clone(),
                )]);
                self.write_bytes(&lease, &digest, &raw, refs).await?;
                (descriptor(media_type_of(&top, true), &digest, size), child)
            };
            self.pull_rest(&oci, reference, &lease, &manifest, name, target, &progress)
                .await
        }
        .await;
        self.drop_lease(&lease).await;
        let config = result?;
        progress("Pull complete", None);
        self.remember(&digest, &config);
        Ok(config)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pull_rest(
        &self,
        oci: &oci_client::Client,
        reference: &Reference,
        lease: &str,
        manifest: &Manifest,
        name: &str,
        target: Descriptor,
        progress: &Progress<'_>,
    ) -> Result<Arc<ImageConfig>, PullError> {
        let Some(config_desc) = manifest.config.clone() else {
            return Err(PullError::Bad("the manifest has no config".into()));
        };
        let mut config_bytes = Vec::new();
        oci.pull_blob(reference, &oci_descriptor(&config_desc), &mut config_bytes)
            .await?;
        let file: ConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| PullError::Bad(format!("the image config is unreadable: {e}")))?;
        let config = Arc::new(image_config(name, &file)?);
        let gc = HashMap::from([(
            format!("containerd.io/gc.ref.snapshot.{}", self.snapshotter),
            config.chain_id.clone(),
        )]);
        self.write_bytes(lease, &config_desc.digest, &config_bytes, gc)
            .await?;
        for (i, layer) in manifest.layers.iter().enumerate() {
            if self.has_content(&layer.digest).await? {
                continue;
            }
            progress("Downloading", Some(&layer.digest));
            let stream = oci
                .pull_blob_stream(reference, &oci_descriptor(layer))
                .await?;
            let mut labels = HashMap::new();
            if let Some(d) = file.rootfs.diff_ids.get(i) {
                labels.insert("containerd.io/uncompressed".to_string(), d.clone());
            }
            let data = stream.stream.map(|r| r.map_err(|e| e.to_string()));
            self.write_stream(lease, &layer.digest, layer.size, labels, data)
                .await?;
            progress("Download complete", Some(&layer.digest));
        }
        self.unpack(
            lease,
            &manifest.layers,
            &file.rootfs.diff_ids,
            Some(progress),
            name,
        )
        .await?;
        let c = &self.client;
        let image = Image {
            name: name.to_string(),
            labels: HashMap::new(),
            target: Some(target),
            created_at: None,
            updated_at: None,
        };
        let created = c
            .images()
            .create(c.leased(
                CreateImageRequest {
                    image: Some(image.clone()),
                    source_date_epoch: None,
                },
                lease,
            ))
            .await;
        match created {
            Ok(_) => {}
            Err(s) if exists(&s) => {
                c.images()
                    .update(c.leased(
                        UpdateImageRequest {
                            image: Some(image),
                            update_mask: Some(prost_types::FieldMask {
                                paths: vec!["target".into()],
                            }),
                            source_date_epoch: None,
                        },
                        lease,
                    ))
                    .await
                    .map_err(|s| PullError::Containerd("image update", s))?;
            }
            Err(s) => return Err(PullError::Containerd("image create", s)),
        }
        Ok(config)
    }

    async fn write_manifest(
        &self,
        lease: &str,
        manifest: &Manifest,
        digest: &str,
        raw: &[u8],
    ) -> Result<(), PullError> {
        let mut labels = HashMap::new();
        if let Some(c) = &manifest.config {
            labels.insert(
                "containerd.io/gc.ref.content.config".to_string(),
                c.digest.clone(),
            );
        }
        for (i, l) in manifest.layers.iter().enumerate() {
            labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                l.digest.clone(),
            );
        }
        self.write_bytes(lease, digest, raw, labels).await
    }

    async fn has_content(&self, digest: &str) -> Result<bool, PullError> {
        let c = &self.client;
        match c
            .content()
            .info(c.req(InfoRequest {
                digest: digest.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if not_found(&s) => Ok(false),
            Err(s) => Err(PullError::Containerd("content lookup", s)),
        }
    }

    async fn write_bytes(
        &self,
        lease: &str,
        digest: &str,
        data: &[u8],
        labels: HashMap<String, String>,
    ) -> Result<(), PullError> {
        let size = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let one = futures::stream::iter([Ok::<_, String>(bytes::Bytes::copy_from_slice(data))]);
        self.write_stream(lease, digest, size, labels, one).await
    }

    /// Writes a blob into the content store through containerd's streaming `Write`:
    /// the data in order, then a commit that checks size and digest. A blob that is
    /// there already (written by someone else meanwhile) is success; a broken source
    /// aborts the ingest.
    async fn write_stream(
        &self,
        lease: &str,
        digest: &str,
        total: i64,
        labels: HashMap<String, String>,
        mut data: impl futures::Stream<Item = Result<bytes::Bytes, String>> + Unpin,
    ) -> Result<(), PullError> {
        let c = &self.client;
        let reference = format!(
            "gofer-{}-{}-{digest}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let (tx, rx) = mpsc::channel::<WriteContentRequest>(4);
        let req = |action: WriteAction,
                   offset: i64,
                   data: Vec<u8>,
                   labels: HashMap<String, String>| WriteContentRequest {
            action: action as i32,
            r#ref: reference.clone(),
            total,
            expected: digest.to_string(),
            offset,
            data,
            labels,
        };
        // The first message opens the ingest; the server answers once it has it.
        tx.send(req(WriteAction::Stat, 0, Vec::new(), HashMap::new()))
            .await
            .map_err(|_| PullError::Bad("content write closed".into()))?;
        let mut content = c.content();
        let call = content.write(c.leased(tokio_stream::wrappers::ReceiverStream::new(rx), lease));
        let mut responses = match call.await {
            Ok(r) => r.into_inner(),
            Err(s) if exists(&s) => return Ok(()),
            Err(s) => return Err(PullError::Containerd("content write", s)),
        };
        // Answers come one per request; read them alongside so neither side stalls.
        let drain = tokio::spawn(async move {
            let mut last = None;
            while let Some(r) = responses.next().await {
                match r {
                    Ok(r) => last = Some(r),
                    Err(s) => return Err(s),
                }
            }
            Ok(last)
        });
        let mut offset: i64 = 0;
        let mut broken = None;
        while let Some(part) = data.next().await {
            match part {
                Ok(b) => {
                    // gRPC messages stay well under the 4 MiB default.
                    for piece in b.chunks(1 << 20) {
                        let len = i64::try_from(piece.len()).unwrap_or(i64::MAX);
                        if tx
                            .send(req(
                                WriteAction::Write,
                                offset,
                                piece.to_vec(),
                                HashMap::new(),
                            ))
                            .await
                            .is_err()
                        {
                            break;
                        }
                        offset = offset.saturating_add(len);
                    }
                }
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        if broken.is_none() {
            let _ = tx
                .send(req(WriteAction::Commit, offset, Vec::new(), labels))
                .await;
        }
        drop(tx);
        let answered = drain
            .await
            .map_err(|e| PullError::Bad(format!("content write: {e}")))?;
        if let Some(e) = broken {
            let _ = c
                .content()
                .abort(c.req(containerd_client::services::v1::AbortRequest { r#ref: reference }))
                .await;
            return Err(PullError::Bad(format!(
                "download of {digest} broke off: {e}"
            )));
        }
        match answered {
            Ok(Some(last)) if last.action == WriteAction::Commit as i32 => Ok(()),
            Ok(_) => Err(PullError::Bad(format!(
                "containerd did not commit {digest}"
            ))),
            Err(s) if exists(&s) => Ok(()),
            Err(s) => Err(PullError::Containerd("content write", s)),
        }
    }

    /// Applies each layer onto its parent's snapshot and commits it under its chain id;
    /// a layer already unpacked (by anyone) is skipped.
    async fn unpack(
        &self,
        lease: &str,
        layers: &[Desc],
        diff_ids: &[String],
        progress: Option<&Progress<'_>>,
        name: &str,
    ) -> Result<(), PullError> {
        if layers.len() != diff_ids.len() {
            return Err(PullError::Bad(format!(
                "{name}: {} layers but {} diff ids",
                layers.len(),
                diff_ids.len()
            )));
        }
        let chains = chain_ids(diff_ids);
        let c = &self.client;
        for (i, layer) in layers.iter().enumerate() {
            let chain = &chains[i];
            if self.snapshot_exists(chain).await? {
                continue;
            }
            if let Some(p) = progress {
                p("Extracting", Some(&layer.digest));
            }
            let parent = if i == 0 {
                String::new()
            } else {
                chains[i - 1].clone()
            };
            let key = format!(
                "extract-{}-{chain}",
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            );
            let mounts = c
                .snapshots()
                .prepare(c.leased(
                    PrepareSnapshotRequest {
                        snapshotter: self.snapshotter.clone(),
                        key: key.clone(),
                        parent,
                        labels: HashMap::new(),
                    },
                    lease,
                ))
                .await
                .map_err(|s| PullError::Containerd("snapshot prepare", s))?
                .into_inner()
                .mounts;
            let applied = c
                .diff()
                .apply(c.leased(
                    ApplyRequest {
                        diff: Some(layer.proto()),
                        mounts,
                        payloads: HashMap::new(),
                        sync_fs: false,
                    },
                    lease,
                ))
                .await;
            let committed = match applied {
                Ok(_) => {
                    c.snapshots()
                        .commit(c.leased(
                            CommitSnapshotRequest {
                                snapshotter: self.snapshotter.clone(),
                                name: chain.clone(),
                                key: key.clone(),
                                labels: HashMap::new(),
                            },
                            lease,
                        ))
                        .await
                }
                Err(s) => Err(s),
            };
            match committed {
                Ok(_) => {}
                Err(s) => {
                    let _ = c
                        .snapshots()
                        .remove(c.req(RemoveSnapshotRequest {
                            snapshotter: self.snapshotter.clone(),
                            key: key.clone(),
                        }))
                        .await;
                    // Committed by a concurrent unpack of the same layer.
                    if !exists(&s) {
                        return Err(PullError::Containerd("layer unpack", s));
                    }
                }
            }
        }
        Ok(())
    }
}

fn parse_manifest(raw: &[u8]) -> Result<Manifest, PullError> {
    serde_json::from_slice(raw)
        .map_err(|e| PullError::Bad(format!("the registry's manifest is unreadable: {e}")))
}

/// A manifest's media type: its own field, else the OCI type of its shape.
fn media_type_of(m: &Manifest, index: bool) -> String {
    if !m.media_type.is_empty() {
        m.media_type.clone()
    } else if index {
        "application/vnd.oci.image.index.v1+json".to_string()
    } else {
        "application/vnd.oci.image.manifest.v1+json".to_string()
    }
}

fn descriptor(media_type: String, digest: &str, size: i64) -> Descriptor {
    Descriptor {
        media_type,
        digest: digest.to_string(),
        size,
        annotations: HashMap::new(),
    }
}

fn pick_platform(manifests: &[Desc]) -> Option<&Desc> {
    manifests.iter().find(|m| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
    })
}

fn oci_descriptor(d: &Desc) -> oci_client::manifest::OciDescriptor {
    oci_client::manifest::OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        ..Default::default()
    }
}

fn image_config(name: &str, file: &ConfigFile) -> Result<ImageConfig, PullError> {
    let run = file.config.as_ref();
    let chain_id = chain_ids(&file.rootfs.diff_ids)
        .pop()
        .ok_or_else(|| PullError::Bad(format!("{name} has no layers")))?;
    Ok(ImageConfig {
        name: name.to_string(),
        env: run.and_then(|r| r.env.clone()).unwrap_or_default(),
        entrypoint: run.and_then(|r| r.entrypoint.clone()).unwrap_or_default(),
        cmd: run.and_then(|r| r.cmd.clone()).unwrap_or_default(),
        working_dir: run.and_then(|r| r.working_dir.clone()).unwrap_or_default(),
        user: run.and_then(|r| r.user.clone()).unwrap_or_default(),
        chain_id,
    })
}

/// RFC 3339 in UTC, seconds precision (what containerd's lease expiry parses).
fn humantime_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let ids = chain_ids(&["sha256:a".into(), "sha256:b".into()]);
        assert_eq!(ids[0], "sha256:a");
        assert_eq!(
            ids[1],
            format!("sha256:{:x}", Sha256::digest("sha256:a sha256:b"))
        );
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn lease_expiry_is_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_616_000);
        assert_eq!(humantime_rfc3339(t), "2026-12-07T04:00:00Z");
    }
}
