//! `gofer -v`, `GOFER_LOG` and `--log-file` on the real engine: the logs hold gofer's
//! and the client library's records, never a secret value, and never mix into the
//! task log lines on stdout.
#![allow(clippy::unwrap_used)]

mod support;

use support::*;

const VALUE: &str = "trace-s3cret-value-41";
/// The value's base64 (the task prints it, as a leak would).
const VALUE_B64: &str = "dHJhY2UtczNjcmV0LXZhbHVlLTQx";

fn pipeline(g: &Gofer) -> std::path::PathBuf {
    g.run_with_input(&["secret", "set", "pw", "--pipeline", "tracelog"], VALUE)
        .ok();
    g.file(
        "tracelog.yaml",
        r#"
id: tracelog
tasks:
  - id: leak
    image: IMAGE
    inject_api_token: true
    command: [sh, -c, 'echo "pw=$PW"; printf %s "$PW" | base64; echo "$PW" | fold -w 7; echo done']
    variables:
      PW: secret{{pw}}
"#,
    )
}

fn no_value(what: &str, text: &str) {
    assert!(!text.contains(VALUE), "the secret value in {what}:\n{text}");
    assert!(
        !text.contains(VALUE_B64),
        "the base64 value in {what}:\n{text}"
    );
}

#[test]
fn trace_logs_to_a_file_hold_the_client_records_masked() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = pipeline(&g);
    let log = g.home.path().join("gofer.log");
    let out = support::Out(
        g.cmd()
            // bollard named: its request bodies (with the container's environment)
            // are logged, and must reach the file masked.
            .env("GOFER_LOG", "trace,bollard=trace")
            .args([
                "run",
                file.to_str().unwrap(),
                "--log-file",
                log.to_str().unwrap(),
            ])
            .output()
            .unwrap(),
    );
    out.ok();
    let text = read(&log);
    assert!(
        text.lines().any(|l| l.contains("gofer_")),
        "gofer's records:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("bollard") && l.contains("[MASKED]")),
        "bollard's records, masked:\n{text}"
    );
    no_value("the log file", &text);
    no_value("stderr", &out.stderr());
    let stdout = out.stdout();
    no_value("stdout", &stdout);
    assert!(stdout.contains("[leak] done"), "{stdout}");
    assert!(
        !stdout.contains("TRACE") && !stdout.contains("DEBUG"),
        "log records on stdout:\n{stdout}"
    );
}

#[test]
fn verbose_logs_go_to_stderr_only() {
    if !engine() {
        return;
    }
    let g = Gofer::new();
    let file = pipeline(&g);
    let out = support::Out(
        g.cmd()
            .env_remove("GOFER_LOG")
            .env_remove("RUST_LOG")
            .args(["-vvv", "run", file.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    out.ok();
    let stderr = out.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("TRACE") || l.contains("DEBUG")),
        "gofer's records on stderr:\n{stderr}"
    );
    // -vvv raises gofer's targets only: the client library stays quiet.
    assert!(!stderr.lines().any(|l| l.contains("bollard")), "{stderr}");
    no_value("stderr", &stderr);
    let stdout = out.stdout();
    no_value("stdout", &stdout);
    assert!(
        !stdout.contains("TRACE") && !stdout.contains("DEBUG"),
        "log records on stdout:\n{stdout}"
    );
}
