//! An online, consistent copy of the SQLite database, safe while the service runs (issue 8).
//!
//! Goal: `credits backup --to FILE` yields one self-contained database file that holds every
//! write committed before the backup began and no torn transaction, whether the server is running
//! or stopped, and that never replaces an existing file.
//!
//! Method: the source is opened read-only and copied with SQLite's online backup API in a single
//! `sqlite3_backup_step(-1)`. That step holds one read transaction for the whole copy; in WAL mode
//! a reader sees one committed snapshot and never blocks the writer, so the copy is consistent and
//! the writer keeps committing meanwhile (a stepwise copy would restart on every commit of
//! another connection and might never finish under load). The copy goes to a temporary file in
//! the target's directory, is checked with `PRAGMA quick_check`, fsynced, and then hard-linked to
//! the target name, which fails if that name exists (an atomic no-clobber rename); the temporary
//! name is removed and the directory fsynced.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// How often a busy or locked copy is retried before giving up (100 ms apart).
const BUSY_RETRIES_MAX: u32 = 100;

fn failed(what: &str, path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("backup: {what} {}: {error}", path.display()))
}

/// Removes the temporary file (and any journal SQLite left beside it) unless disarmed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let mut name = path.clone().into_os_string();
                name.push(suffix);
                let _ = std::fs::remove_file(name);
            }
        }
    }
}

/// Copies a consistent snapshot of the SQLite database at `database` into the new file `to`.
/// Refuses when `to` exists; `to` appears complete and fsynced, or not at all.
pub fn backup_sqlite(database: &Path, to: &Path) -> Result<(), StoreError> {
    if to.symlink_metadata().is_ok() {
        return Err(StoreError::Unavailable(format!(
            "backup: {} exists; refusing to overwrite it",
            to.display()
        )));
    }
    let file_name = to
        .file_name()
        .ok_or_else(|| failed("the target has no file name:", to, "choose a file"))?;
    let directory = match to.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".partial-{}", std::process::id()));
    let temp = directory.join(temp_name);

    let source = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| failed("cannot open", database, e))?;
    source.busy_timeout(Duration::from_secs(5)).map_err(|e| failed("cannot use", database, e))?;

    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(|e| failed("cannot create", &temp, e))?;
    let mut guard = TempFile(Some(temp.clone()));
    let mut copy = Connection::open_with_flags(
        &temp,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| failed("cannot open", &temp, e))?;
    {
        let backup =
            Backup::new(&source, &mut copy).map_err(|e| failed("cannot copy", database, e))?;
        let mut retries = 0;
        loop {
            match backup.step(-1).map_err(|e| failed("cannot copy", database, e))? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked
                    if retries < BUSY_RETRIES_MAX =>
                {
                    retries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return Err(failed("cannot copy", database, format!("{other:?}"))),
            }
        }
    }
    drop(source);
    let check: String = copy
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| failed("cannot check", &temp, e))?;
    if check != "ok" {
        return Err(failed("the copy is corrupt:", &temp, check));
    }
    copy.close().map_err(|(_, e)| failed("cannot close", &temp, e))?;
    File::open(&temp)
        .and_then(|file| file.sync_all())
        .map_err(|e| failed("cannot fsync", &temp, e))?;

    std::fs::hard_link(&temp, to).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => StoreError::Unavailable(format!(
            "backup: {} exists; refusing to overwrite it",
            to.display()
        )),
        _ => failed("cannot create", to, e),
    })?;
    if let Some(temp) = guard.0.take() {
        let _ = std::fs::remove_file(temp);
    }
    File::open(&directory)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| failed("cannot fsync", &directory, e))?;
    Ok(())
}
