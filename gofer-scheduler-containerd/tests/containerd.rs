//! What is the containerd backend's own, beyond the shared suites: errors naming the
//! image, the default network's reach, `NetworkMode::None`, and ids for names containerd
//! refuses.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use futures::StreamExt;
use gofer_core::{ContainerSpec, NetworkMode, PullPolicy, Scheduler, SchedulerError};
use gofer_scheduler_containerd::ContainerdScheduler;

fn name(case: &str) -> String {
    format!("gofer-ctest-{}-{case}", common::run_id())
}

/// The labels of one case (the cases run side by side).
fn labels(case: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (common::TEST_LABEL.to_string(), common::run_id().to_string()),
        ("dev.gofer.test.case".to_string(), case.to_string()),
    ])
}

/// Runs `spec` to its end; its stdout and exit code. Removes it.
async fn run(s: &ContainerdScheduler, spec: ContainerSpec) -> (String, Option<i64>) {
    let id = s.start(spec.labels(labels("run"))).await.unwrap();
    let mut logs = s.logs(&id).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = logs.next().await {
        let chunk = chunk.unwrap();
        if chunk.stream == gofer_core::OutputStream::Stdout {
            out.extend_from_slice(&chunk.data);
        }
    }
    let exit = s.wait(&id).await.unwrap().code();
    s.remove(&id, true).await.unwrap();
    (String::from_utf8(out).unwrap(), exit)
}

#[tokio::test]
async fn an_unreachable_registry_is_an_error_naming_the_image() {
    let s = containerd_or_skip!();
    // Nothing listens on port 9 of loopback.
    let image = "127.0.0.1:9/nowhere/busybox:latest";
    let spec = ContainerSpec::new(name("unreachable"), image)
        .pull_policy(PullPolicy::Always)
        .labels(labels("unreachable"));
    match s.start(spec).await {
        Err(e @ SchedulerError::Engine { .. }) => {
            assert!(e.to_string().contains(image), "{e}");
        }
        other => panic!("expected a pull failure naming the image, got {other:?}"),
    }
    let left = s.list(&labels("unreachable")).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn the_default_network_reaches_the_host_through_the_bridge() {
    let s = containerd_or_skip!();
    // A listener on every address of the host: the container reaches it at the
    // bridge's gateway address, through its own namespace's eth0.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"hello from the host\n").unwrap();
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line).unwrap();
        line
    });
    let script = format!(
        "ip route | grep -q default && echo routed; \
         echo from-container | nc -w 5 10.91.0.1 {port}"
    );
    let spec = ContainerSpec::new(name("bridge"), common::IMAGE)
        .command(["sh", "-c", &script])
        .network(NetworkMode::Default);
    let (out, exit) = run(&s, spec).await;
    assert_eq!(exit, Some(0), "{out}");
    assert_eq!(out, "routed\nhello from the host\n");
    assert_eq!(server.join().unwrap(), "from-container\n");
}

#[tokio::test]
async fn no_network_is_loopback_only() {
    let s = containerd_or_skip!();
    let spec = ContainerSpec::new(name("none"), common::IMAGE)
        .command([
            "sh",
            "-c",
            "ls /sys/class/net; ping -c 1 -W 1 127.0.0.1 >/dev/null && echo lo-up",
        ])
        .network(NetworkMode::None);
    let (out, exit) = run(&s, spec).await;
    assert_eq!(exit, Some(0), "{out}");
    assert_eq!(out, "lo\nlo-up\n");
}

#[tokio::test]
async fn a_name_containerd_refuses_still_runs_and_lists_by_its_name() {
    let s = containerd_or_skip!();
    let odd = format!(
        "{}__with_a_double_underscore_and_then_a_good_deal_more_than_76_bytes",
        name("odd")
    );
    let spec = ContainerSpec::new(odd.clone(), common::IMAGE)
        .command(["echo", "ran"])
        .labels(labels("odd"));
    let id = s.start(spec).await.unwrap();
    assert_ne!(id.0, odd);
    let listed = s.list(&labels("odd")).await.unwrap();
    assert!(
        listed.iter().any(|c| c.name == odd && c.id == id),
        "{listed:?}"
    );
    // The name works as a handle too, and a second start under it conflicts.
    assert!(s
        .wait(&gofer_core::ContainerId(odd.clone()))
        .await
        .unwrap()
        .success());
    let again = s
        .start(ContainerSpec::new(odd.clone(), common::IMAGE).command(["true"]))
        .await;
    assert!(
        matches!(again, Err(SchedulerError::Conflict { .. })),
        "{again:?}"
    );
    s.remove(&id, true).await.unwrap();
    let left = s.list(&labels("odd")).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
