//! Atomic publication of a run's tables and manifest (`docs/scheduling.md` § Publication).
//!
//! - **Plain directory** (`attribute --out DIR`): `DIR` is a symlink to the run's version
//!   directory in `.DIR.touchpoint/versions/`, holding `<table>.<ext>`, `report.html` and
//!   `manifest.json`. A run commits by swapping the link.
//! - **Date partitions** (`run`, windowed `attribute`): `<root>/<table>/run_date=D` and
//!   `<root>/_manifest/run_date=D` are links into `<root>/.touchpoint/dates/run_date=D`,
//!   itself a link to the run's version directory; a run commits by swapping that one link,
//!   so every table of the date changes at once.
//!
//! Readers open the usual paths (DuckDB, Spark and Polars follow the links). Files are
//! byte-identical for the same input and settings; only the manifest holds timings.

mod dated;
mod fault;
pub mod manifest_last;
mod store;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use dated::DatedOutput;
use store::{swap_link, sync_dir, Pending, Store};

use crate::engine::TableSource;
use crate::error::{Error, Result};
use crate::settings::Format;

/// An output root held for one publisher: the lock the CLI's dated output takes
/// (`<root>/.touchpoint/lock`), so a Spark job publishing to a local root and a `run` of the
/// CLI to the same root exclude each other. Released when dropped, or by the kernel when
/// the process dies.
#[derive(Debug)]
pub struct RootLock(#[allow(dead_code)] File); // held open: closing it releases the lock

impl RootLock {
    /// Take the lock of `root` (creating it), waiting up to `wait`; then exit status 75.
    pub fn take(root: &Path, wait: std::time::Duration) -> Result<RootLock> {
        store::take_lock(&root.join(".touchpoint"), wait).map(RootLock)
    }
}

/// A file written by a run, as recorded in the manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WrittenFile {
    /// Table name.
    pub table: String,
    /// File name inside the output directory.
    pub file: String,
    /// Number of rows.
    pub rows: usize,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// A file published beside the tables (`report.html`): its name and bytes.
pub type Document<'a> = (&'a str, Vec<u8>);

/// Name of the manifest file of a plain output directory.
pub const MANIFEST: &str = "manifest.json";

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        n_total += n as u64;
        h.update(&buf[..n]);
    }
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, n_total))
}

/// SHA-256 of bytes, hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn write_manifest(path: &Path, doc: &serde_json::Value) -> Result<()> {
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(f);
    serde_json::to_writer_pretty(&mut w, doc).map_err(|e| Error::io(path, e.into()))?;
    w.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    let f = w.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// An opened output: checked, locked and cleaned up before any data is read.
#[derive(Debug)]
pub enum Output {
    /// A plain directory (`attribute --out`).
    Dir(DirOutput),
    /// Date partitions (scheduled and windowed runs).
    Dated(DatedOutput),
}

/// Write a document (`report.html`), synced, described for the manifest as `name`.
fn write_document(path: &Path, name: &str, bytes: &[u8]) -> Result<WrittenFile> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))?;
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| Error::io(path, e))?;
    let stem = Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or(name);
    Ok(WrittenFile {
        table: stem.to_string(),
        file: name.to_string(),
        rows: 0,
        bytes: bytes.len() as u64,
        sha256: sha256_bytes(bytes),
    })
}

fn write_described(
    t: &dyn TableSource,
    dir: &Path,
    file: &str,
    manifest_name: String,
    format: Format,
) -> Result<WrittenFile> {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let rows = t.write_to(&path, format)?;
    let (sha256, bytes) = sha256_file(&path)?;
    fault::step("table written");
    Ok(WrittenFile { table: t.name().to_string(), file: manifest_name, rows, bytes, sha256 })
}

/// A plain output directory, locked for one publisher: `out` is a symlink to the current
/// version in the store `.NAME.touchpoint/` beside it.
#[derive(Debug)]
pub struct DirOutput {
    out: PathBuf,
    store: Store,
}

/// The directory holding `out`, and `out`'s name.
fn split(out: &Path) -> Result<(PathBuf, String)> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .ok_or_else(|| Error::Config(format!("output `{}`: give the directory by name", out.display())))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((parent.to_path_buf(), name))
}

impl DirOutput {
    /// Check that `out` can be published to and take its lock, before any data is read.
    /// An existing regular file, a read-only place or a directory touchpoint did not write
    /// fail here; a directory of an earlier touchpoint layout is adopted as the previous run.
    pub fn open(out: &Path, wait: std::time::Duration) -> Result<DirOutput> {
        let (parent, name) = split(out)?;
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let legacy = match std::fs::symlink_metadata(out) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(out, e)),
            Ok(m) if m.file_type().is_symlink() => {
                // Only a link of ours is swapped: a link someone made to elsewhere is theirs.
                let target = std::fs::read_link(out).map_err(|e| Error::io(out, e))?;
                let ours = Path::new(&format!(".{name}.touchpoint")).join("versions");
                if !target.starts_with(&ours) {
                    return Err(Error::Config(format!(
                        "output `{}` is a link to {} that touchpoint did not make; give a new directory",
                        out.display(),
                        target.display()
                    )));
                }
                false
            }
            Ok(m) if m.is_dir() => classify_dir(out)?,
            Ok(_) => {
                return Err(Error::Config(format!(
                    "output `{}` is an existing file; give a directory (it is created if missing)",
                    out.display()
                )))
            }
        };
        let store = Store::open(&parent.join(format!(".{name}.touchpoint")), wait)?;
        let o = DirOutput { out: out.to_path_buf(), store };
        if legacy {
            o.adopt_legacy()?;
        } else if std::fs::symlink_metadata(out).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir(out).map_err(|e| Error::io(out, e))?; // empty
        }
        o.collect_garbage()?;
        Ok(o)
    }

    fn name(&self) -> String {
        split(&self.out).map(|s| s.1).unwrap_or_default()
    }

    fn pointers(&self) -> Vec<PathBuf> {
        vec![self.out.clone(), self.store.dir.join("previous")]
    }

    fn collect_garbage(&self) -> Result<()> {
        let parent = split(&self.out)?.0;
        self.store.collect_garbage(&self.pointers(), &[&parent, &self.store.dir])
    }

    /// An output directory written by an earlier touchpoint (real files, not a link) becomes
    /// the store's first version.
    fn adopt_legacy(&self) -> Result<()> {
        let (id, dir) = self.store.new_version()?;
        std::fs::remove_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        std::fs::rename(&self.out, &dir).map_err(|e| Error::io(&self.out, e))?;
        let target = PathBuf::from(format!(".{}.touchpoint", self.name())).join("versions").join(id);
        std::os::unix::fs::symlink(target, &self.out).map_err(|e| Error::io(&self.out, e))
    }

    /// Write the tables, documents (name, bytes) and manifest as a new version, then commit.
    /// `manifest` receives the list of written files and returns the manifest document.
    pub fn publish(
        &self,
        format: Format,
        tables: &[&dyn TableSource],
        documents: &[(&str, Vec<u8>)],
        manifest: impl FnOnce(&[WrittenFile]) -> serde_json::Value,
    ) -> Result<Vec<WrittenFile>> {
        let (id, dir) = self.store.new_version()?;
        let _pending = Pending::new(&dir, &self.out);
        let mut written = Vec::new();
        for t in tables {
            let file = format!("{}.{}", t.name(), format.extension());
            written.push(write_described(*t, &dir, &file, file.clone(), format)?);
        }
        for (name, bytes) in documents {
            written.push(write_document(&dir.join(name), name, bytes)?);
        }
        write_manifest(&dir.join(MANIFEST), &manifest(&written))?;
        sync_dir(&dir)?;
        fault::step("version complete");
        let target = PathBuf::from(format!(".{}.touchpoint", self.name())).join("versions").join(&id);
        swap_link(&self.out, &target, Some((&self.store.dir.join("previous"), Path::new("versions"))))?;
        self.collect_garbage()?;
        fault::step("old versions removed");
        Ok(written)
    }
}

impl Drop for DirOutput {
    /// A run that never committed leaves nothing behind: not even the store.
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.out).is_err() {
            let _ = std::fs::remove_dir_all(&self.store.dir);
        }
    }
}

/// Whether an existing directory may become an output: empty (false), or written by an
/// earlier touchpoint (true: adopt it). Anything else is refused.
fn classify_dir(out: &Path) -> Result<bool> {
    let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
    if entries.next().is_none() {
        return Ok(false);
    }
    let ours = std::fs::read_to_string(out.join(MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|d| d["tool"] == "touchpoint");
    if ours {
        return Ok(true);
    }
    if out.join(".touchpoint").is_dir() {
        return Err(Error::Config(format!(
            "output `{}` holds touchpoint's date partitions (runs with a run date); write runs \
             without a run date to another directory",
            out.display()
        )));
    }
    Err(Error::Config(format!(
        "output `{}` is a directory touchpoint did not write; give a new or empty directory",
        out.display()
    )))
}
