//! The command line: what `gofer` accepts (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Runs container pipelines from files on the local engine, with durable history.
#[derive(Debug, Parser)]
#[command(
    name = "gofer",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 done (a run that succeeded); 1 a run that failed; 130 a run \
                  cancelled (Ctrl-C, SIGTERM); 2 a command that could not do its job (bad \
                  usage or file, no engine, a store error)."
)]
pub struct Cli {
    /// The data directory (run history, secrets, logs); default: `GOFER_HOME`, else
    /// the platform's data directory (`~/.local/share/gofer` on Linux).
    // `GOFER_HOME` is read by the command, not by clap: clap shows an argument set from
    // the environment in every usage line, which makes it look required.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub home: Option<PathBuf>,

    /// The container engine; default: `GOFER_ENGINE`, else `auto`.
    #[arg(long, global = true, value_enum, help_heading = "Global options")]
    pub engine: Option<EngineChoice>,

    /// How `list` and `get` commands print.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text, help_heading = "Global options")]
    pub output: Output,

    /// Logs what gofer does to stderr: `-v` info, `-vv` debug, `-vvv` trace (gofer's
    /// own targets; `GOFER_LOG` or `RUST_LOG` set a full filter). Secret values are
    /// masked; task logs stay on stdout.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, help_heading = "Logging")]
    pub verbose: u8,

    /// Writes the logs to this file (appended) instead of stderr; at least `-v`.
    #[arg(long, global = true, value_name = "FILE", help_heading = "Logging")]
    pub log_file: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The engine asked for: `--engine`, else `GOFER_ENGINE`, else `auto`. (Read here,
    /// not by clap: clap shows an argument set from the environment in every usage
    /// line, which makes it look required.)
    ///
    /// # Errors
    /// A `GOFER_ENGINE` that names no engine, with the ones there are.
    pub fn engine_choice(&self) -> Result<EngineChoice, String> {
        if let Some(e) = self.engine {
            return Ok(e);
        }
        match std::env::var("GOFER_ENGINE") {
            Ok(v) if !v.is_empty() => EngineChoice::from_str(&v, true).map_err(|_| {
                format!("GOFER_ENGINE={v:?} names no engine (auto, docker, podman, containerd or swarm)")
            }),
            _ => Ok(EngineChoice::Auto),
        }
    }
}

/// Which container engine runs the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// Docker when reachable, else Podman, else containerd.
    Auto,
    /// The Docker engine (`DOCKER_HOST` or the default socket).
    Docker,
    /// The Podman service (`CONTAINER_HOST` or the default socket).
    Podman,
    /// containerd, through its gRPC API (`CONTAINERD_ADDRESS` or
    /// `/run/containerd/containerd.sock`; namespace `gofer`). Needs root.
    Containerd,
    /// A Docker Swarm manager (`GOFER_SWARM_HOST`, else `DOCKER_HOST` or the default
    /// socket): tasks run as swarm services on its nodes. Never chosen automatically.
    Swarm,
}

/// Output format of `list` and `get` commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned text for people.
    Text,
    /// JSON for scripts.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a pipeline file (`gofer run FILE`), or reads run history (`gofer run list|get`).
    Run(RunArgs),
    /// Checks a pipeline file and prints every problem, each naming its field.
    Validate {
        /// The pipeline file (`.toml`, `.yaml`/`.yml` or `.json`).
        file: PathBuf,
    },
    /// Task executions.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Prints a task execution's stored log, or a service's.
    Logs {
        /// The pipeline id.
        pipeline: String,
        /// The run number.
        run: u64,
        /// The task id (every attempt's log, in order), `<task>.<n>` (attempt n only),
        /// or `service.<id>` (a service's log).
        task: String,
        /// Keeps following the log until it is over (also when the run is in another
        /// `gofer run`).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Which output streams to print, and where: `split` (stdout lines to
        /// stdout, stderr lines to stderr, as `docker logs`), `both` (every line to
        /// stdout in the order the log holds them, stderr lines marked: red on a
        /// terminal, else prefixed `[stderr] `; for `> file`), `stdout` or `stderr`
        /// (only that stream's lines, to stdout). Engines read the two streams
        /// through separate pipes: lines of different streams written a moment apart
        /// may be stored in either order.
        #[arg(long, value_enum, default_value_t = Streams::Split)]
        streams: Streams,
    },
    /// Pipeline and global secrets in the encrypted secret store.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Saved task caches on the engine (`caches` in a pipeline file).
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Removes old complete runs with their logs and run objects: by `--keep` and
    /// `--older-than` (either limit removes a run), else by `[retention]` in the data
    /// directory's `config.toml` (which `gofer run` also applies after each run). A
    /// run not complete is never removed; a removed run's number is never reused.
    Prune {
        /// Keeps the newest N runs of each pipeline.
        #[arg(long, value_name = "N")]
        keep: Option<u32>,
        /// Removes runs that ended longer ago than this (`30d`, `12h`).
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<Duration>,
        /// Lists what would be removed; removes nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Checks the container engine, the stores and the data directory, each with what
    /// to do when it fails (exit 1 when one does).
    Doctor,
    /// Prints the JSON Schema of the pipeline file format.
    Schema,
    /// Prints a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Which output streams `gofer logs` prints (see its `--streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Streams {
    /// Stdout lines to stdout, stderr lines to stderr.
    Split,
    /// Every line to stdout in order, stderr lines marked.
    Both,
    /// Only the stdout lines.
    Stdout,
    /// Only the stderr lines (printed to stdout).
    Stderr,
}

/// `gofer run`: either a file to run or a history subcommand.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RunArgs {
    /// History of runs.
    #[command(subcommand)]
    pub history: Option<RunHistory>,

    /// The pipeline file to run (`.toml`, `.yaml`/`.yml` or `.json`).
    #[arg(required = true)]
    pub file: Option<PathBuf>,

    /// A run variable (source RunOptions), `KEY=VALUE`; may be repeated. The value
    /// may be a store placeholder such as `secret{{key}}`.
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,

    /// Fails the run when it runs longer than this (`90s`, `5m`, `1h 30m`).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Grace period between SIGTERM and kill when the run is cancelled (Ctrl-C) or
    /// times out.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub grace: Duration,

    /// Serves the engine's metrics in the Prometheus text format at
    /// `http://ADDR/metrics` while the run lasts (`127.0.0.1:9464`); see
    /// `gofer_engine::metrics` for the names.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// `gofer run list|get`.
#[derive(Debug, Subcommand)]
pub enum RunHistory {
    /// The runs of a pipeline, newest first.
    List {
        /// The pipeline id.
        pipeline: String,
    },
    /// One run with its task executions.
    Get {
        /// The pipeline id.
        pipeline: String,
        /// The run number.
        run: u64,
    },
}

/// `gofer task ...`.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// One task execution: state, status, reason, exit code, times, image, and every
    /// injected variable with its source (secret values masked).
    Get {
        /// The pipeline id.
        pipeline: String,
        /// The run number.
        run: u64,
        /// The task id.
        task: String,
    },
}

/// Where a secret lives.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct Scope {
    /// A secret of this pipeline (`pipeline_secret{{key}}` / `secret{{key}}`).
    #[arg(long, short = 'p', value_name = "PIPELINE")]
    pub pipeline: Option<String>,
    /// A global secret (`global_secret{{key}}`), readable by pipelines on its
    /// allow-list.
    #[arg(long, short = 'g')]
    pub global: bool,
}

/// `gofer cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Lists saved caches, newest first: of one pipeline, or of all.
    List {
        /// Only this pipeline's caches.
        pipeline: Option<String>,
    },
    /// Removes caches: those replaced by a newer one of their key, and those the
    /// limits name (least recently used first for `--max-bytes`). A cache being
    /// restored from is kept.
    Prune {
        /// Only this pipeline's caches.
        pipeline: Option<String>,
        /// Removes caches not used for longer than this (`30d`, `12h`).
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<Duration>,
        /// Removes least recently used caches until the rest hold at most this many
        /// bytes.
        #[arg(long)]
        max_bytes: Option<u64>,
    },
}

/// `gofer secret ...`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Stores a secret; the value is read from standard input, or from `--file`,
    /// never from the command line.
    Set {
        /// The key.
        key: String,
        /// The scope.
        #[command(flatten)]
        scope: Scope,
        /// Pipeline-id patterns allowed to read a global secret (`*` matches any
        /// run of characters); may be repeated. Required with `--global`.
        #[arg(long = "allow", value_name = "PATTERN")]
        allow: Vec<String>,
        /// Reads the value from this file instead of standard input.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Replaces an existing secret.
        #[arg(long)]
        force: bool,
    },
    /// Prints a secret's value. Refuses to print to a terminal unless `--reveal`.
    Get {
        /// The key.
        key: String,
        /// A pipeline secret of this pipeline; with `--global`, the pipeline on
        /// whose behalf a global secret is read (its allow-list is checked).
        #[arg(long, short = 'p', value_name = "PIPELINE")]
        pipeline: Option<String>,
        /// A global secret.
        #[arg(long, short = 'g')]
        global: bool,
        /// Prints the value even when standard output is a terminal.
        #[arg(long)]
        reveal: bool,
    },
    /// Lists the keys of a pipeline's secrets, or the global secrets with their
    /// allow-lists (never values).
    List {
        /// The scope.
        #[command(flatten)]
        scope: Scope,
    },
    /// Deletes a secret.
    Delete {
        /// The key.
        key: String,
        /// The scope.
        #[command(flatten)]
        scope: Scope,
    },
}

/// A `--timeout` or `--grace` value; a negative one is said to be negative.
fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::pipeline_file::duration(s, "`90s`, `5m`, `1h 30m`")
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The global options each command does not read, hidden from its help (they are
/// still accepted, so scripts that pass them everywhere keep working).
const UNUSED_GLOBALS: &[(&str, &[&str])] = &[
    ("schema", &["home", "engine", "output"]),
    ("completions", &["home", "engine", "output"]),
    ("validate", &["home", "engine", "output"]),
    ("task", &["engine"]),
    ("logs", &["engine", "output"]),
    ("secret", &["engine"]),
    ("prune", &["engine"]),
    ("doctor", &["output"]),
];

/// The command line definition, with each command's help showing only the global
/// options it reads (`schema`, `completions` and `validate` none; `gofer run FILE`
/// no `-o`; `logs`, `task` and `secret` no `--engine`).
///
/// How: such a command gets its own hidden copy of the option, which the global one
/// does not replace (clap propagates a global option only into commands that lack
/// it); a value given to the copy still reaches the global option.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    fn hide(cmd: clap::Command, globals: &[clap::Arg]) -> clap::Command {
        let mut cmd = globals.iter().fold(cmd, |c, a| c.arg(a.clone()));
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        for n in names {
            cmd = cmd.mut_subcommand(n, |s| hide(s, globals));
        }
        cmd
    }
    let mut cmd = Cli::command();
    let hidden = |id: &str| {
        cmd.get_arguments()
            .find(|a| a.get_id() == id)
            .map(|a| a.clone().global(false).hide(true))
    };
    let plan: Vec<(&str, Vec<clap::Arg>)> = UNUSED_GLOBALS
        .iter()
        .map(|(name, ids)| (*name, ids.iter().filter_map(|id| hidden(id)).collect()))
        .chain(std::iter::once((
            "run",
            hidden("output").into_iter().collect(),
        )))
        .collect();
    for (name, globals) in plan {
        cmd = cmd.mut_subcommand(name, |s| {
            if name == "run" {
                // Only `run FILE` itself: `run list|get` print with `-o`, so they get a
                // shown copy (the hidden one is not global).
                let mut s = globals.iter().fold(s, |c, a| c.arg(a.clone()));
                let names: Vec<String> = s
                    .get_subcommands()
                    .map(|c| c.get_name().to_string())
                    .collect();
                for n in names {
                    s = s.mut_subcommand(n, |c| {
                        globals.iter().fold(c, |c, a| c.arg(a.clone().hide(false)))
                    });
                }
                s
            } else {
                hide(s, &globals)
            }
        });
    }
    cmd
}

/// Parses the process's arguments with [`command`]; exits with the usage on an error.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn each_commands_help_shows_only_the_global_options_it_reads() {
        let mut cmd = command();
        // Built, as for parsing: the global options are in every command then.
        cmd.build();
        let help = |cmd: &mut clap::Command, path: &[&str]| {
            let mut c = cmd.clone();
            for p in path {
                c = c.find_subcommand_mut(p).unwrap().clone();
            }
            c.render_long_help().to_string()
        };
        let schema = help(&mut cmd, &["schema"]);
        assert!(
            !schema.contains("--engine") && !schema.contains("--output"),
            "{schema}"
        );
        let validate = help(&mut cmd, &["validate"]);
        assert!(
            !validate.contains("--engine") && !validate.contains("--home"),
            "{validate}"
        );
        let run = help(&mut cmd, &["run"]);
        assert!(
            run.contains("--engine") && !run.contains("--output"),
            "{run}"
        );
        let list = help(&mut cmd, &["run", "list"]);
        assert!(list.contains("--output"), "{list}");
        let secret_set = help(&mut cmd, &["secret", "set"]);
        assert!(
            !secret_set.contains("--engine") && secret_set.contains("--home"),
            "{secret_set}"
        );
        // Hidden, still accepted.
        let cli = Cli::from_arg_matches_mut(
            &mut command()
                .try_get_matches_from(["gofer", "validate", "p.toml", "--engine", "docker"])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(cli.engine, Some(EngineChoice::Docker));
        let cli = Cli::from_arg_matches_mut(
            &mut command()
                .try_get_matches_from([
                    "gofer", "secret", "list", "-p", "pipe", "--engine", "podman", "-o", "json",
                ])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(cli.engine, Some(EngineChoice::Podman));
        assert_eq!(cli.output, Output::Json);
        command().debug_assert();
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_a_file_or_a_history_command() {
        let cli = Cli::try_parse_from(["gofer", "run", "p.toml", "--var", "A=b=c"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.file.unwrap(), PathBuf::from("p.toml"));
        assert_eq!(r.vars, vec![("A".into(), "b=c".into())]);
        let cli = Cli::try_parse_from(["gofer", "run", "list", "hello"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert!(matches!(r.history, Some(RunHistory::List { .. })));
        assert!(Cli::try_parse_from(["gofer", "run"]).is_err());
        assert!(Cli::try_parse_from(["gofer", "run", "p.toml", "--var", "=x"]).is_err());
    }

    #[test]
    fn a_secret_value_is_never_an_argument() {
        assert!(
            Cli::try_parse_from(["gofer", "secret", "set", "k", "-p", "pipe", "value"]).is_err()
        );
        assert!(Cli::try_parse_from(["gofer", "secret", "set", "k"]).is_err());
        assert!(Cli::try_parse_from(["gofer", "secret", "set", "k", "-p", "pipe", "-g"]).is_err());
    }
}
