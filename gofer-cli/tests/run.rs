//! `gofer run` end to end on the real engine.

#![allow(clippy::unwrap_used)]

mod support;

use support::{engine, Gofer};

const HELLO: &str = r#"
id = "hello_world"
name = "Hello World"
[[tasks]]
id = "simple_task"
image = "IMAGE"
description = "This task simply prints our hello-world message and exists!"
command = ["echo", "Hello from Gofer!"]
"#;

#[test]
fn hello_world_from_toml_prints_and_exits_0_and_task_get_shows_system_keys() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file("hello.toml", HELLO);
    let out = g.run(&["run", file.to_str().unwrap()]);
    out.ok();
    assert!(
        out.stdout().contains("[simple_task] Hello from Gofer!"),
        "{}",
        out.stdout()
    );
    assert!(out
        .stdout()
        .contains("run 1 of pipeline hello_world: Successful"));

    let task = g.run(&["task", "get", "hello_world", "1", "simple_task"]);
    task.ok();
    let text = task.stdout();
    for line in [
        "GOFER_PIPELINE_ID   system  hello_world",
        "GOFER_RUN_ID        system  1",
        "GOFER_TASK_ATTEMPT  system  1",
        "GOFER_TASK_ID       system  simple_task",
        "GOFER_TASK_IMAGE    system  gofer-test/busybox:latest",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    assert!(
        !text.contains("GOFER_API_TOKEN"),
        "the task asked for no token:\n{text}"
    );
    assert!(
        text.contains("status:    Successful") && text.contains("exit code: 0"),
        "{text}"
    );

    let logs = g.run(&["logs", "hello_world", "1", "simple_task"]);
    assert_eq!(logs.ok().stdout(), "Hello from Gofer!\n");
    let list = g.run(&["run", "list", "hello_world", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&list.ok().stdout()).unwrap();
    assert_eq!(runs[0]["run"], 1);
    assert_eq!(runs[0]["status"], "successful");
    assert!(
        g.containers(&g.home_id()).is_empty(),
        "a container was left"
    );
}

#[test]
fn a_failing_task_exits_1() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "fail.json",
        r#"{"id": "failing", "tasks": [{"id": "bad", "image": "IMAGE", "command": ["sh", "-c", "echo oops >&2; exit 7"]}]}"#,
    );
    let out = g.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.code(), 1, "{}{}", out.stdout(), out.stderr());
    assert!(out.stdout().contains("[bad]! oops"), "{}", out.stdout());
    assert!(
        out.stderr().contains("abnormal exit, code 7"),
        "{}",
        out.stderr()
    );
    let run = g.run_json("failing", 1);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["tasks"][0]["exit_code"], 7);
}

#[test]
fn precedence_sources_and_masking_in_task_get_and_logs() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let value = "s3cr3t-value-for-test";
    g.run_with_input(
        &["secret", "set", "db_pass", "--pipeline", "vars"],
        &format!("{value}\n"),
    )
    .ok();
    // The round trip: what was stored is what comes back (stdout is a pipe here).
    assert_eq!(
        g.run(&["secret", "get", "db_pass", "-p", "vars"])
            .ok()
            .stdout(),
        value
    );
    let list = g.run(&["secret", "list", "-p", "vars"]);
    assert_eq!(list.ok().stdout(), "db_pass\n");

    let file = g.file(
        "vars.yaml",
        r#"
id: vars
tasks:
  - id: show
    image: IMAGE
    inject_api_token: true
    command: [sh, -c, 'echo "own=$OWN run=$FROM_RUN pid=$GOFER_PIPELINE_ID pass=$DB_PASS token=${#GOFER_API_TOKEN}"']
    variables:
      OWN: from-task
      GOFER_PIPELINE_ID: task-wins
      DB_PASS: secret{{db_pass}}
"#,
    );
    let out = g.run(&[
        "run",
        file.to_str().unwrap(),
        "--var",
        "FROM_RUN=from-run",
        "--var",
        "OWN=loses",
    ]);
    out.ok();
    let stdout = out.stdout();
    assert!(
        stdout.contains("[show] own=from-task run=from-run pid=task-wins pass=[MASKED] token=49"),
        "{stdout}"
    );
    assert!(!stdout.contains(value) && !out.stderr().contains(value));

    let task = g.run(&["task", "get", "vars", "1", "show", "-o", "json"]);
    let text = task.ok().stdout();
    assert!(!text.contains(value), "a secret value in task get:\n{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let var = |k: &str| {
        v["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == k)
            .unwrap_or_else(|| panic!("{k} not injected: {text}"))
            .clone()
    };
    assert_eq!(var("OWN")["source"], "pipeline_config");
    assert_eq!(var("OWN")["value"], "from-task");
    assert_eq!(var("FROM_RUN")["source"], "run_options");
    assert_eq!(var("GOFER_PIPELINE_ID")["source"], "pipeline_config");
    assert_eq!(var("GOFER_PIPELINE_ID")["value"], "task-wins");
    assert_eq!(var("GOFER_RUN_ID")["source"], "system");
    assert_eq!(var("GOFER_TASK_ID")["source"], "system");
    assert_eq!(var("GOFER_TASK_IMAGE")["source"], "system");
    assert_eq!(var("GOFER_API_TOKEN")["source"], "system");
    assert_eq!(var("GOFER_API_TOKEN")["masked"], true);
    assert_eq!(var("DB_PASS")["masked"], true);
    assert_eq!(var("DB_PASS")["placeholder"], "pipeline_secret");
    let log = g.run(&["logs", "vars", "1", "show"]);
    assert!(log.ok().stdout().contains("pass=[MASKED]") && !log.stdout().contains(value));
}

#[test]
fn gofer_sdk_json_of_a_dag_runs_unchanged() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "dag.json",
        r#"{
  "id": "dag_test_pipeline", "name": "DAG Test Pipeline", "description": null, "parallelism": 0,
  "tasks": [
    {"id": "first_task", "description": null, "image": "IMAGE", "registry_auth": null,
     "depends_on": {}, "variables": {}, "entrypoint": null, "command": ["sh", "-c", "exit 1"],
     "inject_api_token": false, "always_pull_newest_image": false},
    {"id": "on_success", "description": null, "image": "IMAGE", "registry_auth": null,
     "depends_on": {"first_task": "Success"}, "variables": {}, "entrypoint": null,
     "command": ["echo", "not me"], "inject_api_token": false, "always_pull_newest_image": false},
    {"id": "on_failure", "description": null, "image": "IMAGE", "registry_auth": null,
     "depends_on": {"first_task": "Failure"}, "variables": {"WHO": "failure"}, "entrypoint": ["sh", "-c"],
     "command": ["echo ran on $WHO"], "inject_api_token": false, "always_pull_newest_image": false},
    {"id": "last", "description": null, "image": "IMAGE", "registry_auth": null,
     "depends_on": {"on_success": "Any", "on_failure": "Any"}, "variables": {}, "entrypoint": null,
     "command": ["echo", "last"], "inject_api_token": false, "always_pull_newest_image": false}
  ]
}"#,
    );
    let out = g.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.code(), 1, "{}{}", out.stdout(), out.stderr());
    assert!(
        out.stdout().contains("[on_failure] ran on failure"),
        "{}",
        out.stdout()
    );
    let run = g.run_json("dag_test_pipeline", 1);
    let status = |i: usize| run["tasks"][i]["status"].as_str().unwrap().to_string();
    assert_eq!(
        (status(0), status(1), status(2), status(3)),
        (
            "failed".into(),
            "skipped".into(),
            "successful".into(),
            "successful".into()
        )
    );
}

#[test]
fn validate_and_run_name_the_field_and_line_of_a_yaml_typo() {
    let g = Gofer::new();
    let file = g.file(
        "typo.yaml",
        "id: typo\ntasks:\n  - id: one\n    imagee: busybox\n",
    );
    for args in [vec!["validate"], vec!["run"]] {
        let mut args = args;
        args.push(file.to_str().unwrap());
        let out = g.run(&args);
        assert_eq!(out.code(), 2, "{}", out.stderr());
        let err = out.stderr();
        assert!(err.contains("typo.yaml:4:"), "{err}");
        assert!(err.contains("field `tasks[0].imagee`"), "{err}");
    }
    let bad = g.file(
        "bad.toml",
        "id = \"x\"\n[[tasks]]\nid = \"a\"\nimage = \"\"\ndepends_on = { ghost = \"any\" }\n",
    );
    let out = g.run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.code(), 2);
    let err = out.stderr();
    for needle in [
        "field `id` of the pipeline",
        "field `image` of task \"a\"",
        "unknown parent \"ghost\"",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    let ok = g.file("ok.toml", HELLO);
    assert!(g
        .run(&["validate", ok.to_str().unwrap()])
        .ok()
        .stdout()
        .contains("is valid"));
}

#[test]
fn schema_and_completions_print() {
    let g = Gofer::new();
    let schema: serde_json::Value =
        serde_json::from_str(&g.run(&["schema"]).ok().stdout()).unwrap();
    assert!(schema["$defs"]["TaskFile"]["properties"]["image"].is_object());
    assert!(g
        .run(&["completions", "bash"])
        .ok()
        .stdout()
        .contains("gofer"));
}

#[test]
fn every_example_file_is_valid() {
    let g = Gofer::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if gofer_cli::PipelineFormat::of(&path).is_some() {
            g.run(&["validate", path.to_str().unwrap()]).ok();
            seen += 1;
        }
    }
    assert!(seen >= 3, "examples/ holds {seen} pipeline files");
}

#[test]
fn a_registry_password_comes_from_the_secret_store() {
    use gofer_cli::EngineChoice;
    if !support::engine_named(EngineChoice::Docker) {
        return;
    }
    let g = Gofer::new();
    // The registry with basic auth made by scripts/setup-docker.sh.
    g.run_with_input(&["secret", "set", "reg_pass", "-p", "private"], "s3cret")
        .ok();
    let file = g.file(
        "private.toml",
        r#"
id = "private"
[[tasks]]
id = "pull"
image = "localhost:5001/private/busybox:latest"
pull_policy = "always"
command = ["echo", "pulled with credentials"]
registry_auth = { username = "gofer", password = "secret{{reg_pass}}" }
"#,
    );
    let out = g.run(&["--engine", "docker", "run", file.to_str().unwrap()]);
    out.ok();
    assert!(
        out.stdout().contains("[pull] pulled with credentials"),
        "{}",
        out.stdout()
    );
    // A missing secret is named before anything starts.
    let g2 = Gofer::new();
    let file = g2.file("private.toml", &std::fs::read_to_string(&file).unwrap());
    let out = g2.run(&["--engine", "docker", "run", file.to_str().unwrap()]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr()
            .contains("field `registry_auth.password` of task \"pull\"")
            && out.stderr().contains("reg_pass"),
        "{}",
        out.stderr()
    );
    // A wrong password fails the pull: the credentials are what let it through.
    g2.run_with_input(&["secret", "set", "reg_pass", "-p", "private"], "wrong")
        .ok();
    let out = g2.run(&["--engine", "docker", "run", file.to_str().unwrap()]);
    assert_eq!(out.code(), 1, "{}", out.stderr());
    assert!(out.stderr().contains("scheduler error"), "{}", out.stderr());
}

#[test]
fn secret_get_refuses_a_terminal_unless_revealed() {
    // `script` gives the command a terminal as its standard output.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` command to make a terminal");
        return;
    }
    let g = Gofer::new();
    g.run_with_input(
        &["secret", "set", "k", "--global", "--allow", "p*"],
        "v4lue",
    )
    .ok();
    let bin = env!("CARGO_BIN_EXE_gofer");
    let home = g.home.path().join("data");
    let on_tty = |extra: &str| {
        let o = std::process::Command::new("script")
            .args([
                "-qec",
                &format!("{bin} secret get k --global --pipeline pipe {extra}"),
                "/dev/null",
            ])
            .env("GOFER_HOME", &home)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let refused = on_tty("");
    assert!(
        refused.contains("refusing to print a secret to a terminal"),
        "{refused}"
    );
    assert!(!refused.contains("v4lue"));
    assert!(on_tty("--reveal").contains("v4lue"));
    // The allow-list is checked.
    let out = g.run(&["secret", "get", "k", "--global", "--pipeline", "other"]);
    assert_eq!(out.code(), 2);
    assert!(!out.stdout().contains("v4lue"));
}

#[test]
fn a_parent_leaves_a_run_object_for_its_child_through_the_api() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/api_objects.yaml");
    let out = g.run(&["run", file.to_str().unwrap()]);
    out.ok();
    let text = out.stdout();
    assert!(text.contains("[build] stored"), "{text}");
    assert!(text.contains("[deploy] deploying built-1"), "{text}");
    for task in ["build", "deploy"] {
        assert!(
            text.contains(&format!(
                r#"[report] "task_id":"{task}","image":"gofer-test/curl:latest","state":"complete","status":"successful""#
            )),
            "{task} not reported complete:\n{text}"
        );
    }
    assert!(
        text.contains("run 1 of pipeline api_objects: Successful"),
        "{text}"
    );
    assert!(
        !text.contains("gofer_"),
        "a token reached the output:\n{text}"
    );
    let task = g.run(&["task", "get", "api_objects", "1", "build"]);
    let details = task.ok().stdout();
    assert!(details.contains("GOFER_API_SOCKET"), "{details}");
    assert!(!details.contains("gofer_"), "{details}");
    // The API's socket is gone with the process.
    let api = g.home.path().join("data").join("api");
    let left: Vec<_> = walk(&api);
    assert!(left.iter().all(|p| !p.ends_with("api.sock")), "{left:?}");
    assert!(
        g.containers(&g.home_id()).is_empty(),
        "a container was left"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            out.extend(walk(&p));
            out.push(p);
        }
    }
    out
}

#[test]
fn services_retries_and_the_workspace_from_a_file_and_their_logs() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/services.yaml");
    let out = g.run(&["run", file.to_str().unwrap()]);
    out.ok();
    let text = out.stdout();
    for line in [
        "[service.web] serving",
        "[build] attempt 1",
        "[build] attempt 2",
        "[check] built: artifact",
        "[check] fetched: hello from web",
        "run 1 of pipeline services: Successful",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    assert!(!text.contains("[build] attempt 3"), "{text}");
    let logs = |what: &str| g.run(&["logs", "services", "1", what]).ok().stdout();
    assert_eq!(logs("service.web"), "serving\n");
    assert_eq!(logs("build"), "attempt 1\nattempt 2\n");
    assert_eq!(logs("build.2"), "attempt 2\n");
    let unknown = g.run(&["logs", "services", "1", "service.cache"]);
    assert_ne!(unknown.code(), 0);
    assert!(
        unknown.stderr().contains("no service \"cache\""),
        "{}",
        unknown.stderr()
    );
    assert!(
        g.containers(&g.home_id()).is_empty(),
        "a container was left"
    );
}

/// A run store made again (its file deleted, the data directory and key kept) numbers
/// runs from 1 again, yet does not hand the tokens of the old store's runs out again.
#[test]
fn a_run_store_made_again_gives_new_run_tokens() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "tok.toml",
        r#"
id = "tok"
[[tasks]]
id = "show"
image = "IMAGE"
inject_api_token = true
command = ["sh", "-c", "echo digest $(printf %s \"$GOFER_API_TOKEN\" | sha256sum | cut -c1-16)"]
"#,
    );
    let digest = || {
        let out = g.run(&["run", file.to_str().unwrap()]);
        let stdout = out.ok().stdout();
        assert!(stdout.contains("run 1 of pipeline tok"), "{stdout}");
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("[show] digest "))
            .unwrap_or_else(|| panic!("no digest: {stdout}"))
            .to_string()
    };
    let first = digest();
    assert_eq!(first.len(), 16, "{first:?}");
    let data = g.home.path().join("data");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("gofer-runs.sqlite3{suffix}")));
    }
    let again = digest();
    assert_ne!(first, again, "run 1 got the old store's run 1 token");
}

#[test]
fn a_matrix_file_runs_each_combination_and_its_dependent_after_them() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/matrix.yaml");
    let valid = g
        .run(&["validate", example.to_str().unwrap()])
        .ok()
        .stdout();
    assert!(
        valid.contains("(2 tasks, 4 with the matrix combinations)"),
        "{valid}"
    );
    let out = g.run(&["run", example.to_str().unwrap()]);
    let stdout = out.ok().stdout();
    for line in [
        "[test_OS-linux_VER-1] testing on linux with 1",
        "[test_OS-linux_VER-2] testing on linux with 2",
        "[test_OS-bsd_VER-2] testing on bsd with 2",
        "[report] every combination passed",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
    assert!(!stdout.contains("bsd with 1"), "{stdout}");
    let run = g.run_json("matrix_demo", 1);
    let ids: Vec<&str> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "test_OS-linux_VER-1",
            "test_OS-linux_VER-2",
            "test_OS-bsd_VER-2",
            "report"
        ]
    );
    let logs = g.run(&["logs", "matrix_demo", "1", "test_OS-bsd_VER-2"]);
    assert_eq!(logs.ok().stdout(), "testing on bsd with 2\n");
    let get = g.run(&["task", "get", "matrix_demo", "1", "test_OS-bsd_VER-2"]);
    let text = get.ok().stdout();
    assert!(text.contains("OS") && text.contains("bsd"), "{text}");

    // A matrix that cannot be expanded is refused, naming the task and the field.
    let bad = g.file(
        "badmatrix.yaml",
        "id: bad_matrix\ntasks:\n  - id: test\n    image: IMAGE\n    matrix: {OS: []}\n",
    );
    let out = g.run(&["validate", bad.to_str().unwrap()]);
    assert_ne!(out.code(), 0);
    let err = out.stderr();
    assert!(
        err.contains("matrix") && err.contains("\"test\"") && err.contains("no values"),
        "{err}"
    );
}

#[test]
fn tasks_of_one_concurrency_group_run_one_at_a_time() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    // Two independent tasks of 2 s each: at once they take about 2 s, one after the
    // other at least 4 s (the record keeps whole seconds, which this tells apart).
    let file = g.file(
        "group.yaml",
        r#"
id: grouped
tasks:
  - id: first
    image: IMAGE
    command: [sh, -c, 'sleep 2; echo first done']
    concurrency: {group: "deploy-{{ENV}}"}
  - id: second
    image: IMAGE
    command: [sh, -c, 'sleep 2; echo second done']
    concurrency: {group: "deploy-{{ENV}}", policy: queue}
"#,
    );
    let out = g.run(&["run", file.to_str().unwrap(), "--var", "ENV=prod"]);
    out.ok();
    let run = g.run_json("grouped", 1);
    let time =
        |i: usize, k: &str| humantime::parse_rfc3339(run["tasks"][i][k].as_str().unwrap()).unwrap();
    let first_start = time(0, "started").min(time(1, "started"));
    let last_end = time(0, "ended").max(time(1, "ended"));
    let span = last_end.duration_since(first_start).unwrap();
    assert!(span >= std::time::Duration::from_secs(4), "{span:?}: {run}");

    let bad = g.file(
        "badgroup.yaml",
        "id: bad_group\ntasks:\n  - id: deploy\n    image: IMAGE\n    concurrency: {group: \"x-{{ENV\"}\n",
    );
    let out = g.run(&["validate", bad.to_str().unwrap()]);
    assert_ne!(out.code(), 0);
    assert!(out.stderr().contains("concurrency"), "{}", out.stderr());
}

/// Options the environment sets do not show in a usage line as if they were required,
/// the global options stand apart from a command's own in its help, and a command's
/// help shows only those it reads.
#[test]
fn usage_lines_show_no_option_the_environment_set() {
    let g = Gofer::new();
    let out = g
        .cmd()
        .env("GOFER_ENGINE", "docker")
        .args(["run"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Usage: gofer run <FILE>"), "{err}");
    let help = g.run(&["run", "--help"]).ok().stdout();
    let global = help
        .find("Global options:")
        .expect("a global options heading");
    assert!(help.find("--engine").unwrap() > global, "{help}");
    assert!(help.find("--var").unwrap() < global, "{help}");
    // A command that reads no global option shows none, and still accepts them.
    let help = g.run(&["validate", "--help"]).ok().stdout();
    assert!(
        !help.contains("--engine") && !help.contains("--output"),
        "{help}"
    );
    let schema = g.run(&["--engine", "docker", "schema", "-o", "json"]);
    assert!(schema.ok().stdout().contains("\"$schema\""));
    let bad = g
        .cmd()
        .env("GOFER_ENGINE", "nope")
        .args(["run", "list", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("GOFER_ENGINE=\"nope\" names no engine"));
}

/// What is missing is said in the user's words: no storage layer, run numbers unquoted.
#[test]
fn missing_things_are_named_without_the_storage_layer() {
    let g = Gofer::new();
    let out = g.run(&["run", "get", "nothing_here", "99"]);
    let err = out.stderr();
    assert_eq!(out.code(), 2, "{err}");
    assert!(
        err.contains("run 99 not found in pipeline \"nothing_here\""),
        "{err}"
    );
    assert!(!err.contains("sqlite"), "{err}");
    let out = g.run(&["secret", "get", "nokey", "--pipeline", "nothing_here"]);
    let err = out.stderr();
    assert!(err.contains("pipeline secret \"nokey\" not found"), "{err}");
    assert!(!err.contains("sqlite"), "{err}");
}

/// `gofer logs` of an attempt never made, or of a task that never ran, says so (exit 2)
/// instead of printing nothing.
#[test]
fn logs_of_what_never_ran_say_so() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "skips.yaml",
        "id: skips\ntasks:\n  - id: bad\n    image: IMAGE\n    command: [sh, -c, 'exit 3']\n  - id: after\n    image: IMAGE\n    depends_on: {bad: success}\n    command: [echo, never]\n",
    );
    assert_eq!(g.run(&["run", file.to_str().unwrap()]).code(), 1);
    let out = g.run(&["logs", "skips", "1", "bad.5"]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().contains("has no attempt 5: it has made 1"),
        "{}",
        out.stderr()
    );
    let out = g.run(&["logs", "skips", "1", "after"]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr()
            .contains("never ran (it ended Skipped: parent task \"bad\" ended Failed"),
        "{}",
        out.stderr()
    );
    let out = g.run(&["logs", "skips", "1", "bad.0"]);
    assert_eq!(out.code(), 2);
    assert!(out.stderr().contains("counted from 1"), "{}", out.stderr());
    assert_eq!(g.run(&["logs", "skips", "1", "bad.1"]).ok().stdout(), "");
    // A skipped task of a finished run had no variables, and never will.
    let get = g.run(&["task", "get", "skips", "1", "after"]).ok().stdout();
    assert!(
        get.contains("(none: the task ended before its container was made)")
            && !get.contains("yet")
            && !get.contains("log:"),
        "{get}"
    );
}

/// A task variable or `--var` that replaces a value gofer sets is said, at validate and
/// at run time (the precedence stays the specification's).
#[test]
fn overriding_a_system_key_is_warned_about() {
    let g = Gofer::new();
    let file = g.file(
        "override.yaml",
        "id: overrides\ntasks:\n  - id: show\n    image: IMAGE\n    command: [sh, -c, 'echo $GOFER_RUN_ID']\n    variables: {GOFER_RUN_ID: \"77\"}\n",
    );
    let out = g.run(&["validate", file.to_str().unwrap()]);
    let err = out.ok().stderr();
    assert!(
        err.contains("warning: variable GOFER_RUN_ID of task show replaces the value gofer sets"),
        "{err}"
    );
    if !engine() {
        return;
    }
    let out = g.run(&["run", file.to_str().unwrap(), "--var", "GOFER_TASK_ID=x"]);
    let err = out.stderr();
    assert!(
        err.contains("--var GOFER_TASK_ID replaces the value gofer sets"),
        "{err}"
    );
    assert!(out.ok().stdout().contains("[show] 77"));
}

/// `task get` shows a retried task's attempt and each earlier attempt's end.
#[test]
fn task_get_shows_each_attempt() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "flaky.yaml",
        "id: flaky_one\ntasks:\n  - id: flaky\n    image: IMAGE\n    command: [sh, -c, 'exit 7']\n    retry: {attempts: 2}\n",
    );
    assert_eq!(g.run(&["run", file.to_str().unwrap()]).code(), 1);
    let text = g
        .run(&["task", "get", "flaky_one", "1", "flaky"])
        .ok()
        .stdout();
    assert!(text.contains("attempt:   2"), "{text}");
    assert!(
        text.contains("attempt 1: Failed (abnormal exit, code 7)"),
        "{text}"
    );
    let json = g
        .run(&["task", "get", "flaky_one", "1", "flaky", "-o", "json"])
        .ok()
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["attempt"], 2, "{v}");
    assert_eq!(v["earlier_attempts"][0]["attempt"], 1, "{v}");
    assert_eq!(v["earlier_attempts"][0]["exit_code"], 7, "{v}");
    assert!(v["earlier_attempts"][0]["duration_ms"].is_u64(), "{v}");
}

#[test]
fn the_across_runs_example_keeps_its_cache_for_the_second_run() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/across_runs.yaml");
    // Its own pipeline id: caches are per pipeline and outlive the test's home.
    let id = format!("across_{}", std::process::id());
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("id: across_runs", &format!("id: {id}"));
    let file = g.file("across.yaml", &text);
    let file = file.to_str().unwrap();
    let first = g.run(&["run", "--var", "ENV=staging", file]);
    let stdout = first.ok().stdout();
    for line in [
        "[deps] deps: downloaded",
        "[test_OS-linux] testing on linux",
        "[test_OS-bsd] testing on bsd",
        "[deploy] deploying to staging",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
    let second = g.run(&["run", "--var", "ENV=staging", file]);
    let stdout = second.ok().stdout();
    assert!(stdout.contains("[deps] deps: from the cache"), "{stdout}");
    // `gofer cache`: the entry is listed, then pruned with a zero budget.
    let list = g.run(&["-o", "json", "cache", "list", &id]).ok().stdout();
    let entries: serde_json::Value = serde_json::from_str(&list).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list}");
    assert!(
        entries[0]["key"].as_str().unwrap().starts_with("deps-"),
        "{list}"
    );
    assert_eq!(entries[0]["pipeline"], id.as_str());
    assert!(entries[0]["size_bytes"].as_u64().unwrap() > 0, "{list}");
    let text = g.run(&["cache", "list", &id]).ok().stdout();
    assert!(text.starts_with("PIPELINE") && text.contains(&id), "{text}");
    let pruned = g
        .run(&["cache", "prune", &id, "--max-bytes", "0"])
        .ok()
        .stdout();
    assert!(pruned.starts_with("removed 1 caches"), "{pruned}");
    assert_eq!(
        g.run(&["cache", "list", &id]).ok().stdout(),
        "no saved caches\n"
    );
    // Nothing labelled with the pipeline is left on the engine (the use record went too).
    let filter = format!("label=dev.gofer.cache.scope={id}");
    let ls = std::process::Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", &filter])
        .output()
        .unwrap();
    assert!(ls.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout),
        "",
        "cache volumes left"
    );
}

/// `gofer logs --streams`: split (the default, as `docker logs`), both in one ordered
/// stream with stderr lines marked (what `> file` wants), or one stream only.
#[test]
fn logs_streams_split_merge_or_pick() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = g.file(
        "streams.yaml",
        "id: streams\ntasks:\n  - id: both\n    image: IMAGE\n    command: [sh, -c, 'echo one; echo two >&2; echo three']\n",
    );
    g.run(&["run", file.to_str().unwrap()]).ok();
    let logs = |extra: &[&str]| {
        let mut args = vec!["logs", "streams", "1", "both"];
        args.extend_from_slice(extra);
        g.run(&args)
    };
    let split = logs(&[]);
    assert_eq!(split.ok().stdout(), "one\nthree\n");
    assert_eq!(split.stderr(), "two\n");
    // Not a terminal here: the stderr line is prefixed. (Engines read the two streams
    // through separate pipes: lines of different streams written a moment apart may
    // come in either order, each stream's own in order.)
    let both = logs(&["--streams", "both"]);
    let mut lines: Vec<String> = both.ok().stdout().lines().map(str::to_string).collect();
    assert_eq!(both.stderr(), "");
    let at = |l: &str| lines.iter().position(|x| x == l);
    assert!(at("one") < at("three"), "{lines:?}");
    lines.sort();
    assert_eq!(lines, ["[stderr] two", "one", "three"]);
    assert_eq!(logs(&["--streams", "stdout"]).ok().stdout(), "one\nthree\n");
    assert_eq!(logs(&["--streams", "stderr"]).ok().stdout(), "two\n");
    let help = g.run(&["--help"]).ok().stdout();
    assert!(
        help.contains("Exit codes: 0") && help.contains("130"),
        "{help}"
    );
}
