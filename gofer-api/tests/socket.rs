//! The API served on its Unix socket.

mod common;

use axum::http::{Request, StatusCode};
use common::*;
use gofer_api::ServeError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

async fn over_socket(
    path: &std::path::Path,
    method: &str,
    uri: &str,
    token: &str,
    body: &'static str,
) -> (StatusCode, Vec<u8>) {
    let stream = UnixStream::connect(path).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "gofer")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request");
    let response = sender.send_request(req).await.expect("send");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_the_socket_and_removes_it_on_shutdown() {
    let f = Fixture::new();
    let (run, token) = f.start(&pipeline(PIPELINE)).await;
    let dir = tempfile::tempdir().expect("dir");
    let sock_dir = dir.path().join("api");
    let server = f.api.serve_unix(&sock_dir).await.expect("serve");
    let sock = server.socket_path().to_path_buf();
    assert_eq!(sock, sock_dir.join("api.sock"));

    let path = run_path(PIPELINE, 1, "/objects/greeting");
    let (status, _) = over_socket(&sock, "PUT", &path, &token, "hello").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = over_socket(&sock, "GET", &path, &token, "").await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"hello"[..]));
    let (status, body) = over_socket(&sock, "GET", &path, "gofer_wrong", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&body).contains("\"error\":\"unauthorized\""));

    // A second server on the same directory is refused while the first answers.
    match f.api.serve_unix(&sock_dir).await {
        Err(ServeError::InUse { path }) => assert_eq!(path, sock),
        other => panic!("expected InUse, got {other:?}"),
    }
    server.shutdown().await.expect("shutdown");
    assert!(!sock.exists(), "socket left behind");
    end(&run).await;
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_file_in_the_way_refused() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().expect("dir");
    // A socket nobody answers on: what a killed host leaves.
    let stale = std::os::unix::net::UnixListener::bind(dir.path().join("api.sock")).expect("bind");
    drop(stale);
    let server = f
        .api
        .serve_unix(dir.path())
        .await
        .expect("serve over a stale socket");
    drop(server);
    assert!(
        !dir.path().join("api.sock").exists(),
        "drop removes the socket"
    );

    std::fs::write(dir.path().join("api.sock"), "not a socket").expect("write");
    match f.api.serve_unix(dir.path()).await {
        Err(ServeError::NotASocket { .. }) => {}
        other => panic!("expected NotASocket, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(dir.path().join("api.sock")).expect("kept"),
        b"not a socket"
    );
}
