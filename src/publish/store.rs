//! Versioned run directories behind atomically swapped symlinks (`docs/scheduling.md`
//! § Publication).
//!
//! Every run writes a complete new version directory, synced to disk, and then commits by
//! one `rename(2)` of a symlink: the output path (plain `--out`), or the date's pointer
//! (date partitions). Before the rename, readers see the previous run whole; after it, the
//! new one whole; a kill at any step leaves one of the two, and the next run removes the
//! leftovers (unreferenced versions, stray links) under the output's lock. The previous
//! version of each pointer is kept until the next run, for readers that resolved it just
//! before the swap.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::fault;
use crate::error::{Error, Result};

/// The version store of one output: `versions/`, the lock, and the pointers it owns.
#[derive(Debug)]
pub struct Store {
    /// The store directory (hidden, next to or inside the output).
    pub dir: PathBuf,
    _lock: File,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Take `<dir>/lock` (creating `dir`): held while the returned file is open, released by
/// the kernel when the process dies, so a killed run never leaves a stale lock. A second
/// taker waits up to `wait`, then fails with exit status 75, which schedulers retry.
pub fn take_lock(dir: &Path, wait: std::time::Duration) -> Result<File> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock_path = dir.join("lock");
    let mut lock = File::create(&lock_path).map_err(io(&lock_path))?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match lock.try_lock() {
            // The holder may have removed the directory it created (a failed first run)
            // while this run waited: a lock on that unlinked file excludes nobody, so take
            // the file the path names now.
            Ok(()) if !names(&lock_path, &lock) => {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
                lock = File::create(&lock_path).map_err(io(&lock_path))?;
            }
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: lock_path }),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
    }
}

/// Whether `path` still names the open file `f`.
fn names(path: &Path, f: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), f.metadata()) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

impl Store {
    /// Open (creating) the store at `dir` and take its lock: one publisher per output at a
    /// time. A second run waits up to `wait`, then fails with exit status 75, which
    /// schedulers retry.
    pub fn open(dir: &Path, wait: std::time::Duration) -> Result<Store> {
        std::fs::create_dir_all(dir.join("versions")).map_err(io(dir))?;
        Ok(Store { dir: dir.to_path_buf(), _lock: take_lock(dir, wait)? })
    }

    /// A new, empty version directory (named by time and process, unique).
    pub fn new_version(&self) -> Result<(String, PathBuf)> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let id = format!("v{nanos:024}-{}", std::process::id());
        let path = self.dir.join("versions").join(&id);
        std::fs::create_dir(&path).map_err(io(&path))?;
        fault::step("version directory created");
        Ok((id, path))
    }

    /// Remove versions no pointer refers to (killed runs' partial versions, versions two
    /// runs old), and stray temporary links in `link_dirs`.
    pub fn collect_garbage(&self, pointers: &[PathBuf], link_dirs: &[&Path]) -> Result<()> {
        let referenced: Vec<String> = pointers
            .iter()
            .filter_map(|p| std::fs::read_link(p).ok())
            .filter_map(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let versions = self.dir.join("versions");
        for e in std::fs::read_dir(&versions).map_err(io(&versions))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !referenced.contains(&name) {
                tracing::debug!(version = name, "removing an unreferenced output version");
                std::fs::remove_dir_all(e.path()).map_err(io(&e.path()))?;
            }
        }
        for d in link_dirs {
            let Ok(rd) = std::fs::read_dir(d) else { continue };
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().contains(TMP_LINK) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}

/// Marks a temporary link, renamed over its pointer at commit.
const TMP_LINK: &str = ".touchpoint-tmp-link-";

/// Point `link` at `target` atomically: a new symlink under a temporary name, renamed over
/// the old one. `previous = (link, versions dir relative to it)`, when given, is pointed at
/// the old target's version first, so a reader that resolved the old one can finish.
pub fn swap_link(link: &Path, target: &Path, previous: Option<(&Path, &Path)>) -> Result<()> {
    let dir = parent_of(link);
    if let (Some((prev, versions)), Ok(old)) = (previous, std::fs::read_link(link)) {
        if let Some(id) = old.file_name() {
            replace_link(prev, &versions.join(id))?;
            fault::step("previous pointer set");
        }
    }
    replace_link(link, target)?;
    fault::step("pointer swapped");
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// `link` → `target`, replacing whatever link was there, by rename.
pub fn replace_link(link: &Path, target: &Path) -> Result<()> {
    let dir = parent_of(link);
    let name = link.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}{TMP_LINK}{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(io(&tmp))?;
    fault::step("temporary link created");
    std::fs::rename(&tmp, link).map_err(io(link))
}

/// The directory holding `path` (`.` for a bare name, whose `parent()` is empty).
pub fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Sync a directory and everything directly in it (files were synced when written).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// A version being written: removed when dropped unless the output's pointer refers to it,
/// so a run that fails after it began writing (a full disk, a bad table, a failed swap)
/// leaves no half-written version behind to hold the space until the next run. A kill
/// leaves it; the next run's garbage collection removes it.
#[derive(Debug)]
pub struct Pending {
    dir: PathBuf,
    pointer: PathBuf,
}

impl Pending {
    /// Watch the version directory `dir`, live once `pointer` links to it.
    pub fn new(dir: &Path, pointer: &Path) -> Self {
        Pending { dir: dir.to_path_buf(), pointer: pointer.to_path_buf() }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let live = std::fs::read_link(&self.pointer).ok();
        if live.as_deref().and_then(Path::file_name) != self.dir.file_name() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
