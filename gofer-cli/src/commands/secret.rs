//! `gofer secret set|get|list|delete`: the encrypted secret store.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use gofer_core::secrecy::{ExposeSecret, SecretString};

use crate::cli::{Output, Scope, SecretCommand};
use crate::commands::{print, print_json, Ctx};
use crate::error::CliError;

/// Largest secret value accepted, in bytes.
pub const MAX_VALUE_BYTES: u64 = 64 * 1024;

/// `gofer secret ...`.
///
/// # Errors
/// The secret store; [`CliError::Usage`] for a refused use.
pub async fn secret(ctx: &Ctx, cmd: SecretCommand) -> Result<ExitCode, CliError> {
    let store = ctx.home.secret_store().await?;
    match cmd {
        SecretCommand::Set {
            key,
            scope,
            allow,
            file,
            force,
        } => {
            if scope.global && allow.is_empty() {
                return Err(CliError::Usage(
                    "a global secret needs an allow-list: --allow PATTERN (`*` allows every pipeline)".into(),
                ));
            }
            if !scope.global && !allow.is_empty() {
                return Err(CliError::Usage(
                    "--allow is only for --global secrets".into(),
                ));
            }
            let value = read_value(file.as_deref())?;
            match (&scope.pipeline, scope.global) {
                (Some(p), _) => store.put_pipeline_secret(p, &key, value, force).await?,
                (None, _) => store.put_global_secret(&key, value, allow, force).await?,
            }
            eprintln!("secret {key:?} stored ({})", scope_text(&scope));
        }
        SecretCommand::Get {
            key,
            pipeline,
            global,
            reveal,
        } => {
            if std::io::stdout().is_terminal() && !reveal {
                return Err(CliError::Usage(
                    "refusing to print a secret to a terminal: pipe it elsewhere, or add --reveal"
                        .into(),
                ));
            }
            let value = match (pipeline, global) {
                (Some(p), false) => store.get_pipeline_secret(&p, &key).await?,
                (Some(p), true) => store.get_global_secret(&p, &key).await?,
                (None, true) => {
                    return Err(CliError::Usage(
                        "name the pipeline reading the global secret (--pipeline): its allow-list is checked".into(),
                    ))
                }
                (None, false) => {
                    return Err(CliError::Usage("give --pipeline PIPELINE or --global".into()))
                }
            };
            print(value.expose_secret())?;
        }
        SecretCommand::List { scope } => match &scope.pipeline {
            Some(p) => {
                let keys = store.list_pipeline_secrets(p).await?;
                match ctx.output {
                    Output::Json => print_json(&keys)?,
                    Output::Text => {
                        print(&keys.iter().map(|k| format!("{k}\n")).collect::<String>())?
                    }
                }
            }
            None => {
                let list = store.list_global_secrets().await?;
                match ctx.output {
                    Output::Json => print_json(
                        &list
                            .iter()
                            .map(|g| serde_json::json!({"key": g.key, "allow": g.allow}))
                            .collect::<Vec<_>>(),
                    )?,
                    Output::Text => print(
                        &list
                            .iter()
                            .map(|g| format!("{}  allow: {}\n", g.key, g.allow.join(", ")))
                            .collect::<String>(),
                    )?,
                }
            }
        },
        SecretCommand::Delete { key, scope } => {
            match &scope.pipeline {
                Some(p) => store.delete_pipeline_secret(p, &key).await?,
                None => store.delete_global_secret(&key).await?,
            }
            eprintln!("secret {key:?} deleted ({})", scope_text(&scope));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn scope_text(scope: &Scope) -> String {
    match &scope.pipeline {
        Some(p) => format!("pipeline {p}"),
        None => "global".into(),
    }
}

/// Reads a value from a file or standard input; one trailing line end is dropped.
fn read_value(file: Option<&std::path::Path>) -> Result<SecretString, CliError> {
    let mut bytes = Vec::new();
    match file {
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(MAX_VALUE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(CliError::io(path, "read the secret value"))?,
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!("reading the value from standard input (end with Ctrl-D; it is shown as you type)");
            }
            std::io::stdin()
                .lock()
                .take(MAX_VALUE_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(CliError::io("standard input", "read the secret value"))?
        }
    };
    if bytes.len() as u64 > MAX_VALUE_BYTES {
        return Err(CliError::Usage(format!(
            "the secret value is longer than {MAX_VALUE_BYTES} bytes"
        )));
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::Usage("the secret value is not UTF-8 text".into()))?;
    if text.is_empty() {
        return Err(CliError::Usage("the secret value is empty".into()));
    }
    Ok(SecretString::from(text))
}
