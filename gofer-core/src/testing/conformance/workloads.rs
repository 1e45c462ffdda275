//! [`Workloads`]: the test containers the suite needs, described per backend.

use std::collections::BTreeMap;

use crate::scheduler::ContainerSpec;
use crate::task::RegistryAuth;

/// One test container: an image and, optionally, the entrypoint and command that
/// replace the image's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Workload {
    /// The image reference.
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command when set.
    pub command: Option<Vec<String>>,
}

impl Workload {
    /// The image with its own entrypoint and command.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            entrypoint: None,
            command: None,
        }
    }

    /// `sh -c <script>` in `image` (for images with a POSIX shell).
    pub fn shell(image: impl Into<String>, script: impl Into<String>) -> Self {
        Self::new(image).command(["sh".to_string(), "-c".to_string(), script.into()])
    }

    /// Sets the command.
    #[must_use]
    pub fn command<I, S>(mut self, c: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command = Some(c.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the entrypoint.
    #[must_use]
    pub fn entrypoint<I, S>(mut self, e: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(e.into_iter().map(Into::into).collect());
        self
    }

    /// A [`ContainerSpec`] named `name` that runs this workload.
    pub fn spec(&self, name: impl Into<String>) -> ContainerSpec {
        let mut spec = ContainerSpec::new(name, self.image.clone());
        spec.entrypoint = self.entrypoint.clone();
        spec.command = self.command.clone();
        spec
    }
}

/// Number of lines of [`expected_big_output`].
pub const BIG_OUTPUT_LINES: usize = 10_240;
/// Bytes per line of [`expected_big_output`] (newline included).
pub const BIG_OUTPUT_LINE_LEN: usize = 1024;

/// What [`Workloads::big_output`] must print on stdout: 10 MiB in 10 240 lines of
/// 1 024 bytes, line `i` (from 0) being `100000 + i`, a space, then the 1 016 bytes
/// `0123456789abcdef` repeated and cut to size (its first 8 bytes dropped), then `\n`.
pub fn expected_big_output() -> Vec<u8> {
    let pattern = "0123456789abcdef".repeat(64);
    let filler = &pattern[8..];
    let mut out = Vec::with_capacity(BIG_OUTPUT_LINES * BIG_OUTPUT_LINE_LEN);
    for i in 0..BIG_OUTPUT_LINES {
        out.extend_from_slice(format!("{} {filler}\n", 100_000 + i).as_bytes());
    }
    out
}

/// How many lines each stream of [`Workloads::burst`] prints after its first one.
pub const BURST_LINES: usize = 2_000;

/// What [`Workloads::burst`] must print: (stdout, stderr).
pub fn expected_burst() -> (Vec<u8>, Vec<u8>) {
    let mut out = b"first\n".to_vec();
    let mut err = b"first-err\n".to_vec();
    for i in 1..=BURST_LINES {
        out.extend_from_slice(format!("o-{i}\n").as_bytes());
        err.extend_from_slice(format!("e-{i}\n").as_bytes());
    }
    (out, err)
}

/// How many lines each stream of [`Workloads::interleaved`] prints.
pub const INTERLEAVED_LINES: usize = 40;

/// The test containers the conformance suite needs, described per backend: the
/// differences between backends are data, never `if backend == ...`.
///
/// A real engine uses [`Workloads::busybox`]; the fake uses scripted behaviours
/// ([`FakeScheduler::conformance`](crate::fake::FakeScheduler::conformance)). Each
/// field's doc says what its container must do; the suite checks exactly that.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Workloads {
    /// An image with `echo` on its `PATH`, whose default command exits 0. The suite
    /// overrides its entrypoint and command with `echo ...`.
    pub image: String,
    /// Prints its whole environment as `KEY=VALUE` lines on stdout (like `env`), then
    /// exits 0.
    pub print_env: Workload,
    /// For each of the exit codes 0, 1, 3 and 137: a container that ends with it
    /// (137 by being killed with SIGKILL, where the engine can).
    pub exit_codes: BTreeMap<i64, Workload>,
    /// Prints `out-1` … `out-40` on stdout and `err-1` … `err-40` on stderr, one line
    /// of each in turn, pausing about a second after the 20th pair, then exits 0.
    pub interleaved: Workload,
    /// Prints [`expected_big_output`] on stdout (10 MiB), then exits 0.
    pub big_output: Workload,
    /// As its very first action prints `first` on stdout and `first-err` on stderr,
    /// then `o-1` … `o-2000` on stdout and `e-1` … `e-2000` on stderr, one line of
    /// each in turn, as fast as it can, and exits 0 at once ([`expected_burst`]).
    pub burst: Workload,
    /// Traps SIGTERM, prints `ready` on stdout once the trap is in place, runs until
    /// signalled, and on SIGTERM prints `term` on stdout and exits 0 at once.
    pub trap_term: Workload,
    /// Ignores SIGTERM (also under the init process), prints `ready` on stdout once
    /// it does, and runs until killed.
    pub ignore_term: Workload,
    /// Runs for minutes unless stopped; SIGTERM (through the init process) ends it.
    pub run_until_stopped: Workload,
    /// An image reference that exists nowhere: not locally and not in a reachable
    /// registry (so a pull fails with "not found", not with a network error).
    pub absent_image: String,
    /// A container whose image is present locally but cannot be pulled (pulling it
    /// would fail), and which exits 0: success under `IfNotPresent` proves no pull.
    pub local_only: Workload,
    /// A container that exceeds [`Workloads::oom_memory_bytes`] and is killed for
    /// memory; `None` skips the memory case (it also needs
    /// [`Capabilities::memory_limit`](crate::Capabilities::memory_limit)).
    pub oom: Option<Workload>,
    /// The memory limit the suite sets on [`Workloads::oom`].
    pub oom_memory_bytes: u64,
    /// An image in a registry that requires credentials, with those credentials, to
    /// pull with policy `Always`; its default command must exit 0. `None` skips the
    /// registry-auth case (it also needs
    /// [`Capabilities::registry_auth`](crate::Capabilities::registry_auth)).
    pub private_image: Option<(String, RegistryAuth)>,
    /// The image of network sandbox holders (for backends with
    /// [`Capabilities::network_sandbox`](crate::Capabilities::network_sandbox)).
    pub sandbox_image: String,
    /// Two containers sharing a volume, `(writer, reader)`: mounted on the same volume at
    /// [`VOLUME_TARGET`](super::VOLUME_TARGET), the writer writes `shared` into
    /// `VOLUME_TARGET/f` and exits 0; the reader prints that file on stdout and exits
    /// 0. `None` skips the sharing case (a backend whose containers cannot run real
    /// programs, like the fake, declares volumes without content).
    pub volume_share: Option<(Workload, Workload)>,
    /// How much longer than the grace period a stop may take (the stop cases' one
    /// timed check): [`STOP_SLACK`](super::STOP_SLACK) unless the engine itself takes
    /// longer to deliver a stop (a cluster engine hands it to a node first).
    pub stop_slack: std::time::Duration,
}

impl Workloads {
    /// The workloads for a real engine, from a busybox image that has `sh`, `echo`,
    /// `env`, `sleep` and `kill` (the project's `gofer-test/busybox:latest`), present
    /// locally and not pullable. The absent image is
    /// `localhost:5000/gofer-conformance/absent:latest` (a local registry is expected
    /// on port 5000; change it with [`Workloads::absent_image`] otherwise).
    pub fn busybox(image: &str) -> Self {
        let sh = |script: &str| Workload::shell(image, script);
        let exit_codes = BTreeMap::from([
            (0, sh("exit 0")),
            (1, sh("exit 1")),
            (3, sh("exit 3")),
            // Killed by SIGKILL under the init process; `exit 137` only if the kill
            // was refused (PID 1 without init), so the case cannot hang.
            (137, sh("kill -KILL $$; exit 137")),
        ]);
        Self {
            image: image.to_string(),
            print_env: Workload::new(image).command(["env"]),
            exit_codes,
            interleaved: sh(concat!(
                "i=1; while [ $i -le 40 ]; do echo \"out-$i\"; echo \"err-$i\" >&2; ",
                "if [ $i -eq 20 ]; then sleep 1; fi; i=$((i+1)); done"
            )),
            big_output: sh(concat!(
                "s=0123456789abcdef; s=\"$s$s$s$s\"; s=\"$s$s$s$s\"; s=\"$s$s$s$s\"; ",
                "s=${s#????????}; i=100000; ",
                "while [ $i -lt 110240 ]; do echo \"$i $s\"; i=$((i+1)); done"
            )),
            burst: sh(concat!(
                "echo first; echo first-err >&2; i=1; ",
                "while [ $i -le 2000 ]; do echo \"o-$i\"; echo \"e-$i\" >&2; i=$((i+1)); done"
            )),
            trap_term: sh(concat!(
                "trap 'echo term; exit 0' TERM; echo ready; ",
                "while :; do sleep 1 & wait $!; done"
            )),
            ignore_term: sh("trap '' TERM; echo ready; while :; do sleep 1; done"),
            run_until_stopped: Workload::new(image).command(["sleep", "300"]),
            absent_image: "localhost:5000/gofer-conformance/absent:latest".to_string(),
            local_only: Workload::new(image).command(["true"]),
            oom: Some(sh("s=0123456789abcdef; while :; do s=\"$s$s\"; done")),
            oom_memory_bytes: 16 * 1024 * 1024,
            sandbox_image: image.to_string(),
            private_image: None,
            volume_share: Some((
                sh(&format!("echo shared > {}/f", super::VOLUME_TARGET)),
                sh(&format!("cat {}/f", super::VOLUME_TARGET)),
            )),
            stop_slack: super::STOP_SLACK,
        }
    }

    /// Sets [`Workloads::stop_slack`].
    #[must_use]
    pub fn stop_slack(mut self, slack: std::time::Duration) -> Self {
        self.stop_slack = slack;
        self
    }

    /// Sets [`Workloads::private_image`].
    #[must_use]
    pub fn private_image(mut self, image: impl Into<String>, auth: RegistryAuth) -> Self {
        self.private_image = Some((image.into(), auth));
        self
    }

    /// Sets [`Workloads::absent_image`].
    #[must_use]
    pub fn absent_image(mut self, image: impl Into<String>) -> Self {
        self.absent_image = image.into();
        self
    }

    /// Sets [`Workloads::oom`] (`None` skips the memory case).
    #[must_use]
    pub fn oom(mut self, oom: Option<Workload>) -> Self {
        self.oom = oom;
        self
    }

    /// The workload for an exit code, or an error naming the missing code.
    pub(crate) fn exit_code(&self, code: i64) -> Result<&Workload, String> {
        self.exit_codes
            .get(&code)
            .ok_or_else(|| format!("the workloads have no container that exits with {code}"))
    }
}
