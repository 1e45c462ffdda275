//! `gofer -v`, `GOFER_LOG` and `--log-file` on the real engines: the logs hold gofer's
//! and the client libraries' records, and never a secret value (a pipeline secret, a
//! global secret, a registry password, each also base64-encoded in the task's output),
//! on stderr, in the file or among the task log lines on stdout.
#![allow(clippy::unwrap_used)]

mod support;

use gofer_cli::EngineChoice;
use support::*;

const VALUE: &str = "trace-s3cret-value-41";
const GLOBAL: &str = "global-tr4ce-value-97";
/// The auth registry's password (scripts/setup-docker.sh, setup-podman.sh).
const REGISTRY_PASSWORD: &str = "s3cret";

fn b64(s: &str) -> String {
    // Enough of base64 for a test: the standard alphabet, with padding.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The trace pipeline; its `pull` task takes `pull_image` with registry credentials
/// (on the swarm, whose nodes reach no registry, the loaded test image: the
/// credentials still travel with the service's create request).
fn pipeline(g: &Gofer, pull_image: &str) -> std::path::PathBuf {
    g.run_with_input(&["secret", "set", "pw", "--pipeline", "tracelog"], VALUE)
        .ok();
    g.run_with_input(
        &["secret", "set", "gpw", "--global", "--allow", "tracelog"],
        GLOBAL,
    )
    .ok();
    g.run_with_input(
        &["secret", "set", "reg_pass", "-p", "tracelog"],
        REGISTRY_PASSWORD,
    )
    .ok();
    let pull = if pull_image == PRIVATE_IMAGE {
        format!("image: {pull_image}\n    pull_policy: always")
    } else {
        format!("image: {pull_image}")
    };
    g.file(
        "tracelog.yaml",
        &r#"
id: tracelog
tasks:
  - id: leak
    image: IMAGE
    inject_api_token: true
    command: [sh, -c, 'echo "pw=$PW g=$GPW"; printf %s "$PW" | base64; printf %s "$GPW" | base64; echo "$PW" | fold -w 7; printf "tokrev=%s\n" "$(printf %s "$GOFER_API_TOKEN" | rev)"; echo done']
    variables:
      PW: secret{{pw}}
      GPW: global_secret{{gpw}}
  - id: pull
    PULL
    command: [echo, pulled with credentials]
    registry_auth: {username: gofer, password: "secret{{reg_pass}}"}
"#
        .replace("PULL", &pull),
    )
}

/// The auth registry's image (scripts/setup-docker.sh, setup-podman.sh).
const PRIVATE_IMAGE: &str = "localhost:5001/private/busybox:latest";

fn no_value(what: &str, text: &str) {
    for v in [VALUE, GLOBAL] {
        assert!(!text.contains(v), "a secret value in {what}:\n{text}");
        assert!(!text.contains(&b64(v)), "a base64 value in {what}:\n{text}");
    }
    assert!(
        !text.contains(&format!(":{REGISTRY_PASSWORD}"))
            && !text.contains(&format!("\"{REGISTRY_PASSWORD}\"")),
        "the registry password in {what}:\n{text}"
    );
}

/// A run at trace level on `engine` with the client libraries named, to a log file.
fn trace_to_a_file(name: &str, clients: &str) -> (String, Out) {
    trace_to_a_file_pulling(name, clients, PRIVATE_IMAGE)
}

fn trace_to_a_file_pulling(name: &str, clients: &str, pull_image: &str) -> (String, Out) {
    let g = Gofer::new();
    let file = pipeline(&g, pull_image);
    let log = g.home.path().join("gofer.log");
    let out = Out(g
        .cmd()
        .env("GOFER_LOG", format!("trace,{clients}"))
        .args([
            "--engine",
            name,
            "run",
            file.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
        ])
        .output()
        .unwrap());
    out.ok();
    let stdout = out.stdout();
    assert!(
        stdout.contains("[leak] done") && stdout.contains("[pull] pulled with credentials"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("TRACE") && !stdout.contains("DEBUG"),
        "log records on stdout:\n{stdout}"
    );
    no_value("stdout", &stdout);
    no_value("stderr", &out.stderr());
    let text = read(&log);
    no_value("the log file", &text);
    // The run's API token, as the task saw it (printed reversed, which no masker
    // knows): the task's log lines, stderr and the log file never hold it.
    let token: String = stdout
        .lines()
        .find_map(|l| {
            l.split_once("tokrev=")
                .map(|(_, r)| r.trim().chars().rev().collect())
        })
        .unwrap_or_default();
    assert!(token.len() >= 16, "the task saw no API token:\n{stdout}");
    for (what, t) in [
        ("stdout", stdout.as_str()),
        ("stderr", &out.stderr()),
        ("the log file", &text),
    ] {
        assert!(!t.contains(&token), "the API token in {what}:\n{t}");
        assert!(
            !t.contains(&b64(&token)),
            "the base64 API token in {what}:\n{t}"
        );
    }
    assert!(
        text.lines().any(|l| l.contains("gofer_engine")),
        "gofer's records:\n{text}"
    );
    (text, out)
}

#[test]
fn docker_at_trace_the_logs_hold_bollards_bodies_masked_and_no_value() {
    if !engine_named(EngineChoice::Docker) {
        return;
    }
    let (text, _) = trace_to_a_file("docker", "bollard=trace");
    // bollard logs the create body, with the container's environment: masked.
    assert!(
        text.lines()
            .any(|l| l.contains("bollard") && l.contains("[MASKED]")),
        "bollard's records, masked:\n{text}"
    );
}

#[test]
fn podman_at_trace_the_logs_hold_the_clients_records_and_no_value() {
    if !engine_named(EngineChoice::Podman) {
        return;
    }
    let (text, _) = trace_to_a_file("podman", "podman_api=trace,containers_api=trace");
    assert!(
        text.lines()
            .any(|l| l.contains("containers_api") || l.contains("podman_api")),
        "the Podman client's records:\n{text}"
    );
}

#[test]
fn containerd_at_trace_the_logs_hold_the_grpc_and_registry_clients_records_and_no_value() {
    if !engine_named(EngineChoice::Containerd) {
        return;
    }
    let (text, _) = trace_to_a_file(
        "containerd",
        "h2=trace,tonic=trace,hyper=trace,oci_client=trace,reqwest=trace",
    );
    // The gRPC frames (the OCI spec with the environment among them) and the pull of
    // the private image through the registry client.
    assert!(
        text.lines().any(|l| l.contains(" h2::")),
        "the gRPC stack's records:
{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("oci_client")),
        "the registry client's records:
{text}"
    );
}

#[test]
fn swarm_at_trace_the_logs_hold_bollards_bodies_masked_and_no_value() {
    if !engine_named(EngineChoice::Swarm) {
        return;
    }
    let (text, _) = trace_to_a_file_pulling("swarm", "bollard=trace", "IMAGE");
    // bollard logs the service spec, with the task's environment: masked.
    assert!(
        text.lines()
            .any(|l| l.contains("bollard") && l.contains("[MASKED]")),
        "bollard's records, masked:\n{text}"
    );
}

#[test]
fn verbose_logs_go_to_stderr_only() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = pipeline(&g, PRIVATE_IMAGE);
    let out = Out(g
        .cmd()
        .env_remove("GOFER_LOG")
        .env_remove("RUST_LOG")
        .args(["-vvv", "run", file.to_str().unwrap()])
        .output()
        .unwrap());
    out.ok();
    let stderr = out.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("TRACE") || l.contains("DEBUG")),
        "gofer's records on stderr:\n{stderr}"
    );
    // -vvv raises gofer's targets only: the client library stays quiet.
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("bollard") || l.contains("containers_api")),
        "{stderr}"
    );
    no_value("stderr", &stderr);
    let stdout = out.stdout();
    no_value("stdout", &stdout);
    assert!(
        !stdout.contains("TRACE") && !stdout.contains("DEBUG"),
        "log records on stdout:\n{stdout}"
    );
}

#[test]
fn the_test_base64_is_base64() {
    assert_eq!(b64("trace-s3cret-value-41"), "dHJhY2UtczNjcmV0LXZhbHVlLTQx");
    assert_eq!(b64("ab"), "YWI=");
}
