//! The fake's [`Workloads`]: the conformance suite's containers as scripted behaviours.

use std::time::Duration;

use super::behaviour::Behaviour;
use super::image::ImageConfig;
use super::scheduler::FakeScheduler;
use crate::task::RegistryAuth;
use crate::testing::conformance::{
    expected_big_output, expected_burst, Workload, Workloads, INTERLEAVED_LINES,
};

/// The fake's general-purpose image: present locally, `echo`, `env` and `true` on its
/// "PATH", default command `sh` (which, without input, exits 0).
pub const FAKE_BOX: &str = "fake/box:latest";

impl FakeScheduler {
    /// A fake scripted for the whole conformance suite, with its [`Workloads`].
    ///
    /// ```
    /// let (fake, workloads) = gofer_core::fake::FakeScheduler::conformance();
    /// # let _ = (fake, workloads);
    /// ```
    pub fn conformance() -> (Self, Workloads) {
        let image = |name: &str| format!("fake/{name}:latest");
        let mut interleaved = Behaviour::new();
        for i in 1..=INTERLEAVED_LINES {
            interleaved = interleaved
                .stdout(format!("out-{i}\n"))
                .stderr(format!("err-{i}\n"));
            if i == INTERLEAVED_LINES / 2 {
                interleaved = interleaved.sleep(Duration::from_secs(1));
            }
        }
        let (burst_out, burst_err) = expected_burst();
        let burst = Behaviour::new()
            .stdout(burst_out)
            .stderr(burst_err)
            .exit_code(0);
        let ready_forever = || Behaviour::new().stdout("ready\n").then_run_until_stopped();
        let fake = FakeScheduler::new()
            .local_image(FAKE_BOX)
            .image_config(FAKE_BOX, ImageConfig::cmd(["sh"]).env("PATH", "/bin"))
            .program("echo", Behaviour::echo())
            .program("env", Behaviour::print_env())
            .program("true", Behaviour::exit(0))
            .program("sh", Behaviour::exit(0))
            .image(&image("exit-0"), Behaviour::exit(0))
            .image(&image("exit-1"), Behaviour::exit(1))
            .image(&image("exit-3"), Behaviour::exit(3))
            .image(
                &image("exit-137"),
                Behaviour::new()
                    .sleep(Duration::from_millis(10))
                    .exit_code(137),
            )
            .image(&image("interleaved"), interleaved)
            .image(&image("burst"), burst)
            .image(
                &image("big"),
                Behaviour::new().stdout(expected_big_output()).exit_code(0),
            )
            .image(
                &image("trap-term"),
                ready_forever().trap_term(
                    Behaviour::new()
                        .sleep(Duration::from_millis(100))
                        .stdout("term\n")
                        .exit_code(0),
                ),
            )
            .image(&image("ignore-term"), ready_forever().ignore_term())
            .image(&image("sleeper"), Behaviour::run_until_stopped())
            .image(
                &image("oom"),
                Behaviour::new()
                    .sleep(Duration::from_millis(50))
                    .out_of_memory(),
            )
            .local_image(&image("local-only"))
            .private_registry_image(&image("private"), "gofer", "s3cret");
        let box_ = |cmd: &[&str]| Workload::new(FAKE_BOX).command(cmd.iter().copied());
        let workloads = Workloads {
            image: FAKE_BOX.to_string(),
            print_env: box_(&["env"]),
            exit_codes: [0, 1, 3, 137]
                .into_iter()
                .map(|c| (c, Workload::new(image(&format!("exit-{c}")))))
                .collect(),
            interleaved: Workload::new(image("interleaved")),
            big_output: Workload::new(image("big")),
            burst: Workload::new(image("burst")),
            trap_term: Workload::new(image("trap-term")),
            ignore_term: Workload::new(image("ignore-term")),
            run_until_stopped: Workload::new(image("sleeper")),
            absent_image: image("absent"),
            local_only: Workload::new(image("local-only")),
            oom: Some(Workload::new(image("oom"))),
            oom_memory_bytes: 16 * 1024 * 1024,
            sandbox_image: FAKE_BOX.to_string(),
            private_image: Some((image("private"), RegistryAuth::new("gofer", "s3cret"))),
            // The fake keeps no file content: it declares volumes, and the suite
            // checks their life cycle only.
            volume_share: None,
            stop_slack: crate::testing::conformance::STOP_SLACK,
        };
        (fake, workloads)
    }
}
