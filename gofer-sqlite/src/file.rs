//! The database file before SQLite opens it: atomic private creation, and the checks
//! that tell damage from a database (size, header, page count, mode).

use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{classify, migrate, sqlite_err, OpenError, Schema};

/// The first 16 bytes of every SQLite database file.
const HEADER_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Builds the database in a private temporary file, then links it into place.
pub(super) fn create(path: &Path, schema: &Schema) -> Result<(), OpenError> {
    let io = |operation: &'static str| {
        let path = path.to_path_buf();
        move |source| OpenError::Io {
            path,
            operation,
            source,
        }
    };
    let tmp = temp_path(path);
    private_file(&tmp).map_err(io("create"))?;
    let built = (|| {
        let conn = Connection::open_with_flags(
            &tmp,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_err(path, "create"))?;
        conn.pragma_update(None, "application_id", schema.application_id)
            .map_err(sqlite_err(path, "create"))?;
        migrate(&conn, path, schema)?;
        conn.close()
            .map_err(|(_, e)| classify(path.into(), "create", e))
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // A hard link never replaces: if another process created the file meanwhile, use
    // theirs. A file system without hard links gets a rename after a check.
    let placed = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) if !path.exists() => std::fs::rename(&tmp, path),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&tmp);
    placed.map_err(io("create"))
}

/// A name beside `path` no other creation uses: process id, a counter, the time.
/// A crash between creating and linking it leaves this file behind, never a
/// half-made database at `path`.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".new-{}-{n}-{nanos}", std::process::id()));
    path.with_file_name(name)
}

fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// Checks an existing file before SQLite sees it: mode, size, header.
pub(super) fn check_file(path: &Path) -> Result<(), OpenError> {
    let io = |operation: &'static str| {
        let path = path.to_path_buf();
        move |source| OpenError::Io {
            path,
            operation,
            source,
        }
    };
    let damaged = |reason: String| OpenError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(io("stat"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "database file readable by others: setting mode 0600");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(io("chmod"))?;
        }
    }
    let len = meta.len();
    if len == 0 {
        return Err(damaged("the file is empty (zero bytes)".into()));
    }
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path).map_err(io("read"))?;
    let got = read_up_to(&mut file, &mut header).map_err(io("read"))?;
    if got < header.len() || &header[..16] != HEADER_MAGIC {
        return Err(damaged(format!(
            "no SQLite header ({len} bytes, first bytes are not \"SQLite format 3\")"
        )));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => return Err(damaged(format!("invalid page size {n} in the header"))),
    };
    if len % page_size != 0 {
        return Err(damaged(format!(
            "truncated mid-page: {len} bytes is not a multiple of the page size {page_size}"
        )));
    }
    // The header's page count is valid when its "version valid for" matches the
    // change counter; a WAL may still hold pages a checkpoint had not written.
    let counter = &header[24..28];
    let valid_for = &header[92..96];
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let wal_empty = std::fs::metadata(&wal)
        .map(|m| m.len() == 0)
        .unwrap_or(true);
    if counter == valid_for && wal_empty && len < pages.saturating_mul(page_size) {
        return Err(damaged(format!(
            "truncated: the header says {pages} pages of {page_size} bytes, the file has {len} bytes"
        )));
    }
    Ok(())
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}
