//! Cache volumes on the FakeScheduler (which keeps no file content: what is checked is
//! which entry each attempt restores from, what is saved, and what is evicted; the
//! content itself is checked on Docker, Podman and containerd).

use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::{
    Cache, Capabilities, ContainerSpec, Mount, MountSource, Pipeline, RunOptions, RunStatus,
    Scheduler, Task, TaskStatus, ValidationIssue, VolumeScope,
};
use gofer_engine::{CachePolicy, Engine, RunError};

use crate::common::*;

/// The helper image prints what `du -sk` would (8 KiB).
fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image("ok", Behaviour::new().stdout("fine\n"))
        .image("fail", Behaviour::exit(3))
        .image("helper", Behaviour::new().stdout("8\t/from\n"))
        .image("forever-img", Behaviour::run_until_stopped())
}

fn engine_with(
    fake: &FakeScheduler,
    f: impl FnOnce(gofer_engine::EngineBuilder) -> gofer_engine::EngineBuilder,
) -> Engine {
    f(builder(fake).0.cache_helper_image("helper"))
        .build()
        .unwrap()
}

fn cached(pipeline: &str, image: &str, cache: Cache) -> Pipeline {
    Pipeline::new(pipeline, pipeline).task(Task::new("build", image).cache(cache))
}

/// The entry volume a helper of `run`'s task `build` read from (`/from`), if any.
fn restored_from(fake: &FakeScheduler, pipeline: &str, run: u64) -> Option<String> {
    let name = format!("{}.cache0-restore", cname(pipeline, run, "build"));
    let spec = fake.request(&name)?;
    spec.mounts
        .iter()
        .find(|m| m.target == "/from")
        .and_then(|m| match &m.source {
            MountSource::Volume(v) => Some(v.clone()),
            _ => None,
        })
}

fn saved(fake: &FakeScheduler, pipeline: &str, run: u64) -> bool {
    fake.request(&format!("{}.cache0-save", cname(pipeline, run, "build")))
        .is_some()
}

#[tokio::test(start_paused = true)]
async fn a_miss_saves_on_success_and_the_next_run_hits_without_saving() {
    let fake = fake();
    let e = engine_with(&fake, |b| b);
    let p = cached("cpx", "ok", Cache::new("deps-{{V}}", "/cache"));
    let opts = || RunOptions::new().variable("V", "1");
    let run = finish(&e.start_run(&p, opts()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Successful);
    // The task mounted a volume of its own at the path, not an entry.
    let spec = fake.request(&cname("cpx", 1, "build")).unwrap();
    let m = spec.mounts.iter().find(|m| m.target == "/cache").unwrap();
    assert!(
        matches!(&m.source, MountSource::Volume(v) if v.ends_with(".cache0")),
        "{m:?}"
    );
    assert_eq!(
        restored_from(&fake, "cpx", 1),
        None,
        "a miss restores nothing"
    );
    assert!(saved(&fake, "cpx", 1));
    let entries = e.caches(Some("cpx")).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].key, "deps-1");
    assert_eq!(entries[0].scope, "cpx");
    assert_eq!(entries[0].size_bytes, 8 * 1024);

    let run = finish(&e.start_run(&p, opts()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Successful);
    assert_eq!(
        restored_from(&fake, "cpx", 2).as_deref(),
        Some(entries[0].volume.as_str())
    );
    assert!(!saved(&fake, "cpx", 2), "an exact hit saves nothing");
    let after = e.caches(Some("cpx")).await.unwrap();
    assert_eq!(after.len(), 1);
    assert!(after[0].last_used >= entries[0].last_used);
    // What is left is the entry and its use record: no attempt volume, no helper.
    assert_eq!(fake.containers(), 0);
    let vols = fake.volumes();
    assert_eq!(vols.len(), 2, "{vols:?}");
    assert!(
        vols.iter().all(|v| v.starts_with(&after[0].volume)),
        "{vols:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_task_saves_nothing_and_a_key_naming_an_unset_variable_fails_the_task() {
    let fake = fake();
    let e = engine_with(&fake, |b| b);
    let p = cached("cfx", "fail", Cache::new("deps", "/cache"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(!saved(&fake, "cfx", 1));
    assert!(e.caches(None).await.unwrap().is_empty());
    assert!(fake.volumes().is_empty(), "{:?}", fake.volumes());

    let p = cached("cux", "ok", Cache::new("deps-{{NOPE}}", "/cache"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "build");
    assert_eq!(t.status, TaskStatus::Failed);
    let msg = t.message.clone().unwrap_or_default();
    assert!(msg.contains("caches[0]") && msg.contains("NOPE"), "{msg}");
    assert_eq!(fake.containers(), 0);
    assert!(fake.volumes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_fallback_prefix_restores_the_newest_match_then_saves_under_the_new_key() {
    let fake = fake();
    let e = engine_with(&fake, |b| b);
    for v in ["1", "2"] {
        let p = cached("cbx", "ok", Cache::new(format!("deps-{v}"), "/cache"));
        finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        std::thread::sleep(Duration::from_millis(3));
    }
    let entries = e.caches(Some("cbx")).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].key, "deps-2", "newest first: {entries:?}");
    let p = cached(
        "cbx",
        "ok",
        Cache::new("deps-3", "/cache").restore_keys(["nomatch-", "deps-"]),
    );
    finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(
        restored_from(&fake, "cbx", 3).as_deref(),
        Some(entries[0].volume.as_str())
    );
    assert!(
        saved(&fake, "cbx", 3),
        "a fallback hit saves under the exact key"
    );
    let keys: Vec<_> = e
        .caches(Some("cbx"))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.key)
        .collect();
    assert_eq!(keys, ["deps-3", "deps-2", "deps-1"]);
}

#[tokio::test(start_paused = true)]
async fn caches_stay_in_their_pipeline_unless_the_host_shares_them() {
    let fake = fake();
    let e = engine_with(&fake, |b| b);
    finish(
        &e.start_run(
            &cached("cax", "ok", Cache::new("k", "/c")),
            RunOptions::new(),
        )
        .unwrap(),
    )
    .await;
    finish(
        &e.start_run(
            &cached("czx", "ok", Cache::new("k", "/c")),
            RunOptions::new(),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(
        restored_from(&fake, "czx", 1),
        None,
        "another pipeline's entry is not seen"
    );
    assert_eq!(e.caches(None).await.unwrap().len(), 2);
    // Shared: one scope, `*`.
    let shared = self::fake();
    let fake = shared;
    let e = engine_with(&fake, |b| b.share_caches(true));
    finish(
        &e.start_run(
            &cached("cax", "ok", Cache::new("k", "/c")),
            RunOptions::new(),
        )
        .unwrap(),
    )
    .await;
    finish(
        &e.start_run(
            &cached("czx", "ok", Cache::new("k", "/c")),
            RunOptions::new(),
        )
        .unwrap(),
    )
    .await;
    assert!(restored_from(&fake, "czx", 1).is_some());
    let all = e.caches(None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].scope, "*");
}

#[tokio::test(start_paused = true)]
async fn two_runs_saving_one_key_at_once_make_two_entries_and_the_newest_wins() {
    let fake = fake().image("slowok", Behaviour::new().sleep(Duration::from_secs(5)));
    let e = engine_with(&fake, |b| b);
    let p = cached("ccx", "slowok", Cache::new("k", "/c"));
    let a = e.start_run(&p, RunOptions::new()).unwrap();
    let b = e.start_run(&p, RunOptions::new()).unwrap();
    let (ra, rb) = (finish(&a).await, finish(&b).await);
    assert_eq!(
        (ra.status, rb.status),
        (RunStatus::Successful, RunStatus::Successful)
    );
    let entries = e.caches(Some("ccx")).await.unwrap();
    assert!(
        entries.len() >= 2,
        "each run saved its own copy: {entries:?}"
    );
    assert!(entries.iter().all(|c| c.key == "k"));
    // A prune with no limits removes the replaced ones only.
    let report = e
        .prune_caches(&CachePolicy::new(), Some("ccx"))
        .await
        .unwrap();
    assert_eq!(report.removed.len(), entries.len() - 1);
    let left = e.caches(Some("ccx")).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].volume, entries[0].volume, "the newest stays");
}

#[tokio::test(start_paused = true)]
async fn eviction_goes_by_age_then_least_recent_use_and_spares_an_entry_in_use() {
    let fake = fake();
    let e = engine_with(&fake, |b| b);
    for k in ["a", "b", "c"] {
        finish(
            &e.start_run(&cached("cex", "ok", Cache::new(k, "/c")), RunOptions::new())
                .unwrap(),
        )
        .await;
        std::thread::sleep(Duration::from_millis(3));
    }
    // "a" used again: "b" is now the least recently used.
    finish(
        &e.start_run(
            &cached("cex", "ok", Cache::new("a", "/c")),
            RunOptions::new(),
        )
        .unwrap(),
    )
    .await;
    let by_key = |k: &str, all: &[gofer_engine::CacheEntry]| {
        all.iter().find(|c| c.key == k).unwrap().volume.clone()
    };
    let all = e.caches(Some("cex")).await.unwrap();
    // Budget of two entries (8 KiB each): "b" goes.
    let report = e
        .prune_caches(&CachePolicy::new().max_bytes(16 * 1024), Some("cex"))
        .await
        .unwrap();
    let gone: Vec<_> = report.removed.iter().map(|c| c.key.clone()).collect();
    assert_eq!(gone, ["b"]);
    assert_eq!(report.freed_bytes, 8 * 1024);
    // An entry a container mounts is in use: kept, and said so.
    let c_volume = by_key("c", &all);
    let holder = fake
        .start(
            ContainerSpec::new("holder", "forever-img")
                .mount(Mount::volume(c_volume.clone(), "/x")),
        )
        .await
        .unwrap();
    let report = e
        .prune_caches(&CachePolicy::new().max_age(Duration::ZERO), Some("cex"))
        .await
        .unwrap();
    assert_eq!(report.in_use, std::slice::from_ref(&c_volume));
    let left: Vec<_> = e
        .caches(Some("cex"))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.key)
        .collect();
    assert_eq!(left, ["c"]);
    fake.remove(&holder, true).await.unwrap();
    e.prune_caches(&CachePolicy::new().max_age(Duration::ZERO), Some("cex"))
        .await
        .unwrap();
    assert!(e.caches(Some("cex")).await.unwrap().is_empty());
    assert!(fake.volumes().is_empty(), "{:?}", fake.volumes());
}

#[tokio::test(start_paused = true)]
async fn an_incomplete_entry_is_never_restored_and_goes() {
    let fake = fake();
    let e = engine_with(&fake, |b| b);
    let p = cached("cix", "ok", Cache::new("k", "/c"));
    finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(e.caches(Some("cix")).await.unwrap().len(), 1);
    // The next restore finds the marker missing (a save a dead host left half done).
    let fake2 = fake.clone().on_name(
        &format!("{}.cache0-restore", cname("cix", 2, "build")),
        Behaviour::exit(97),
    );
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Successful);
    assert!(saved(&fake2, "cix", 2), "a miss after all: saved afresh");
    let entries = e.caches(Some("cix")).await.unwrap();
    assert_eq!(entries.len(), 1, "the half-saved one went: {entries:?}");
}

#[tokio::test(start_paused = true)]
async fn a_key_takes_the_digest_of_a_workspace_file() {
    let hex = "0123456789abcdef".repeat(4);
    let fake = fake().on_name(
        &format!("{}.digest", cname("cdx", 1, "build")),
        Behaviour::new().stdout(format!("{hex}  Cargo.lock\n")),
    );
    let e = engine_with(&fake, |b| b);
    let p = Pipeline::new("cdx", "cdx")
        .workspace(true)
        .task(Task::new("build", "ok").cache(Cache::new("lock-{{digest:Cargo.lock}}", "/c")));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let digest = fake
        .request(&format!("{}.digest", cname("cdx", 1, "build")))
        .unwrap();
    assert!(
        digest.mounts.iter().all(|m| m.read_only),
        "the workspace is read, not written"
    );
    let entries = e.caches(Some("cdx")).await.unwrap();
    assert_eq!(entries[0].key, format!("lock-{}", &hex[..16]));
    // No such file: the task fails, naming it.
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let msg = task(&run, "build").message.clone().unwrap_or_default();
    assert!(msg.contains("Cargo.lock"), "{msg}");
}

#[tokio::test]
async fn a_backend_without_engine_wide_volumes_refuses_caches_naming_the_field() {
    let caps = Capabilities::none()
        .with_volumes(true)
        .with_volume_scope(VolumeScope::Node);
    let fake = fake().with_capabilities(caps);
    let e = engine(&fake);
    let err = e
        .start_run(
            &cached("csx", "ok", Cache::new("k", "/c")),
            RunOptions::new(),
        )
        .unwrap_err();
    let RunError::Invalid(v) = err else {
        panic!("{err:?}")
    };
    assert!(
        v.issues
            .iter()
            .any(|i| matches!(i, ValidationIssue::InvalidCache { field, .. } if field == "caches")),
        "{v}"
    );
    assert!(v.to_string().contains("caches"), "{v}");
}
