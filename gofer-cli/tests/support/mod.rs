//! Driving the built `gofer` binary as a user does, each test in its own data
//! directory.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The test image made by `scripts/setup-docker.sh` / `setup-podman.sh`.
pub const IMAGE: &str = "gofer-test/busybox:latest";

/// Whether a container engine is reachable. In CI (`CI=true`) a missing engine
/// fails the test; elsewhere the test is skipped with the reason printed.
pub fn engine() -> bool {
    engine_named(gofer_cli::EngineChoice::Auto)
}

/// As [`engine`], for one engine.
pub fn engine_named(choice: gofer_cli::EngineChoice) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(gofer_cli::connect_engine(choice)) {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and no container engine is reachable: {e}"
            );
            eprintln!("skipped: no container engine is reachable ({e}); run scripts/engines.sh all as root");
            false
        }
    }
}

/// One data directory, and the files a test writes.
pub struct Gofer {
    pub home: tempfile::TempDir,
}

impl Gofer {
    pub fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes a file in the test's directory; returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home.path().join(name);
        std::fs::write(&path, text.replace("IMAGE", IMAGE)).unwrap();
        path
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gofer"));
        c.env("GOFER_HOME", self.home.path().join("data"))
            .env_remove("GOFER_SECRET_KEY")
            .env_remove("GOFER_ENGINE")
            .stdin(Stdio::null());
        c
    }

    /// Runs `gofer ARGS` to its end.
    pub fn run(&self, args: &[&str]) -> Out {
        Out(self.cmd().args(args).output().unwrap())
    }

    /// Runs `gofer ARGS` with `input` on standard input.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Out {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Out(child.wait_with_output().unwrap())
    }

    /// Starts `gofer ARGS` in the background, its output into files.
    pub fn spawn(&self, args: &[&str], name: &str) -> Spawned {
        let out = self.home.path().join(format!("{name}.out"));
        let err = self.home.path().join(format!("{name}.err"));
        let child = self
            .cmd()
            .args(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Spawned { child, out, err }
    }

    /// `run get` as JSON.
    pub fn run_json(&self, pipeline: &str, run: u64) -> serde_json::Value {
        let o = self.run(&["run", "get", pipeline, &run.to_string(), "-o", "json"]);
        o.ok();
        serde_json::from_str(&o.stdout()).unwrap()
    }

    /// The names of containers on the engine whose names hold `needle`.
    pub fn containers(&self, needle: &str) -> Vec<String> {
        self.containers_on(gofer_cli::EngineChoice::Auto, needle)
    }

    /// As [`Gofer::containers`], on one engine.
    pub fn containers_on(&self, choice: gofer_cli::EngineChoice, needle: &str) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = gofer_cli::connect_engine(choice).await.unwrap();
            s.list(&Default::default())
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.name)
                .filter(|n| n.contains(needle))
                .collect()
        })
    }
}

pub struct Out(pub Output);

impl Out {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts exit code 0.
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code(),
            0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

pub struct Spawned {
    pub child: Child,
    pub out: PathBuf,
    pub err: PathBuf,
}

impl Spawned {
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Waits (up to a generous bound, for a stuck engine) until standard output
    /// holds `needle`.
    pub fn wait_for(&self, needle: &str) {
        let end = Instant::now() + Duration::from_secs(60);
        while !read(&self.out).contains(needle) {
            assert!(
                Instant::now() < end,
                "{needle:?} never appeared; stdout:\n{}\nstderr:\n{}",
                read(&self.out),
                read(&self.err)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        let s = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid()])
            .status()
            .unwrap();
        assert!(s.success());
    }

    /// Waits for the end; returns the exit code (`None` when killed by a signal).
    pub fn finish(mut self) -> (Option<i32>, String, String) {
        let status = self.child.wait().unwrap();
        (status.code(), read(&self.out), read(&self.err))
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

impl Gofer {
    /// The data directory's id (part of every container name of this test).
    pub fn home_id(&self) -> String {
        read(&self.home.path().join("data").join("home.id"))
            .trim()
            .to_string()
    }
}
