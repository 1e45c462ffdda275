//! The command's own logs: `-v`/`-vv`/`-vvv` (info, debug, trace for gofer's
//! targets), `GOFER_LOG` or `RUST_LOG` for a full filter, to stderr or `--log-file`,
//! always through the engine's masking writer, never on stdout (where task logs go).
//!
//! Without `-v`, `GOFER_LOG`, `RUST_LOG` or `--log-file` nothing is logged. The client
//! libraries that log request bodies (`CLIENT_BODY_TARGETS`: bollard, podman-api,
//! hyper, tonic, ...) stay at `info` unless the filter names them: their debug records
//! hold every container environment value. Those values are masked anyway (every
//! secret a run sees is in the process's [`SecretRegistry`]), but what is not printed
//! cannot leak through a value the registry never saw.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::OnceLock;

#[cfg(test)]
use gofer_engine::CLIENT_BODY_TARGETS;
use gofer_engine::{cap_client_targets, SecretRegistry};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::error::CliError;

/// The process's registry: every engine of this process registers its runs' secret
/// values in it, and every log record is masked with it.
pub(crate) fn registry() -> SecretRegistry {
    static REGISTRY: OnceLock<SecretRegistry> = OnceLock::new();
    REGISTRY.get_or_init(SecretRegistry::new).clone()
}

/// The filter for `verbose` (the count of `-v`) or `spec` (`GOFER_LOG`, else
/// `RUST_LOG`), with the body-logging targets capped at `info` where the filter does
/// not name them and would let their debug records through.
pub(crate) fn filter_spec(verbose: u8, spec: Option<&str>) -> String {
    match spec {
        Some(s) if !s.trim().is_empty() => cap_client_targets(s),
        _ => {
            let level = match verbose {
                0 | 1 => "info",
                2 => "debug",
                _ => "trace",
            };
            // Only gofer's own targets (`gofer_engine`, `gofer_cli`, ...) get louder.
            format!("warn,gofer={level}")
        }
    }
}

/// Installs the subscriber when logging is asked for (see the module docs); a
/// `log_file` is appended to (and created).
///
/// # Errors
/// [`CliError::Usage`] for a filter that does not parse or a log file that cannot be
/// opened, naming it.
pub(crate) fn init(verbose: u8, log_file: Option<&Path>) -> Result<(), CliError> {
    let env = std::env::var("GOFER_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::env::var("RUST_LOG")
                .ok()
                .filter(|s| !s.trim().is_empty())
        });
    if verbose == 0 && env.is_none() && log_file.is_none() {
        return Ok(());
    }
    let spec = filter_spec(verbose.max(u8::from(log_file.is_some())), env.as_deref());
    let filter = EnvFilter::try_new(&spec)
        .map_err(|e| CliError::Usage(format!("log filter {spec:?}: {e}")))?;
    let registry = registry();
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match log_file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| CliError::Usage(format!("log file {}: {e}", path.display())))?;
            builder
                .with_ansi(false)
                .with_writer(registry.make_writer(std::sync::Mutex::new(file)))
                .finish()
                .try_init()
        }
        None => {
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder
                .with_ansi(ansi)
                .with_writer(registry.make_writer(std::io::stderr))
                .finish()
                .try_init()
        }
    };
    // Already installed (a host calling main_with twice): keep the first.
    drop(installed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_raises_gofers_targets_only() {
        assert_eq!(filter_spec(1, None), "warn,gofer=info");
        assert_eq!(filter_spec(2, None), "warn,gofer=debug");
        assert_eq!(filter_spec(7, None), "warn,gofer=trace");
    }

    #[test]
    fn a_loud_filter_keeps_body_logging_targets_at_info_unless_named() {
        let s = filter_spec(0, Some("trace"));
        assert!(s.starts_with("trace,"), "{s}");
        for t in CLIENT_BODY_TARGETS {
            assert!(s.contains(&format!(",{t}=info")), "{t} capped: {s}");
        }
        let named = filter_spec(0, Some("debug,bollard=trace"));
        assert!(!named.contains("bollard=info"), "{named}");
        assert!(named.contains("hyper=info"), "{named}");
        // A quiet filter is left alone.
        assert_eq!(
            filter_spec(0, Some("warn,gofer_engine=debug")),
            "warn,gofer_engine=debug"
        );
    }
}
