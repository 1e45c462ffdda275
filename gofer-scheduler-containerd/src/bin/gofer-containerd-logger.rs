//! The logging binary of gofer's containerd backend (see
//! `gofer_scheduler_containerd::run_logger`): `gofer-containerd-logger dir <dir>`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let dir = match args.as_slice() {
        [_, key, dir] if key == "dir" => dir,
        _ => {
            eprintln!("usage: gofer-containerd-logger dir <container directory> (started by containerd's shim)");
            return ExitCode::from(2);
        }
    };
    match gofer_scheduler_containerd::run_logger(std::path::Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gofer-containerd-logger: {e}");
            ExitCode::FAILURE
        }
    }
}
