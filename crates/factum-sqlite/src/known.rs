//! Stream versions a store knows without a read: only while this process holds the file
//! (its [`OwnerLock`](crate::OwnerLock)) and this store is the only one open on it here, so
//! that every write to the file goes through this store. Then an engine can answer a read
//! of the current state from its cache without touching the database.
//!
//! What holds for a file is kept per process, by canonical path: whether its lock is held,
//! how many stores are open on it, and an epoch that moves whenever either changes. A store
//! forgets what it knew when the epoch moves (someone else may have written meanwhile), and
//! only records the versions of its own appends, never of reads (a read may be older than an
//! append that returns after it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// The most streams a store remembers; past it, it starts over (a miss costs one read).
const CAPACITY: usize = 100_000;

/// What this process knows of one database file.
#[derive(Debug, Default)]
pub(crate) struct FileState {
    held: AtomicBool,
    stores: AtomicUsize,
    epoch: AtomicU64,
}

static FILES: LazyLock<Mutex<HashMap<PathBuf, Arc<FileState>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The path by which two spellings of one file compare equal (its folder resolved; the file
/// itself may not exist yet).
fn canonical(db_path: &Path) -> PathBuf {
    let parent = db_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let folder = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    match db_path.file_name() {
        Some(name) => folder.join(name),
        None => folder,
    }
}

pub(crate) fn file_state(db_path: &Path) -> Arc<FileState> {
    FILES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(canonical(db_path))
        .or_default()
        .clone()
}

impl FileState {
    /// The owner lock of the file was taken (`true`) or released by this process.
    pub(crate) fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn exclusive(&self) -> bool {
        self.held.load(Ordering::SeqCst) && self.stores.load(Ordering::SeqCst) == 1
    }
}

type Versions = HashMap<(String, String), u64>;

/// One store's known stream versions.
pub(crate) struct KnownVersions {
    file: Arc<FileState>,
    versions: Mutex<(u64, Versions)>,
}

impl KnownVersions {
    /// For a store opening `db_path`.
    pub(crate) fn open(db_path: &Path) -> Self {
        let file = file_state(db_path);
        file.stores.fetch_add(1, Ordering::SeqCst);
        file.epoch.fetch_add(1, Ordering::SeqCst);
        Self {
            file,
            versions: Mutex::new((u64::MAX, HashMap::new())),
        }
    }

    /// The versions, emptied if the file's epoch moved since they were recorded.
    fn current(&self) -> std::sync::MutexGuard<'_, (u64, Versions)> {
        let epoch = self.file.epoch.load(Ordering::SeqCst);
        let mut guard = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0 != epoch {
            *guard = (epoch, HashMap::new());
        }
        guard
    }

    pub(crate) fn get(&self, aggregate_type: &str, aggregate_id: &str) -> Option<u64> {
        if !self.file.exclusive() {
            return None;
        }
        let key = (aggregate_type.to_owned(), aggregate_id.to_owned());
        self.current().1.get(&key).copied()
    }

    /// Records the version an append of this store reached (never moving one back: two
    /// appends of one stream may return in either order).
    pub(crate) fn record(&self, aggregate_type: &str, aggregate_id: &str, version: u64) {
        if !self.file.exclusive() {
            return;
        }
        let mut guard = self.current();
        if guard.1.len() >= CAPACITY {
            guard.1.clear();
        }
        let known = guard
            .1
            .entry((aggregate_type.to_owned(), aggregate_id.to_owned()))
            .or_insert(version);
        *known = (*known).max(version);
    }
}

impl Drop for KnownVersions {
    fn drop(&mut self) {
        self.file.stores.fetch_sub(1, Ordering::SeqCst);
        self.file.epoch.fetch_add(1, Ordering::SeqCst);
    }
}
