//! Runs last (test binaries run in name order): nothing made by this crate's tests is
//! left in the tests' containerd namespace — no container, task, container snapshot,
//! network namespace, CNI address or volume — nor a logging process.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use containerd_client::services::v1::snapshots::ListSnapshotsRequest;
use containerd_client::services::v1::{
    containers_client::ContainersClient, snapshots::snapshots_client::SnapshotsClient,
    tasks_client::TasksClient,
};
use containerd_client::services::v1::{ListContainersRequest, ListTasksRequest};
use futures::StreamExt;
use gofer_core::Scheduler;

fn req<T>(m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.metadata_mut()
        .insert("containerd-namespace", "gofer".parse().unwrap());
    r
}

#[tokio::test]
async fn nothing_is_left_in_the_namespace() {
    let s = containerd_or_skip!();
    let channel = containerd_client::connect(&s.config().socket)
        .await
        .unwrap();
    let containers = ContainersClient::new(channel.clone())
        .list(req(ListContainersRequest { filters: vec![] }))
        .await
        .unwrap()
        .into_inner()
        .containers;
    let names: Vec<_> = containers.iter().map(|c| c.id.clone()).collect();
    let tasks = TasksClient::new(channel.clone())
        .list(req(ListTasksRequest {
            filter: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    let task_ids: Vec<_> = tasks.iter().map(|t| t.id.clone()).collect();
    // Committed snapshots are images' layers; an active one is a container's (or an
    // unpack's that never finished).
    let mut active = Vec::new();
    let mut snaps = SnapshotsClient::new(channel)
        .list(req(ListSnapshotsRequest {
            snapshotter: "overlayfs".into(),
            filters: vec![],
        }))
        .await
        .unwrap()
        .into_inner();
    while let Some(batch) = snaps.next().await {
        for info in batch.unwrap().info {
            // containerd's Kind: 1 view, 2 active, 3 committed.
            if info.kind != 3 {
                active.push(info.name);
            }
        }
    }
    for c in &names {
        let _ = s.remove(&gofer_core::ContainerId(c.clone()), true).await;
    }
    let netns: Vec<_> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with(gofer_scheduler_containerd::NETNS_PREFIX))
                .collect()
        })
        .unwrap_or_default();
    let ipam = s.config().state_dir.join("cni").join("ipam");
    let addresses: Vec<_> = std::fs::read_dir(&ipam)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|net| {
            std::fs::read_dir(net.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
        .collect();
    let volumes = s.list_volumes(&BTreeMap::new()).await.unwrap();
    let loggers = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains("trap '' TERM; cat <&3"))
        .count();
    assert!(names.is_empty(), "containers left behind: {names:?}");
    assert!(task_ids.is_empty(), "tasks left behind: {task_ids:?}");
    assert!(
        active.is_empty(),
        "container snapshots left behind: {active:?}"
    );
    assert!(
        netns.is_empty(),
        "network namespaces left behind: {netns:?}"
    );
    assert!(
        addresses.is_empty(),
        "CNI addresses left allocated: {addresses:?}"
    );
    assert!(volumes.is_empty(), "volumes left behind: {volumes:?}");
    assert_eq!(loggers, 0, "logging processes left running");
}
