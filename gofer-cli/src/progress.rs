//! Live progress of a run: one line per task with its state and elapsed time on a
//! terminal, plain timestamped lines otherwise. Task logs go to standard output,
//! each line tagged with its task id; progress goes to standard error.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use gofer_core::{OutputStream, StatusReason, TaskState, TaskStatus};

use gofer_engine::LogLine;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress is shown.
pub enum Progress {
    /// A terminal: a live line per task.
    Tty {
        /// The bars.
        multi: MultiProgress,
        /// Task id → its bar.
        bars: HashMap<String, ProgressBar>,
    },
    /// Not a terminal: timestamped lines.
    Plain,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tty { .. } => "Progress::Tty",
            Self::Plain => "Progress::Plain",
        })
    }
}

/// `2026-01-02T03:04:05Z`.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A task state in words.
pub fn state_word(state: TaskState) -> &'static str {
    match state {
        TaskState::Processing => "processing",
        TaskState::Waiting => "waiting",
        TaskState::Running => "running",
        TaskState::Complete => "complete",
    }
}

/// A reason in words.
pub fn reason_text(reason: &StatusReason) -> String {
    match reason {
        StatusReason::AbnormalExit { code } => format!("abnormal exit, code {code}"),
        StatusReason::SchedulerError => "scheduler error".into(),
        StatusReason::FailedPrecondition => "failed precondition".into(),
        StatusReason::Cancelled => "cancelled".into(),
        StatusReason::Orphaned => "orphaned".into(),
        StatusReason::Timeout => "timeout".into(),
        _ => format!("{reason:?}"),
    }
}

fn task_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed:>6}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn done_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix:.bold} {wide_msg} {elapsed:>6}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Progress {
    /// Live bars when standard error is a terminal, else plain lines.
    pub fn new(tasks: &[String]) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Plain;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let width = tasks.iter().map(String::len).max().unwrap_or(0);
        let bars = tasks
            .iter()
            .map(|t| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(task_style());
                bar.set_prefix(format!("{t:width$}"));
                bar.set_message("processing");
                bar.enable_steady_tick(Duration::from_millis(200));
                (t.clone(), bar)
            })
            .collect();
        Self::Tty { multi, bars }
    }

    /// A line of progress (not a task's log).
    pub fn note(&self, text: &str) {
        match self {
            Self::Tty { multi, .. } => {
                let _ = multi.println(text);
            }
            Self::Plain => eprintln!("{} {text}", timestamp(SystemTime::now())),
        }
    }

    /// A task changed state.
    pub fn task(
        &self,
        task: &str,
        state: TaskState,
        status: TaskStatus,
        reason: Option<&StatusReason>,
        at: SystemTime,
    ) {
        let mut text = state_word(state).to_string();
        if state == TaskState::Complete {
            text = status.to_string();
            if let Some(r) = reason {
                text.push_str(&format!(" ({})", reason_text(r)));
            }
        }
        match self {
            Self::Tty { bars, .. } => {
                if let Some(bar) = bars.get(task) {
                    if state == TaskState::Running {
                        bar.reset_elapsed();
                    }
                    bar.set_message(text);
                    if state == TaskState::Complete {
                        bar.set_style(done_style());
                        bar.finish();
                    }
                }
            }
            Self::Plain => eprintln!("{} task {task} {text}", timestamp(at)),
        }
    }

    /// A line of a task's log, on standard output, tagged with the task id.
    pub fn log(&self, task: &str, line: &LogLine) {
        let tag = match line.stream {
            OutputStream::Stderr => "!",
            _ => "",
        };
        let text = format!("[{task}]{tag} {}", line.text());
        let print = || {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        };
        match self {
            Self::Tty { multi, .. } => multi.suspend(print),
            Self::Plain => print(),
        }
    }

    /// Stops the live display, leaving each task's last line.
    pub fn finish(self) {
        if let Self::Tty { multi, bars } = self {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.finish();
                }
            }
            drop(bars);
            drop(multi);
            // The display leaves the cursor at the end of its last line.
            eprintln!();
        }
    }
}
