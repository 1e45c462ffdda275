//! [`ApiServer`]: the API served on a Unix socket that task containers get mounted.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use axum::Router;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::warn;

use gofer_core::API_SOCKET_NAME;

/// Why the API could not be served on its socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The socket's directory could not be made or used.
    #[error("cannot prepare the API socket directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Another server answers on the socket already.
    #[error("another server answers on {path}; stop it or give another directory")]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// Something that is not a socket is in the way.
    #[error("{path} exists and is not a socket; remove it or give another directory")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Binding the socket failed.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The API answering on `<dir>/api.sock` until [`ApiServer::shutdown`] (or drop),
/// which stops it and removes the socket file.
#[derive(Debug)]
pub struct ApiServer {
    path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl ApiServer {
    /// The socket's path on the host.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Stops answering (requests in flight are finished) and removes the socket file.
    ///
    /// # Errors
    /// The server's I/O error, if it failed while serving.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| Err(io::Error::other(e))),
            None => Ok(()),
        };
        remove_socket(&self.path);
        result
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            remove_socket(&self.path);
        }
    }
}

fn remove_socket(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %path.display(), error = %e, "cannot remove the API socket"),
    }
}

/// Binds `<dir>/api.sock` (removing a stale socket nobody answers on) and serves
/// `router` on it.
pub(crate) async fn serve_unix(router: Router, dir: &Path) -> Result<ApiServer, ServeError> {
    let directory = |source| ServeError::Directory {
        path: dir.to_path_buf(),
        source,
    };
    tokio::fs::create_dir_all(dir).await.map_err(directory)?;
    // Containers may run as any user: the directory and socket are open to all, the
    // token is what grants access.
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .await
        .map_err(directory)?;
    let path = dir.join(API_SOCKET_NAME);
    match tokio::fs::symlink_metadata(&path).await {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(&path).await.is_ok() {
                return Err(ServeError::InUse { path });
            }
            tokio::fs::remove_file(&path).await.map_err(directory)?;
        }
        Ok(_) => return Err(ServeError::NotASocket { path }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(directory(e)),
    }
    let listener = UnixListener::bind(&path).map_err(|source| ServeError::Bind {
        path: path.clone(),
        source,
    })?;
    tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .await
        .map_err(|source| ServeError::Bind {
            path: path.clone(),
            source,
        })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(ApiServer {
        path,
        stop: Some(stop),
        task: Some(task),
    })
}
