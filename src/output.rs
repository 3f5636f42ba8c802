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
    file.sync_all().map_err(|e| Error::io(path, e))?;
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
    let created = !out_dir.exists();
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let result = publish_inner(out_dir, format, tables, manifest);
    if result.is_err() && created {
        // We made the directory; leave nothing behind.
        let _ = std::fs::remove_dir_all(out_dir);
    }
    result
}

fn publish_inner(
    out_dir: &Path,
    format: Format,
    tables: &mut [OutputTable],
    manifest: impl FnOnce(&[WrittenFile]) -> serde_json::Value,
) -> Result<Vec<WrittenFile>> {
    let staging = tempfile::Builder::new()
        .prefix(".touchpoint-staging-")
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
    let doc = manifest(&written);
    let tmp_manifest = staging.path().join(MANIFEST);
    {
        let f = File::create(&tmp_manifest).map_err(|e| Error::io(&tmp_manifest, e))?;
        let mut w = BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, &doc).map_err(|e| Error::io(&tmp_manifest, e.into()))?;
        w.write_all(b"\n").map_err(|e| Error::io(&tmp_manifest, e))?;
        let f = w.into_inner().map_err(|e| Error::io(&tmp_manifest, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&tmp_manifest, e))?;
    }
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
