//! `gofer prune` and the data directory's `[retention]` setting on the real engine:
//! old complete runs go with their logs, the newest are kept, numbers go on, the data
//! directory's size stays flat run after run, and bad settings are named.
#![allow(clippy::unwrap_used)]

mod support;

use support::*;

/// The bytes of every file under `dir`.
fn size_of(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let m = e.metadata().unwrap();
            total += if m.is_dir() {
                size_of(&e.path())
            } else {
                m.len()
            };
        }
    }
    total
}

fn run_numbers(g: &Gofer, pipeline: &str) -> Vec<u64> {
    let list = g.run(&["run", "list", pipeline, "-o", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&list.ok().stdout()).unwrap();
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_retention_setting_keeps_the_history_and_the_disk_flat() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let data = g.home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("config.toml"), "[retention]\nkeep = 3\n").unwrap();
    let file = g.file(
        "kept.yaml",
        "id: kept\ntasks:\n  - id: step\n    image: IMAGE\n    command: [sh, -c, 'for i in 1 2 3 4 5 6 7 8; do echo line $i of run $GOFER_RUN_ID; done']\n",
    );
    let mut sizes = Vec::new();
    for n in 1..=12u64 {
        let out = g.run(&["run", file.to_str().unwrap()]);
        out.ok();
        if n == 4 {
            assert!(
                out.stderr().contains("retention: removed 1 runs"),
                "{}",
                out.stderr()
            );
        }
        sizes.push(size_of(&data));
    }
    assert_eq!(run_numbers(&g, "kept"), [12, 11, 10]);
    let mut log_dirs: Vec<String> = std::fs::read_dir(data.join("logs").join("kept"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    log_dirs.sort();
    assert_eq!(log_dirs, ["10", "11", "12"]);
    assert_eq!(
        g.run(&["logs", "kept", "1", "step"]).code(),
        2,
        "a removed run is not found"
    );
    // Flat: the last runs take no more room than the first ones after the limit was
    // reached (SQLite reuses the freed pages), well below the growth without a limit.
    eprintln!("data directory bytes after each run: {sizes:?}");
    let (at6, at12) = (sizes[5], sizes[11]);
    assert!(
        at12 <= at6 + at6 / 4,
        "grew from {at6} to {at12} bytes: {sizes:?}"
    );

    // prune: a dry run removes nothing; the flags override the setting.
    let dry = g.run(&["prune", "--keep", "1", "--dry-run"]).ok().stdout();
    assert!(
        dry.contains("would remove 2 runs") && dry.contains("kept run 10"),
        "{dry}"
    );
    assert_eq!(run_numbers(&g, "kept"), [12, 11, 10]);
    let done = g.run(&["prune", "--keep", "1", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_str(&done.ok().stdout()).unwrap();
    assert_eq!(report["removed"].as_array().unwrap().len(), 2, "{report}");
    assert!(report["log_bytes"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(run_numbers(&g, "kept"), [12]);
    // The next run is 13: a removed run's number is never given again.
    g.run(&["run", file.to_str().unwrap()]).ok();
    assert_eq!(run_numbers(&g, "kept"), [13, 12]);
}

#[test]
fn prune_says_what_is_missing_or_wrong() {
    let g = Gofer::new();
    let out = g.run(&["prune"]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().contains("say what to keep"),
        "{}",
        out.stderr()
    );
    let data = g.home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("config.toml"),
        "[retention]\nkeep = 3\nolder = \"1d\"\n",
    )
    .unwrap();
    let out = g.run(&["prune"]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().contains("config.toml:3") && out.stderr().contains("older"),
        "{}",
        out.stderr()
    );
    std::fs::write(
        data.join("config.toml"),
        "[retention]\nolder_than = \"-1d\"\n",
    )
    .unwrap();
    let out = g.run(&["prune"]);
    assert!(
        out.stderr().contains("retention.older_than") && out.stderr().contains("negative"),
        "{}",
        out.stderr()
    );
    // A good setting with nothing to remove.
    std::fs::write(
        data.join("config.toml"),
        "[retention]\nolder_than = \"30d\"\n",
    )
    .unwrap();
    assert!(g.run(&["prune"]).ok().stdout().contains("removed 0 runs"));
}

/// `gofer doctor`: every check passes on a working engine (exit 0, the retention
/// setting named); an unreachable engine fails with what to do (exit 1).
#[test]
fn doctor_checks_the_engine_the_stores_and_the_setting() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let data = g.home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("config.toml"), "[retention]\nkeep = 7\n").unwrap();
    let out = g.run(&["doctor"]);
    let text = out.ok().stdout();
    assert!(text.contains(": reachable"), "{text}");
    assert!(
        text.contains("run store  sqlite store takes writes"),
        "{text}"
    );
    assert!(
        text.contains("retention  keep 7 runs per pipeline"),
        "{text}"
    );
    let down = g
        .cmd()
        .env("GOFER_SWARM_HOST", "unix:///nowhere/gofer.sock")
        .args(["--engine", "swarm", "doctor"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&down.stdout).to_string();
    assert_eq!(down.status.code(), Some(1), "{text}");
    assert!(
        text.contains("backend    FAILED")
            && text.contains("nowhere/gofer.sock")
            && text.contains("what to do"),
        "{text}"
    );
}
