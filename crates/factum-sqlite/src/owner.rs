//! [`OwnerLock`]: one serving process per store file.
//!
//! SQLite itself lets any number of processes open a file, and the store's group commit
//! stays correct when they do (each write transaction checks expected versions); what breaks
//! is everything a serving process assumes it alone does: the inline views an operator
//! rebuilds with the service stopped, the in-process wake-ups of projections, the writer's
//! batching. So a serving process claims the file first: an OS advisory lock (`flock`) on a
//! sidecar file `PATH.lock`, held for the life of the [`OwnerLock`]. The OS drops it when
//! the process ends, killed or not, so a crash never leaves a stale lock behind. Commands that
//! only read (or only rebuild asynchronous projections, which is safe beside a service) do
//! not take it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use fs4::fs_std::FileExt;

use crate::connection::path_from_url;
use crate::error::{Error, Result};
use crate::known::{FileState, file_state};

/// An exclusive claim on a store file, held until dropped: one serving process per file, by an
/// OS advisory lock (`flock`) on the sidecar file `PATH.lock`, which the OS drops when the
/// process ends, killed or not.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let db = dir.path().join("events.db");
/// let first = factum_sqlite::OwnerLock::acquire(&db).unwrap();
/// let second = factum_sqlite::OwnerLock::acquire(&db).unwrap_err();
/// assert!(matches!(second, factum_sqlite::Error::Locked { .. }));
/// drop(first);
/// factum_sqlite::OwnerLock::acquire(&db).unwrap();
/// ```
#[derive(Debug)]
pub struct OwnerLock {
    // Holding the open file holds the lock; closing it (on drop) releases it.
    _file: File,
    path: PathBuf,
    /// Tells the stores this process opens on the file that it is held.
    file: Arc<FileState>,
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        self.file.set_held(false);
    }
}

impl OwnerLock {
    /// Claims the store file at `db_path` (its folders are created if missing), or fails
    /// at once with [`Error::Locked`] when another process holds it.
    pub fn acquire(db_path: impl AsRef<Path>) -> Result<Self> {
        let path = lock_path(db_path.as_ref());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let io = |source| Error::LockFile {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if !file.try_lock_exclusive().map_err(io)? {
            let mut holder = String::new();
            // Best effort: the holder wrote its process id; a partial read only loses detail.
            let _ = file.read_to_string(&mut holder);
            return Err(Error::Locked {
                path,
                holder: holder.trim().parse().ok(),
            });
        }
        // Who holds it, for the message a second process prints.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        let state = file_state(db_path.as_ref());
        state.set_held(true);
        Ok(Self {
            _file: file,
            path,
            file: state,
        })
    }

    /// [`acquire`](Self::acquire) for the store a `sqlite://PATH` URL names.
    pub fn acquire_url(url: &str) -> Result<Self> {
        Self::acquire(path_from_url(url)?)
    }

    /// The lock file (`PATH.lock`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `PATH.lock` beside the database file.
fn lock_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}
