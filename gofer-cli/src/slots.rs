//! Engine instance slots: which `gofer` process owns which containers and runs.
//!
//! Every process that opens the engine holds one slot, `cli-<home id>-<n>`, for its
//! whole life: an exclusive lock on `<home>/slots/cli-<home id>-<n>.lock` (released by the OS when the
//! process ends, however it ends). The slot's name is the engine's instance id, so
//! it is in every container's labels and in every run's record: a process only
//! recovers, reaps and adopts containers and runs of slots it holds, and a slot is
//! only free when no live process holds it. A slot that is free but has unfinished
//! runs was left by a process that died; the next process to open the engine takes
//! it and finishes those runs. The home id (random, made once per data directory)
//! keeps two data directories on one container engine apart: neither ever reaps the
//! other's containers.
//!
//! Run numbers: the engine numbers runs from the run store's highest number, read
//! once in `Engine::recover`. Two processes on one store would give the same number,
//! so `<home>/start.lock` is held from before `recover` until the new run's first
//! record is durable.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::home::create_private_dir;

/// How many slots there are: at most this many `gofer` processes open the engine on
/// one data directory at once.
pub const MAX_SLOTS: usize = 64;

/// A held slot; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Slot {
    id: String,
    file: File,
}

impl Slot {
    /// The slot's name, used as the engine instance id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records in the slot file which container engine (`docker`, `podman`) the
    /// slot's containers run on, and the image of its runs' network sandbox when they
    /// have one, so whoever adopts the slot later recovers them there, the same way.
    ///
    /// # Errors
    /// [`CliError::Io`].
    pub fn record_engine(
        &mut self,
        dir: &Path,
        name: &str,
        sandbox_image: Option<&str>,
    ) -> Result<(), CliError> {
        use std::io::{Seek, Write};
        let path = dir.join(format!("{}.lock", self.id));
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .and_then(|()| writeln!(self.file, "{name}"))
            .and_then(|()| match sandbox_image {
                Some(image) => writeln!(self.file, "sandbox {image}"),
                None => Ok(()),
            })
            .and_then(|()| self.file.sync_data())
            .map_err(CliError::io(path, "record the engine"))
    }
}

/// The container engine recorded in a slot file, when any.
pub fn recorded_engine(dir: &Path, id: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(format!("{id}.lock"))).ok()?;
    let name = text.lines().next()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The network sandbox image recorded in a slot file, when any.
pub fn recorded_sandbox(dir: &Path, id: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(format!("{id}.lock"))).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("sandbox "))
        .map(|image| image.trim().to_string())
        .filter(|image| !image.is_empty())
}

fn lock_file(path: &Path) -> Result<File, CliError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(CliError::io(path, "open lock file"))
}

/// Takes the slot `id` when no process holds it.
///
/// # Errors
/// [`CliError::Io`] when the lock file cannot be opened or locked.
pub fn try_take(dir: &Path, id: &str) -> Result<Option<Slot>, CliError> {
    create_private_dir(dir)?;
    let path = dir.join(format!("{id}.lock"));
    let file = lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Slot {
            id: id.to_string(),
            file,
        })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(CliError::io(path, "lock")(e)),
    }
}

/// The slot name prefix of a data directory: `cli-<home id>-`.
pub fn prefix(home_id: &str) -> String {
    format!("cli-{home_id}-")
}

/// Takes the free slot with the lowest number (names start with `prefix`) not in `skip` (the slots with unfinished runs: those
/// are adopted with the engine and sandbox they recorded, not reused with another's).
///
/// # Errors
/// [`CliError::NoSlot`] when every slot is held, [`CliError::Io`].
pub fn take_free_skipping(
    dir: &Path,
    prefix: &str,
    skip: &std::collections::BTreeSet<String>,
) -> Result<Slot, CliError> {
    for n in 1..=MAX_SLOTS {
        let id = format!("{prefix}{n}");
        if skip.contains(&id) {
            continue;
        }
        if let Some(slot) = try_take(dir, &id)? {
            return Ok(slot);
        }
    }
    Err(CliError::NoSlot {
        dir: dir.to_path_buf(),
        slots: MAX_SLOTS,
    })
}

/// Whether `id` names a slot with this prefix (`<prefix><n>`).
pub fn is_slot_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| (1..=MAX_SLOTS).contains(&n))
}

/// The lock serializing run-number allocation across processes; released when
/// dropped.
#[derive(Debug)]
pub struct StartLock {
    _file: File,
}

impl StartLock {
    /// Waits until the lock is free and takes it (blocking: call it from
    /// `spawn_blocking`).
    ///
    /// # Errors
    /// [`CliError::Io`].
    pub fn take(home: &Path) -> Result<Self, CliError> {
        let path: PathBuf = home.join("start.lock");
        let file = lock_file(&path)?;
        file.lock().map_err(CliError::io(path, "lock"))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn take_free(dir: &Path, prefix: &str) -> Result<Slot, CliError> {
        take_free_skipping(dir, prefix, &std::collections::BTreeSet::new())
    }

    #[test]
    fn a_held_slot_is_not_handed_out_again_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let a = take_free(dir.path(), "cli-x-").unwrap();
        let b = take_free(dir.path(), "cli-x-").unwrap();
        assert_eq!((a.id(), b.id()), ("cli-x-1", "cli-x-2"));
        assert!(try_take(dir.path(), "cli-x-1").unwrap().is_none());
        let mut a = a;
        a.record_engine(dir.path(), "podman", None).unwrap();
        drop(a);
        assert_eq!(
            recorded_engine(dir.path(), "cli-x-1").as_deref(),
            Some("podman")
        );
        assert_eq!(recorded_engine(dir.path(), "cli-x-2"), None);
        assert_eq!(take_free(dir.path(), "cli-x-").unwrap().id(), "cli-x-1");
    }

    #[test]
    fn the_sandbox_image_is_recorded_beside_the_engine_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = take_free(dir.path(), "cli-x-").unwrap();
        a.record_engine(dir.path(), "docker", Some("busybox:1.36"))
            .unwrap();
        assert_eq!(
            recorded_engine(dir.path(), "cli-x-1").as_deref(),
            Some("docker")
        );
        assert_eq!(
            recorded_sandbox(dir.path(), "cli-x-1").as_deref(),
            Some("busybox:1.36")
        );
        // The next process on the slot records its own (here none).
        a.record_engine(dir.path(), "podman", None).unwrap();
        assert_eq!(recorded_sandbox(dir.path(), "cli-x-1"), None);
        assert_eq!(
            recorded_engine(dir.path(), "cli-x-1").as_deref(),
            Some("podman")
        );
    }

    #[test]
    fn slot_ids() {
        assert!(is_slot_id("cli-x-", "cli-x-1") && is_slot_id("cli-x-", "cli-x-64"));
        assert!(!is_slot_id("cli-x-", "cli-x-0") && !is_slot_id("cli-x-", "cli-x-65"));
        assert!(!is_slot_id("cli-x-", "cli-y-1") && !is_slot_id("cli-x-", "local"));
    }
}
