//! Network sandboxes and the reaper against the real engine.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gofer_core::naming::{self, LABEL_ENGINE};
use gofer_core::{ContainerState, NetworkMode, SandboxSpec, Scheduler};

#[tokio::test]
async fn containers_in_a_sandbox_reach_each_other_on_localhost() {
    let Some(s) = scheduler().await else { return };
    let case = unique("sandbox");
    let holder = s
        .create_sandbox(
            SandboxSpec::new(format!("{case}.sandbox"), IMAGE).labels(case_labels(&case)),
        )
        .await
        .unwrap();
    assert_eq!(s.state(&holder).await.unwrap(), ContainerState::Running);
    let net = NetworkMode::Sandbox(holder.clone());
    // busybox `nc -l` ends when its own stdin ends, which can be before the peer's data is
    // read; the server keeps nc's stdin open and prints what it got once it has it.
    let server = s
        .start(
            spec(&case, &format!("{case}-server"))
                .network(net.clone())
                .command(["sh", "-c", "sleep 120 | nc -l -p 7777 > /tmp/got & while [ ! -s /tmp/got ]; do sleep 0.05; done; cat /tmp/got"]),
        )
        .await
        .unwrap();
    let client = s
        .start(spec(&case, &format!("{case}-client")).network(net).command([
            "sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo 'hello over localhost' | nc 127.0.0.1 7777 && exit 0; sleep 0.1; i=$((i+1)); done; exit 1",
        ]))
        .await
        .unwrap();
    assert!(s.wait(&client).await.unwrap().success());
    assert!(s.wait(&server).await.unwrap().success());
    assert_eq!(output(&s, &server).await.0, "hello over localhost\n");
    // The holder outlives its tasks until it is removed.
    assert_eq!(s.state(&holder).await.unwrap(), ContainerState::Running);
    s.remove(&holder, true).await.unwrap();
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn a_task_in_a_sandbox_keeps_network_access() {
    let Some(s) = scheduler().await else { return };
    let case = unique("sandnet");
    let holder = s
        .create_sandbox(
            SandboxSpec::new(format!("{case}.sandbox"), IMAGE).labels(case_labels(&case)),
        )
        .await
        .unwrap();
    let id = s
        .start(
            spec(&case, &case)
                .network(NetworkMode::Sandbox(holder.clone()))
                .command(["sh", "-c", "ls /sys/class/net"]),
        )
        .await
        .unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    let ifaces = output(&s, &id).await.0;
    assert!(ifaces.contains("eth0"), "no bridge interface: {ifaces}");
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn joining_a_missing_sandbox_fails_and_leaves_nothing() {
    let Some(s) = scheduler().await else { return };
    let case = unique("nosandbox");
    let result = s
        .start(
            spec(&case, &case)
                .network(NetworkMode::Sandbox(unique("gone").into()))
                .command(["true"]),
        )
        .await;
    assert!(result.is_err(), "{result:?}");
    assert!(s.list(&case_labels(&case)).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_reaper_removes_only_its_engine_instance_containers() {
    let Some(s) = scheduler().await else { return };
    let case = unique("reap");
    let engine = format!("reap{}", std::process::id());
    let other = format!("other{}", std::process::id());
    let mut made = Vec::new();
    for (i, eng) in [&engine, &engine, &other].into_iter().enumerate() {
        let labels = naming::task_labels(eng, "pipe", 1, &format!("task{i}"));
        let id = s
            .start(
                spec(&case, &format!("{case}-{i}"))
                    .labels(labels)
                    .command(["sleep", "600"]),
            )
            .await
            .unwrap();
        made.push(id);
    }
    let report = gofer_engine::reap(&s, &naming::engine_filter(&engine)).await;
    assert!(report.is_complete(), "{:?}", report.failed);
    let reaped = report.removed;
    let mut reaped_ids: Vec<_> = reaped.iter().map(|c| c.id.clone()).collect();
    reaped_ids.sort();
    let mut expected = made[..2].to_vec();
    expected.sort();
    assert_eq!(reaped_ids, expected);
    assert!(reaped
        .iter()
        .all(|c| c.labels.get(LABEL_ENGINE) == Some(&engine)));
    assert!(s
        .list(&naming::engine_filter(&engine))
        .await
        .unwrap()
        .is_empty());
    // The other instance's container is untouched.
    assert_eq!(s.state(&made[2]).await.unwrap(), ContainerState::Running);
    let again = gofer_engine::reap(&s, &naming::engine_filter(&engine)).await;
    assert!(again.removed.is_empty() && again.is_complete());
    cleanup(&s, &case).await;
}
