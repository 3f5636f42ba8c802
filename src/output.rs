//! Output layer: turn results into tidy tables and publish them atomically.
//!
//! Rules this module owns (SPEC §4):
//! - stable snake_case columns, one grain per table, rows in a fixed order;
//! - byte-identical files for the same input and settings (no timestamps inside tables);
//! - **publication protocol**: every file is first written to a staging directory inside
//!   `--out`; only when all are written is the old `manifest.json` removed, each table
//!   renamed into place (atomic per file on one filesystem), and the new manifest renamed in
//!   last. A reader that sees `manifest.json` sees a complete, consistent run; a failed run
//!   leaves the previous outputs untouched and no staging files behind.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::Format;
use crate::error::{Error, Result};

/// One named output table.
pub struct OutputTable {
    /// Table name, also the file stem (`channel_attribution`, …).
    pub name: &'static str,
    /// Its rows.
    pub df: DataFrame,
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

/// Name of the manifest file inside the output directory.
pub const MANIFEST: &str = "manifest.json";

fn polars_err(path: &Path) -> impl Fn(PolarsError) -> Error + '_ {
    move |e| Error::io(path, std::io::Error::other(e.to_string()))
}

/// Write one table to `path` in `format`.
pub fn write_table(df: &mut DataFrame, path: &Path, format: Format) -> Result<()> {
    let t = std::time::Instant::now();
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    match format {
        Format::Parquet => {
            ParquetWriter::new(&mut w)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(df)
                .map_err(polars_err(path))?;
        }
        Format::Csv => {
            CsvWriter::new(&mut w).include_header(true).finish(df).map_err(polars_err(path))?;
        }
    }
    let file = w.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    let written = t.elapsed().as_millis();
    file.sync_all().map_err(|e| Error::io(path, e))?;
    tracing::debug!(file = %path.display(), rows = df.height(), write_ms = written, total_ms = t.elapsed().as_millis(), "wrote table");
    Ok(())
}

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

/// Publish tables and a manifest to `out_dir` with the protocol described in the module doc.
///
/// `manifest` receives the list of written files and returns the manifest document.
pub fn publish(
    out_dir: &Path,
    format: Format,
    tables: &mut [OutputTable],
    manifest: impl FnOnce(&[WrittenFile]) -> serde_json::Value,
) -> Result<Vec<WrittenFile>> {
    publish_with_documents(out_dir, format, tables, &[], manifest)
}

/// [`publish`] with extra documents (file name, bytes), such as `report.html`, published
/// and checksummed like the tables.
pub fn publish_with_documents(
    out_dir: &Path,
    format: Format,
    tables: &mut [OutputTable],
    documents: &[(&str, Vec<u8>)],
    manifest: impl FnOnce(&[WrittenFile]) -> serde_json::Value,
) -> Result<Vec<WrittenFile>> {
    let created = !out_dir.exists();
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let result = publish_inner(out_dir, format, tables, documents, manifest);
    if result.is_err() && created {
        // We made the directory; leave nothing behind.
        let _ = std::fs::remove_dir_all(out_dir);
    }
    result
}

const STAGING_PREFIX: &str = ".touchpoint-staging-";

/// Take the output directory's lock (one publisher at a time) and remove staging
/// directories that a killed run left behind (safe: nobody else can be publishing).
fn lock_and_clean(dir: &Path) -> Result<File> {
    let lock_path = dir.join(".touchpoint.lock");
    let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
            tracing::warn!(path = %entry.path().display(), "removing the staging directory of an interrupted run");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(lock)
}

/// Fault injection for the crash tests: `TOUCHPOINT_FAULT=pause_before_commit` stops the
/// run after every file is staged and before anything is published, so a test can
/// SIGKILL it there.
fn fault_point() {
    if std::env::var("TOUCHPOINT_FAULT").as_deref() == Ok("pause_before_commit") {
        eprintln!("touchpoint: fault injection: staged, pausing before commit");
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
}

fn write_manifest(path: &Path, doc: &serde_json::Value) -> Result<()> {
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(f);
    serde_json::to_writer_pretty(&mut w, doc).map_err(|e| Error::io(path, e.into()))?;
    w.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    let f = w.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Publish tables as hive partitions `<root>/<table>/run_date=<date>/part-0.<ext>` and the
/// manifest as `<root>/_manifest/run_date=<date>/_manifest.json`, written last.
///
/// Everything is staged first; each partition directory is then swapped in by rename (the
/// old one moved into the staging directory, which is deleted), and the manifest replaced
/// atomically. A run that fails or is killed before the swap leaves every previous partition
/// and manifest untouched; a rerun of the same date replaces them with identical bytes.
pub fn publish_partitioned(
    root: &Path,
    run_date: &str,
    format: Format,
    tables: &mut [OutputTable],
    manifest: impl FnOnce(&[WrittenFile]) -> serde_json::Value,
) -> Result<Vec<WrittenFile>> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let _lock = lock_and_clean(root)?;
    let staging =
        tempfile::Builder::new().prefix(STAGING_PREFIX).tempdir_in(root).map_err(|e| Error::io(root, e))?;
    let part = format!("run_date={run_date}");
    let file = format!("part-0.{}", format.extension());
    let mut written = Vec::new();
    for t in tables.iter_mut() {
        let dir = staging.path().join(t.name).join(&part);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(&file);
        write_table(&mut t.df, &path, format)?;
        let (sha256, bytes) = sha256_file(&path)?;
        written.push(WrittenFile {
            table: t.name.to_string(),
            file: format!("{}/{part}/{file}", t.name),
            rows: t.df.height(),
            bytes,
            sha256,
        });
    }
    let staged_manifest = staging.path().join("_manifest.json");
    write_manifest(&staged_manifest, &manifest(&written))?;
    fault_point();
    let trash = staging.path().join(".replaced");
    std::fs::create_dir_all(&trash).map_err(|e| Error::io(&trash, e))?;
    for t in tables.iter() {
        let table_dir = root.join(t.name);
        std::fs::create_dir_all(&table_dir).map_err(|e| Error::io(&table_dir, e))?;
        let target = table_dir.join(&part);
        if target.exists() {
            std::fs::rename(&target, trash.join(t.name)).map_err(|e| Error::io(&target, e))?;
        }
        std::fs::rename(staging.path().join(t.name).join(&part), &target)
            .map_err(|e| Error::io(&target, e))?;
    }
    let manifest_dir = root.join("_manifest").join(&part);
    std::fs::create_dir_all(&manifest_dir).map_err(|e| Error::io(&manifest_dir, e))?;
    let final_manifest = manifest_dir.join("_manifest.json");
    std::fs::rename(&staged_manifest, &final_manifest).map_err(|e| Error::io(&final_manifest, e))?;
    Ok(written)
}

fn publish_inner(
    out_dir: &Path,
    format: Format,
    tables: &mut [OutputTable],
    documents: &[(&str, Vec<u8>)],
    manifest: impl FnOnce(&[WrittenFile]) -> serde_json::Value,
) -> Result<Vec<WrittenFile>> {
    let _lock = lock_and_clean(out_dir)?;
    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(out_dir)
        .map_err(|e| Error::io(out_dir, e))?;
    let mut written = Vec::new();
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    for t in tables.iter_mut() {
        let file = format!("{}.{}", t.name, format.extension());
        let tmp = staging.path().join(&file);
        write_table(&mut t.df, &tmp, format)?;
        let (sha256, bytes) = sha256_file(&tmp)?;
        written.push(WrittenFile {
            table: t.name.to_string(),
            file: file.clone(),
            rows: t.df.height(),
            bytes,
            sha256,
        });
        staged.push((tmp, out_dir.join(&file)));
    }
    for (name, bytes) in documents {
        let tmp = staging.path().join(name);
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        written.push(WrittenFile {
            table: name.split('.').next().unwrap_or(name).to_string(),
            file: name.to_string(),
            rows: 0,
            bytes: bytes.len() as u64,
            sha256: sha256_bytes(bytes),
        });
        staged.push((tmp, out_dir.join(name)));
    }
    let doc = manifest(&written);
    let tmp_manifest = staging.path().join(MANIFEST);
    write_manifest(&tmp_manifest, &doc)?;
    fault_point();
    // Commit: retire the old manifest, move tables in, then the new manifest last.
    let final_manifest = out_dir.join(MANIFEST);
    match std::fs::remove_file(&final_manifest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&final_manifest, e)),
    }
    for (from, to) in &staged {
        std::fs::rename(from, to).map_err(|e| Error::io(to, e))?;
    }
    std::fs::rename(&tmp_manifest, &final_manifest).map_err(|e| Error::io(&final_manifest, e))?;
    if let Ok(d) = File::open(out_dir) {
        let _ = d.sync_all();
    }
    Ok(written)
}

/// Build a DataFrame from named columns, mapping polars errors to internal errors.
pub fn frame(columns: Vec<Column>) -> Result<DataFrame> {
    DataFrame::new_infer_height(columns).map_err(|e| Error::Internal(format!("building a table: {e}")))
}
