//! Parsing tests: every format, the Gofer SDK's JSON, errors with positions and fields.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use gofer_core::{PlaceholderKind, PullPolicy, RequiredParentStatus};

use super::convert::*;
use super::format::*;
use super::parse::*;

fn parse(name: &str, text: &str) -> Result<LoadedPipeline, FileError> {
    let path = Path::new(name);
    let format = Format::of(path).unwrap();
    let file = parse_text(path, format, text)?;
    convert(file).map_err(|problems| FileError::Invalid {
        path: path.into(),
        problems,
    })
}

const TOML: &str = r#"
id = "hello_world"
name = "Hello World"

[[tasks]]
id = "simple_task"
image = "busybox"
command = ["echo", "Hello from Gofer!"]
variables = { GREETING = "hi" }
timeout = "30s"

[[tasks]]
id = "after"
image = "busybox"
depends_on = { simple_task = "success" }
pull_policy = "never"
"#;

const YAML: &str = r#"
id: hello_world
name: Hello World
tasks:
  - id: simple_task
    image: busybox
    command: [echo, "Hello from Gofer!"]
    variables:
      GREETING: hi
    timeout: 30s
  - id: after
    image: busybox
    depends_on:
      simple_task: success
    pull_policy: never
"#;

const JSON: &str = r#"{
  "id": "hello_world", "name": "Hello World",
  "tasks": [
    {"id": "simple_task", "image": "busybox", "command": ["echo", "Hello from Gofer!"],
     "variables": {"GREETING": "hi"}, "timeout": "30s"},
    {"id": "after", "image": "busybox", "depends_on": {"simple_task": "success"},
     "pull_policy": "never"}
  ]
}"#;

#[test]
fn the_three_formats_give_the_same_pipeline() {
    let t = parse("p.toml", TOML).unwrap().pipeline;
    let y = parse("p.yaml", YAML).unwrap().pipeline;
    let j = parse("p.json", JSON).unwrap().pipeline;
    assert_eq!(t, y);
    assert_eq!(t, j);
    let task = t.get_task("simple_task").unwrap();
    assert_eq!(
        task.command.as_deref().unwrap(),
        ["echo", "Hello from Gofer!"]
    );
    assert_eq!(task.variables["GREETING"], "hi");
    assert_eq!(task.timeout, Some(std::time::Duration::from_secs(30)));
    let after = t.get_task("after").unwrap();
    assert_eq!(
        after.depends_on["simple_task"],
        RequiredParentStatus::Success
    );
    assert_eq!(after.pull_policy, PullPolicy::Never);
}

/// What a Gofer pipeline program's `finish()` prints, nulls and all.
const GOFER_SDK_JSON: &str = r#"{
  "id": "dag_test_pipeline",
  "name": "DAG Test Pipeline",
  "description": "This pipeline shows off how you might use Gofer's DAG features.",
  "parallelism": 0,
  "tasks": [
    {"id": "first_task", "description": null, "image": "ubuntu:latest",
     "registry_auth": null, "depends_on": {}, "variables": {},
     "entrypoint": null, "command": ["sleep", "5"],
     "inject_api_token": false, "always_pull_newest_image": true},
    {"id": "depends_on_first", "description": "waits", "image": "ubuntu:latest",
     "registry_auth": {"user": "me", "pass": "secret{{registry_pass}}"},
     "depends_on": {"first_task": "Success"}, "variables": {"A": "b"},
     "entrypoint": ["/bin/sh", "-c"], "command": ["echo hi"],
     "inject_api_token": true, "always_pull_newest_image": false},
    {"id": "on_failure", "image": "ubuntu:latest",
     "depends_on": {"first_task": "Failure", "depends_on_first": "Any"}}
  ]
}"#;

#[test]
fn gofer_sdk_json_runs_unchanged() {
    let loaded = parse("pipeline.json", GOFER_SDK_JSON).unwrap();
    let p = &loaded.pipeline;
    assert_eq!(p.id, "dag_test_pipeline");
    let first = p.get_task("first_task").unwrap();
    assert_eq!(first.pull_policy, PullPolicy::Always);
    assert!(first.registry_auth.is_none());
    let second = p.get_task("depends_on_first").unwrap();
    assert_eq!(second.pull_policy, PullPolicy::IfNotPresent);
    assert!(second.inject_api_token);
    assert_eq!(second.entrypoint.as_deref().unwrap(), ["/bin/sh", "-c"]);
    assert_eq!(
        second.depends_on["first_task"],
        RequiredParentStatus::Success
    );
    assert_eq!(second.registry_auth.as_ref().unwrap().username, "me");
    assert_eq!(loaded.registry_secrets.len(), 1);
    assert_eq!(loaded.registry_secrets[0].0, "depends_on_first");
    assert_eq!(
        loaded.registry_secrets[0].1.kind,
        PlaceholderKind::PipelineSecret
    );
    assert_eq!(loaded.registry_secrets[0].1.key, "registry_pass");
    let third = p.get_task("on_failure").unwrap();
    assert_eq!(
        third.depends_on["first_task"],
        RequiredParentStatus::Failure
    );
    assert_eq!(
        third.depends_on["depends_on_first"],
        RequiredParentStatus::Any
    );
}

fn syntax(e: FileError) -> (Option<String>, Option<Position>, String) {
    match e {
        FileError::Syntax {
            field,
            position,
            message,
            ..
        } => (field, position, message),
        other => panic!("not a syntax error: {other}"),
    }
}

#[test]
fn a_typo_in_yaml_names_the_field_line_and_column() {
    let text = "id: hello\ntasks:\n  - id: one\n    imagee: busybox\n";
    let e = parse("p.yaml", text).unwrap_err();
    let shown = e.to_string();
    let (field, position, message) = syntax(e);
    assert_eq!(field.as_deref(), Some("tasks[0].imagee"));
    assert_eq!(position.unwrap().line, 4);
    assert!(message.contains("unknown field `imagee`"), "{message}");
    assert!(shown.starts_with("p.yaml:4:"), "{shown}");
}

#[test]
fn a_typo_in_toml_names_the_field_and_line() {
    let text = "id = \"hello\"\n\n[[tasks]]\nid = \"one\"\nimage = \"busybox\"\ncomand = [\"x\"]\n";
    let (field, position, message) = syntax(parse("p.toml", text).unwrap_err());
    assert_eq!(field.as_deref(), Some("tasks[0].comand"));
    assert_eq!(position.unwrap().line, 6);
    assert!(message.contains("unknown field `comand`"), "{message}");
}

#[test]
fn a_wrong_type_in_json_names_the_field_and_position() {
    let text = "{\n  \"id\": \"hello\",\n  \"tasks\": [{\"id\": \"one\", \"image\": 5}]\n}";
    let (field, position, message) = syntax(parse("p.json", text).unwrap_err());
    assert_eq!(field.as_deref(), Some("tasks[0].image"));
    assert_eq!(position.unwrap().line, 3);
    assert!(message.contains("expected a string"), "{message}");
}

#[test]
fn every_semantic_problem_is_reported_at_once_naming_its_field() {
    let text = r#"
id = "x"
[[tasks]]
id = "a"
image = ""
timeout = "soon"
[[tasks]]
id = "bbb"
image = "busybox"
depends_on = { nope = "any" }
variables = { "1BAD" = "v" }
"#;
    let FileError::Invalid { problems, .. } = parse("p.toml", text).unwrap_err() else {
        panic!("not invalid")
    };
    let all = problems.join("\n");
    for needle in [
        "field `timeout` of task \"a\"",
        "field `id` of the pipeline",
        "field `depends_on` of task \"bbb\": unknown parent \"nope\"",
        "field `variables` of task \"bbb\"",
    ] {
        assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
    }
}

#[test]
fn a_literal_registry_password_is_rejected_with_how_to_store_it() {
    let text = r#"
id = "private"
[[tasks]]
id = "pull"
image = "registry.local/app"
registry_auth = { username = "me", password = "hunter22" }
"#;
    let e = parse("p.toml", text).unwrap_err().to_string();
    assert!(
        e.contains("field `registry_auth.password` of task \"pull\""),
        "{e}"
    );
    assert!(e.contains("gofer secret set"), "{e}");
    assert!(
        !e.contains("hunter22"),
        "the password must not be echoed: {e}"
    );
}

#[test]
fn conflicting_pull_settings_are_rejected() {
    let text = r#"{"id": "abc", "tasks": [{"id": "one", "image": "x",
        "pull_policy": "never", "always_pull_newest_image": true}]}"#;
    let e = parse("p.json", text).unwrap_err().to_string();
    assert!(
        e.contains("`pull_policy` and `always_pull_newest_image`"),
        "{e}"
    );
}

#[test]
fn unknown_extension_is_named() {
    assert!(Format::of(Path::new("p.txt")).is_none());
    let e = read(Path::new("/nonexistent/p.ini")).unwrap_err();
    assert!(matches!(e, FileError::UnknownFormat { .. }));
}

#[test]
fn the_schema_describes_the_fields() {
    let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
    let task = &schema["$defs"]["TaskFile"]["properties"];
    for field in [
        "image",
        "depends_on",
        "always_pull_newest_image",
        "registry_auth",
        "timeout",
        "matrix",
        "concurrency",
        "caches",
    ] {
        assert!(task.get(field).is_some(), "{field} not in the schema");
    }
    let cache = &schema["$defs"]["CacheFile"];
    assert_eq!(cache["required"], serde_json::json!(["key", "path"]));
    assert_eq!(schema["required"], serde_json::json!(["id"]));
}

#[test]
fn retry_and_workspace_are_read_and_bad_values_named() {
    let text = r#"
id = "flaky_ci"
workspace = true

[[tasks]]
id = "flaky"
image = "busybox"
retry = { attempts = 3, initial_backoff = "1s", factor = 2.0, max_backoff = "10s", exit_codes = [1] }

[[tasks]]
id = "infra"
image = "busybox"
retry = { attempts = 2, scheduler_errors_only = true }
"#;
    let p = parse("p.toml", text).unwrap().pipeline;
    assert!(p.workspace);
    let r = p.get_task("flaky").unwrap().retry.clone().unwrap();
    assert_eq!(r.attempts, 3);
    assert_eq!(r.backoff_after(2), std::time::Duration::from_secs(2));
    assert_eq!(r.retry_on, gofer_core::RetryOn::ExitCodes(vec![1]));
    let r = p.get_task("infra").unwrap().retry.clone().unwrap();
    assert_eq!(r.retry_on, gofer_core::RetryOn::SchedulerErrors);

    let bad = r#"
id = "flaky_ci"
[[tasks]]
id = "flaky"
image = "busybox"
retry = { attempts = 0, initial_backoff = "soon" }
"#;
    let Err(FileError::Invalid { problems, .. }) = parse("p.toml", bad) else {
        panic!("bad retry accepted");
    };
    assert!(
        problems.iter().any(|p| p.contains("retry.initial_backoff")),
        "{problems:?}"
    );
}

#[test]
fn services_are_read_with_their_sandbox_and_bad_values_named() {
    let text = r#"
id = "web_ci"

[[services]]
id = "database"
image = "postgres:16"
variables = { POSTGRES_PASSWORD = "secret{{db_password}}" }
readiness = { command = ["pg_isready"], interval = "500ms" }

[[tasks]]
id = "test"
image = "busybox"
needs_services = ["database"]
"#;
    let loaded = parse("p.toml", text).unwrap();
    let p = &loaded.pipeline;
    assert_eq!(loaded.sandbox_image.as_deref(), Some("postgres:16"));
    let db = &p.services[0];
    let r = db.readiness.clone().unwrap();
    assert_eq!(r.command, ["pg_isready"]);
    assert_eq!(r.interval, std::time::Duration::from_millis(500));
    assert_eq!(
        r.deadline,
        std::time::Duration::from_secs(60),
        "the default"
    );
    assert_eq!(db.variables["POSTGRES_PASSWORD"], "secret{{db_password}}");
    assert!(p.get_task("test").unwrap().services.contains("database"));
    // No services: no sandbox; an explicit image wins over the first service's.
    let plain = parse(
        "p.toml",
        "id = \"plain\"\n[[tasks]]\nid = \"task1\"\nimage = \"i\"\n",
    )
    .unwrap();
    assert_eq!(plain.sandbox_image, None);
    let explicit = text.replace(
        "id = \"web_ci\"",
        "id = \"web_ci\"\nsandbox_image = \"busybox\"",
    );
    assert_eq!(
        parse("p.toml", &explicit).unwrap().sandbox_image.as_deref(),
        Some("busybox")
    );

    let bad = r#"
id = "web_ci"
[[services]]
id = "database"
image = "postgres:16"
readiness = { command = ["pg_isready"], deadline = "whenever" }
[[tasks]]
id = "test"
image = "busybox"
needs_services = ["cache"]
"#;
    let Err(FileError::Invalid { problems, .. }) = parse("p.toml", bad) else {
        panic!("bad services accepted");
    };
    assert!(
        problems
            .iter()
            .any(|p| p.contains("readiness.deadline") && p.contains("\"database\"")),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.contains("cache")), "{problems:?}");
}

#[test]
fn caches_are_read_and_bad_ones_named_by_position() {
    let text = r#"
id = "cached"
workspace = true
[[tasks]]
id = "build"
image = "busybox"
caches = [
  { key = "cargo-{{digest:Cargo.lock}}", path = "/cargo", restore_keys = ["cargo-"] },
  { key = "t", path = "/target" },
]
"#;
    let p = parse("p.toml", text).unwrap().pipeline;
    let caches = &p.get_task("build").unwrap().caches;
    assert_eq!(caches.len(), 2);
    assert_eq!(caches[0].key, "cargo-{{digest:Cargo.lock}}");
    assert_eq!(caches[0].restore_keys, ["cargo-"]);
    assert_eq!(caches[1].path, "/target");

    let bad = r#"
id = "cached"
[[tasks]]
id = "build"
image = "busybox"
caches = [
  { key = "k-{{digest:lock}}", path = "/a" },
  { key = "k", path = "relative" },
  { key = "k", path = "/a" },
]
"#;
    let FileError::Invalid { problems, .. } = parse("p.toml", bad).unwrap_err() else {
        panic!("not invalid")
    };
    let all = problems.join("\n");
    for needle in [
        "field `caches[0]` of task \"build\": the key takes a file's digest, but the pipeline has no workspace",
        "field `caches[1]` of task \"build\": path \"relative\" is not absolute",
        "field `caches[2]` of task \"build\": path \"/a\" is also the path of caches[0]",
    ] {
        assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
    }
    let typo = "id = \"cached\"\n[[tasks]]\nid = \"build\"\nimage = \"b\"\ncaches = [{ key = \"k\", paht = \"/a\" }]\n";
    let e = parse("p.toml", typo).unwrap_err().to_string();
    assert!(e.contains("paht"), "{e}");
}

#[test]
fn a_negative_duration_is_said_to_be_negative() {
    let text = "id = \"neg\"\n[[tasks]]\nid = \"one\"\nimage = \"b\"\ntimeout = \"-5s\"\nretry = { attempts = 2, initial_backoff = \"- 1m\" }\n";
    let FileError::Invalid { problems, .. } = parse("p.toml", text).unwrap_err() else {
        panic!("not invalid")
    };
    let all = problems.join("\n");
    assert!(
        all.contains("field `timeout` of task \"one\": \"-5s\" is negative"),
        "{all}"
    );
    assert!(
        all.contains("field `retry.initial_backoff` of task \"one\": \"- 1m\" is negative"),
        "{all}"
    );
    // Not a duration at all: still said so, with examples.
    let e = super::duration("soon", "`1s`").unwrap_err();
    assert!(e.contains("is not a duration (such as `1s`)"), "{e}");
    assert_eq!(
        super::duration(" 90s ", "").unwrap(),
        std::time::Duration::from_secs(90)
    );
}

#[test]
fn an_unterminated_yaml_quote_is_placed_where_it_opens() {
    let text = "id: hello\ntasks:\n  - id: \"one\n    image: busybox\n";
    let e = parse("p.yaml", text).unwrap_err();
    let shown = e.to_string();
    let (_, position, message) = syntax(e);
    let p = position.unwrap();
    assert_eq!((p.line, p.column), (3, 9), "{shown}");
    assert!(
        message.contains("quoted string that starts here"),
        "{message}"
    );
    assert!(shown.starts_with("p.yaml:3:9:"), "{shown}");
}

#[test]
fn a_toml_syntax_error_names_the_key_on_one_line() {
    let text = "id = \"hello\"\n\n[[tasks]]\nid = \"one\"\nimage = \"a\"\n\n[[tasks]]\nid = \"two\"\nimage = \n";
    let e = parse("p.toml", text).unwrap_err();
    let shown = e.to_string();
    assert_eq!(shown.lines().count(), 1, "{shown}");
    let (field, position, _) = syntax(e);
    assert_eq!(field.as_deref(), Some("tasks[1].image"), "{shown}");
    assert_eq!(position.unwrap().line, 9);
    let sub = "id = \"hello\"\n[[tasks]]\nid = \"one\"\nimage = \"a\"\n[tasks.variables]\nA = \n";
    let (field, _, _) = syntax(parse("p.toml", sub).unwrap_err());
    assert_eq!(field.as_deref(), Some("tasks[0].variables.A"));
}

#[test]
fn semantic_problems_carry_the_line_of_their_entry() {
    let dir = tempfile::tempdir().unwrap();
    // Two tasks "aa" (a bad id, and used twice) around a task with an empty image.
    let cases = [
        (
            "p.yaml",
            "id: x\ntasks:\n  - id: aa\n    image: busybox\n  - id: bbb\n    image: \"\"\n  - id: aa\n    image: busybox\n",
            (1, 5, 3, 7),
        ),
        (
            "p.toml",
            "id = \"x\"\n[[tasks]]\nid = \"aa\"\nimage = \"busybox\"\n[[tasks]]\nid = \"bbb\"\nimage = \"\"\n[[tasks]]\nid = \"aa\"\nimage = \"busybox\"\n",
            (1, 6, 3, 9),
        ),
        (
            "p.json",
            "{\n\"id\": \"x\",\n\"tasks\": [\n {\"id\": \"aa\", \"image\": \"busybox\"},\n {\"id\": \"bbb\",\n  \"image\": \"\"},\n {\"id\": \"aa\", \"image\": \"busybox\"}\n]\n}\n",
            (2, 5, 4, 7),
        ),
    ];
    for (name, text, (pipeline, empty, first, second)) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let FileError::Invalid { problems, .. } = load(&path).unwrap_err() else {
            panic!("not invalid")
        };
        let all = problems.join("\n");
        for needle in [
            format!("line {pipeline}: field `id` of the pipeline"),
            format!("line {empty}: field `image` of task \"bbb\""),
            format!("line {first}: field `id` of task \"aa\": must be"),
            // The same problem again is about the second task of that id.
            format!("line {second}: field `id` of task \"aa\": must be"),
            format!(
                "line {first}: field `id` of task \"aa\": the id is used by more than one task"
            ),
        ] {
            assert!(
                all.contains(&needle),
                "{name}: {needle:?} missing from:\n{all}"
            );
        }
    }
}

#[test]
fn a_yaml_error_names_its_field_once() {
    let text = "id: hello\ntasks:\n  - id: one\n    image: b\n    pull_policy: sometimes\n";
    let shown = parse("p.yaml", text).unwrap_err().to_string();
    assert_eq!(shown.matches("tasks[0].pull_policy").count(), 1, "{shown}");
    assert!(shown.contains("unknown variant `sometimes`"), "{shown}");
}

#[test]
fn messages_use_the_files_words_not_rusts() {
    let text = "{\"id\": \"hello\", \"tasks\": [{\"id\": \"one\", \"image\": \"b\", \"retry\": {\"attempts\": \"x\"}}]}";
    let shown = parse("p.json", text).unwrap_err().to_string();
    assert!(shown.contains("expected a whole number"), "{shown}");
    let text = "id: hello\ntasks:\n  - id: one\n    image: b\n    command: ls\n    depends_on: {x: sometimes}\n";
    let shown = parse("p.yaml", text).unwrap_err().to_string();
    assert!(shown.contains("expected a list"), "{shown}");
    let text = "id: hello\ntasks:\n  - id: one\n    image: b\n    depends_on: {x: sometimes}\n";
    let shown = parse("p.yaml", text).unwrap_err().to_string();
    assert!(
        shown.contains("expected one of `any`, `success`, `failure` (any case)"),
        "{shown}"
    );
    let text = "{\"id\": \"hello\", \"tasks\": [{\"id\": \"one\", \"image\": \"b\", \"matrix\": {\"include\": [{\"os\": [1]}]}}]}";
    let shown = parse("p.json", text).unwrap_err().to_string();
    assert!(
        shown.contains("tasks[0].matrix.include[0].os")
            && shown.contains("expected a single value"),
        "{shown}"
    );
    assert!(!shown.contains("enum"), "{shown}");
}
