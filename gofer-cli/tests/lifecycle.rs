//! Stopping, crashing and sharing: Ctrl-C, a killed `gofer run`, two at once,
//! following a log from another process.

#![allow(clippy::unwrap_used)]

mod support;

use support::{engine, read, Gofer};

const NAP: &str = r#"
id = "nap"
[[tasks]]
id = "sleeper"
image = "IMAGE"
command = ["sh", "-c", "trap 'echo got TERM; exit 143' TERM; echo started; sleep 30 & wait"]
"#;

#[test]
fn ctrl_c_cancels_the_run_and_leaves_no_container() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file("nap.toml", NAP);
    let p = g.spawn(&["run", file.to_str().unwrap()], "run");
    p.wait_for("[sleeper] started");
    p.signal("INT");
    let (code, out, err) = p.finish();
    assert_eq!(code, Some(130), "{out}\n{err}");
    assert!(
        out.contains("[sleeper] got TERM"),
        "the grace let the task see SIGTERM: {out}"
    );
    assert!(out.contains("run 1 of pipeline nap: Cancelled"), "{out}");
    assert!(
        g.containers(&g.home_id()).is_empty(),
        "a container was left"
    );
    assert_eq!(g.run_json("nap", 1)["status"], "cancelled");
}

#[test]
fn a_second_ctrl_c_stops_without_grace() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "stubborn.toml",
        r#"
id = "stubborn"
[[tasks]]
id = "deaf"
image = "IMAGE"
command = ["sh", "-c", "trap '' TERM; echo started; while true; do sleep 1; done"]
"#,
    );
    // A grace far longer than the test may take: only the second Ctrl-C can end it.
    let p = g.spawn(&["run", file.to_str().unwrap(), "--grace", "1h"], "run");
    p.wait_for("[deaf] started");
    p.signal("INT");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !support::read(&p.err).contains("cancelling") {
        assert!(std::time::Instant::now() < end, "no cancel notice");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    p.signal("INT");
    let (code, out, err) = p.finish();
    assert_eq!(code, Some(130), "{out}\n{err}");
    assert!(
        g.containers(&g.home_id()).is_empty(),
        "a container was left"
    );
}

#[test]
fn a_killed_gofer_run_is_finished_by_the_next_command() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "short.toml",
        r#"
id = "short"
[[tasks]]
id = "step"
image = "IMAGE"
command = ["sh", "-c", "echo before; sleep 2; echo after"]
"#,
    );
    let p = g.spawn(&["run", file.to_str().unwrap()], "run");
    p.wait_for("[step] before");
    p.signal("KILL");
    let (code, _, _) = p.finish();
    assert_eq!(code, None, "killed by the signal");
    assert_eq!(
        g.containers(&g.home_id()).len(),
        1,
        "the container outlived its process"
    );

    // The next command (here a history read) takes the dead process's slot and
    // finishes its run: exit code and whole log collected, container removed.
    let out = g.run(&["run", "get", "short", "1"]);
    out.ok();
    assert!(
        out.stderr().contains("finishing run 1 of pipeline short"),
        "{}",
        out.stderr()
    );
    let run = g.run_json("short", 1);
    assert_eq!(run["state"], "complete");
    assert_eq!(run["status"], "successful");
    assert_eq!(run["tasks"][0]["exit_code"], 0);
    assert_eq!(
        g.run(&["logs", "short", "1", "step"]).ok().stdout(),
        "before\nafter\n"
    );
    assert!(
        g.containers(&g.home_id()).is_empty(),
        "a container was left"
    );
}

#[test]
fn two_runs_at_once_on_one_data_directory_both_complete_with_distinct_numbers() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "pair.toml",
        r#"
id = "pair"
[[tasks]]
id = "work"
image = "IMAGE"
command = ["sh", "-c", "echo start $GOFER_RUN_ID; sleep 2; echo done $GOFER_RUN_ID"]
"#,
    );
    let a = g.spawn(&["run", file.to_str().unwrap()], "a");
    let b = g.spawn(&["run", file.to_str().unwrap()], "b");
    // Both are running at once before either ends.
    a.wait_for("[work] start");
    b.wait_for("[work] start");
    let follow = g.spawn(&["logs", "pair", "1", "work", "--follow"], "follow");
    let (ca, oa, ea) = a.finish();
    let (cb, ob, eb) = b.finish();
    assert_eq!((ca, cb), (Some(0), Some(0)), "{oa}{ea}\n{ob}{eb}");
    let mut numbers: Vec<&str> = [&oa, &ob]
        .iter()
        .map(|o| {
            if o.contains("run 1 of pipeline pair: Successful") {
                "1"
            } else if o.contains("run 2 of pipeline pair: Successful") {
                "2"
            } else {
                "?"
            }
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, ["1", "2"], "{oa}\n{ob}");
    // Neither cancelled nor adopted the other's container: each logged its own run.
    for o in [&oa, &ob] {
        let n = if o.contains("run 1 of") { 1 } else { 2 };
        assert!(o.contains(&format!("[work] done {n}")), "{o}");
        assert!(!o.contains("finishing"), "{o}");
    }
    // The follower in a third process saw run 1's task to its end.
    let (cf, of, ef) = follow.finish();
    assert_eq!(cf, Some(0), "{ef}");
    assert_eq!(of, "start 1\ndone 1\n");
    let list = g.run(&["run", "list", "pair", "-o", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&list.ok().stdout()).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert!(
        g.containers(&g.home_id()).is_empty(),
        "a container was left"
    );
}

/// `gofer --engine <name> run` killed mid-task: a command with the default engine
/// choice recovers the run on that engine, where its container is, because the slot
/// recorded it, with the task's whole log.
fn killed_run_is_recovered_on(choice: gofer_cli::EngineChoice, name: &str) {
    if !support::engine_named(choice) {
        return;
    }
    let g = Gofer::new();
    let pipeline = format!("on{name}");
    let file = g.file(
        &format!("{pipeline}.toml"),
        &format!(
            r#"
id = "{pipeline}"
[[tasks]]
id = "step"
image = "IMAGE"
command = ["sh", "-c", "echo before; sleep 2; echo after"]
"#
        ),
    );
    let p = g.spawn(&["--engine", name, "run", file.to_str().unwrap()], "run");
    p.wait_for("[step] before");
    p.signal("KILL");
    let _ = p.finish();
    let out = g.run(&["run", "get", &pipeline, "1"]);
    out.ok();
    let run = g.run_json(&pipeline, 1);
    assert_eq!(run["status"], "successful", "{run}");
    assert_eq!(
        g.run(&["logs", &pipeline, "1", "step"]).ok().stdout(),
        "before\nafter\n"
    );
    assert!(g.containers_on(choice, &g.home_id()).is_empty());
}

#[test]
fn a_killed_run_is_recovered_on_the_engine_it_ran_on() {
    killed_run_is_recovered_on(gofer_cli::EngineChoice::Podman, "podman");
}

#[test]
fn a_killed_run_on_containerd_is_recovered_there() {
    killed_run_is_recovered_on(gofer_cli::EngineChoice::Containerd, "containerd");
}

#[test]
fn a_killed_runs_task_keeps_its_api_token_working_and_masked() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "tok.toml",
        r#"
id = "tok"
[[tasks]]
id = "caller"
image = "gofer-test/curl:latest"
inject_api_token = true
command = ["sh", "-c", """
echo "token $GOFER_API_TOKEN"
for i in $(seq 60); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$GOFER_API_SOCKET" \
    -H "Authorization: Bearer $GOFER_API_TOKEN" \
    "http://gofer/api/v1/pipelines/$GOFER_PIPELINE_ID/runs/$GOFER_RUN_ID")
  [ "$code" = 200 ] && [ -f /tmp/after ] && break
  [ "$code" = 200 ] || touch /tmp/after
  sleep 0.5
done
echo "api $code"
"""]
"#,
    );
    let p = g.spawn(&["run", file.to_str().unwrap()], "run");
    p.wait_for("[caller] token [MASKED]");
    p.signal("KILL");
    let (code, _, _) = p.finish();
    assert_eq!(code, None, "killed by the signal");

    // The next command adopts the run: it serves the API on the dead process's socket
    // and resumes the run's token, so the task's calls work again.
    let out = g.run(&["run", "get", "tok", "1"]);
    out.ok();
    let run = g.run_json("tok", 1);
    assert_eq!(run["status"], "successful", "{run}");
    let log = g.run(&["logs", "tok", "1", "caller"]).ok().stdout();
    assert!(log.contains("token [MASKED]"), "{log}");
    assert!(log.contains("api 200"), "{log}");
    assert!(!log.contains("gofer_"), "a token reached the log:\n{log}");
    assert!(
        g.containers(&g.home_id()).is_empty(),
        "a container was left"
    );
}

/// `gofer --engine swarm run` runs the pipeline as services of the test swarm
/// (`GOFER_SWARM_HOST`, which the test command sets to scripts/setup-swarm.sh's
/// manager) and leaves nothing on it.
#[test]
fn a_run_on_the_swarm() {
    use gofer_cli::EngineChoice;
    if !support::engine_named(EngineChoice::Swarm) {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "onswarm.toml",
        r#"
id = "onswarm"
[[tasks]]
id = "hello"
image = "IMAGE"
command = ["echo", "hello from a swarm service"]
"#,
    );
    let out = g.run(&["--engine", "swarm", "run", file.to_str().unwrap()]);
    let text = out.ok().stdout();
    assert!(
        text.contains("[hello] hello from a swarm service"),
        "{text}"
    );
    assert_eq!(g.run_json("onswarm", 1)["status"], "successful");
    assert!(g
        .containers_on(EngineChoice::Swarm, &g.home_id())
        .is_empty());
}

/// Two `gofer run` at once of one concurrency group, on one data directory: the
/// second process's task waits (its record says for what) while the first's holds the
/// group, and runs once the first leaves it (here: cancelled with Ctrl-C).
#[test]
fn two_processes_of_one_concurrency_group_take_turns() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "turns.yaml",
        r#"
id: turns
tasks:
  - id: deploy
    image: IMAGE
    command: [sh, -c, 'trap "echo stopping; exit 143" TERM; echo "holding $GOFER_RUN_ID"; sleep "$HOLD" & wait; echo "done $GOFER_RUN_ID"']
    concurrency: {group: "deploy-{{ENV}}"}
"#,
    );
    let path = file.to_str().unwrap();
    let a = g.spawn(
        &["run", path, "--var", "ENV=prod", "--var", "HOLD=600"],
        "a",
    );
    a.wait_for("[deploy] holding 1");
    let b = g.spawn(&["run", path, "--var", "ENV=prod", "--var", "HOLD=0"], "b");
    // The second run's task says it waits for the group, in the store another
    // process reads.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let o = g.run(&["run", "get", "turns", "2", "-o", "json"]);
        if o.code() == 0 {
            let run: serde_json::Value = serde_json::from_str(&o.stdout()).unwrap();
            let t = &run["tasks"][0];
            if t["state"] == "waiting"
                && t["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("concurrency group \"deploy-prod\""))
            {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < end,
            "run 2 never waited for the group: {}",
            o.stdout()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!read(&b.out).contains("holding 2"), "{}", read(&b.out));
    a.signal("INT");
    let (ca, oa, ea) = a.finish();
    assert_eq!(ca, Some(130), "{oa}{ea}");
    let (cb, ob, eb) = b.finish();
    assert_eq!(cb, Some(0), "{ob}{eb}");
    assert!(
        ob.contains("[deploy] holding 2") && ob.contains("[deploy] done 2"),
        "{ob}"
    );
    let (one, two) = (g.run_json("turns", 1), g.run_json("turns", 2));
    assert_eq!(one["status"], "cancelled", "{one}");
    assert_eq!(two["status"], "successful", "{two}");
    let time = |r: &serde_json::Value, k: &str| {
        humantime::parse_rfc3339(r["tasks"][0][k].as_str().unwrap()).unwrap()
    };
    assert!(time(&two, "started") >= time(&one, "ended"), "{one}\n{two}");
    assert!(
        g.containers(&g.home_id()).is_empty(),
        "a container was left"
    );
}

/// `gofer run --metrics-addr`: while the run lasts, `GET /metrics` gives the engine's
/// metrics in the Prometheus text format, labelled by pipeline and backend only.
#[test]
fn a_run_serves_its_metrics_to_prometheus() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "metered.yaml",
        r#"
id: metered
tasks:
  - id: first
    image: IMAGE
    command: [echo, done first]
  - id: hold
    image: IMAGE
    depends_on: {first: success}
    command: [sh, -c, 'trap "exit 143" TERM; echo holding; sleep 600 & wait']
"#,
    );
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let p = g.spawn(
        &[
            "run",
            file.to_str().unwrap(),
            "--metrics-addr",
            &addr.to_string(),
        ],
        "run",
    );
    p.wait_for("[hold] holding");
    let text = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: gofer\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    p.signal("INT");
    let (code, out, err) = p.finish();
    assert_eq!(code, Some(130), "{out}{err}");
    assert!(
        text.starts_with("HTTP/1.") && text.contains(" 200 "),
        "{text}"
    );
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    };
    assert_eq!(
        line("gofer_runs_started_total").as_deref(),
        Some("gofer_runs_started_total{pipeline=\"metered\"} 1"),
        "{text}"
    );
    let finished = line("gofer_tasks_finished_total").unwrap_or_default();
    assert!(
        finished.contains("pipeline=\"metered\"")
            && finished.contains("status=\"successful\"")
            && finished.ends_with(" 1"),
        "{text}"
    );
    assert!(text.contains("gofer_container_start_seconds"), "{text}");
    assert!(
        !text.contains("hold") && !text.contains("run=\""),
        "unbounded labels: {text}"
    );
}
