//! The gRPC connection to containerd: one HTTP/2 channel, every request carrying the
//! configured namespace (and, while an image is pulled, its lease).

use containerd_client::services::v1::{
    containers_client::ContainersClient, content_client::ContentClient, diff_client::DiffClient,
    images_client::ImagesClient, leases_client::LeasesClient,
    snapshots::snapshots_client::SnapshotsClient, tasks_client::TasksClient,
    version_client::VersionClient,
};
use gofer_core::SchedulerError;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::config::ContainerdConfig;
use crate::NAME;

/// A namespaced handle on containerd's services. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Client {
    channel: Channel,
    namespace: AsciiMetadataValue,
    /// The socket, for errors.
    pub(crate) endpoint: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the socket the configuration names.
    pub(crate) async fn connect(config: &ContainerdConfig) -> Result<Self, SchedulerError> {
        let endpoint = config.endpoint();
        let namespace: AsciiMetadataValue =
            config
                .namespace
                .parse()
                .map_err(|_| SchedulerError::InvalidRequest {
                    scheduler: NAME,
                    field: "namespace",
                    message: format!("{:?} is not a containerd namespace", config.namespace),
                })?;
        let channel = containerd_client::connect(&config.socket)
            .await
            .map_err(|e| SchedulerError::Connection {
                scheduler: NAME,
                endpoint: endpoint.clone(),
                source: Box::new(e),
            })?;
        Ok(Self {
            channel,
            namespace,
            endpoint,
        })
    }

    /// A request in the namespace.
    pub(crate) fn req<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.metadata_mut()
            .insert("containerd-namespace", self.namespace.clone());
        r
    }

    /// A request in the namespace, under a lease (what it makes is kept from the
    /// garbage collector until the lease goes).
    pub(crate) fn leased<T>(&self, message: T, lease: &str) -> Request<T> {
        let mut r = self.req(message);
        if let Ok(v) = MetadataValue::try_from(lease) {
            r.metadata_mut().insert("containerd-lease", v);
        }
        r
    }

    pub(crate) fn version(&self) -> VersionClient<Channel> {
        VersionClient::new(self.channel.clone())
    }
    pub(crate) fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }
    pub(crate) fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }
    pub(crate) fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }
    pub(crate) fn content(&self) -> ContentClient<Channel> {
        // Layers are read back in chunks of up to 1 MiB; the default limit is 4 MiB.
        ContentClient::new(self.channel.clone()).max_decoding_message_size(16 << 20)
    }
    pub(crate) fn diff(&self) -> DiffClient<Channel> {
        DiffClient::new(self.channel.clone())
    }
    pub(crate) fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }
    pub(crate) fn leases(&self) -> LeasesClient<Channel> {
        LeasesClient::new(self.channel.clone())
    }

    /// A containerd error as the contract's: an unreachable socket is a connection
    /// error, the rest the operation's failure.
    pub(crate) fn error(&self, operation: &'static str, status: Status) -> SchedulerError {
        if status.code() == Code::Unavailable {
            SchedulerError::Connection {
                scheduler: NAME,
                endpoint: self.endpoint.clone(),
                source: Box::new(status),
            }
        } else {
            SchedulerError::engine(NAME, operation, StatusError(status))
        }
    }
}

/// A gRPC status shown as containerd's message (tonic's `Display` adds its metadata).
#[derive(Debug)]
pub(crate) struct StatusError(pub(crate) Status);

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.0.code(), self.0.message())
    }
}

impl std::error::Error for StatusError {}

/// Whether containerd said "not found".
pub(crate) fn not_found(s: &Status) -> bool {
    s.code() == Code::NotFound
}

/// Whether containerd said "already exists".
pub(crate) fn exists(s: &Status) -> bool {
    s.code() == Code::AlreadyExists
}

/// A result whose "not found" is success (removing what is already gone).
pub(crate) fn gone_ok<T>(r: Result<T, Status>) -> Result<(), Status> {
    match r {
        Ok(_) => Ok(()),
        Err(s) if not_found(&s) => Ok(()),
        Err(s) => Err(s),
    }
}
