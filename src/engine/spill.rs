//! An external sort of `path_summary` rows, for the bounded merge: its distinct paths (44M
//! at 1B generated events) do not fit in memory, yet the table is sorted by conversions.
//!
//! Rows arrive in path order and are numbered; every `run_rows` of them are sorted by
//! (conversions desc, nulls desc, number) and spilled to a file in a temporary directory
//! beside the output (not `/tmp`, which is often memory). Writing the table is a k-way
//! merge of the runs, a batch at a time. Memory: one run while spilling, then a buffered
//! reader per run and one batch. The number breaks ties in path order, so the rows come out
//! exactly as the in-memory `path_summary` sorts them (`core::paths::descending`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::core::paths::{descending, SummaryRow};
use crate::core::table::Table;
use crate::error::{Error, Result};
use crate::settings::Format;

/// (conversions desc, nulls desc, arrival number): unique per row.
type Key = (u64, u64, u64);

fn key(r: &SummaryRow, seq: u64) -> Key {
    (descending(r.conversions), descending(r.nulls), seq)
}

/// Rows being spilled: the current run in memory, the sorted runs on disk.
pub struct SortSpill {
    dir: tempfile::TempDir,
    runs: Vec<PathBuf>,
    run: Vec<(Key, SummaryRow)>,
    run_rows: usize,
    seq: u64,
}

impl SortSpill {
    /// A spill in a new hidden directory inside `near` (removed when the spill is dropped).
    pub fn new(near: &Path, run_rows: usize) -> Result<SortSpill> {
        std::fs::create_dir_all(near).map_err(|e| Error::io(near, e))?;
        let dir = tempfile::Builder::new()
            .prefix(".touchpoint-sort-")
            .tempdir_in(near)
            .map_err(|e| Error::io(near, e))?;
        Ok(SortSpill { dir, runs: Vec::new(), run: Vec::new(), run_rows: run_rows.max(1), seq: 0 })
    }

    /// Add the next row (rows must arrive in path order).
    pub fn push(&mut self, row: SummaryRow) -> Result<()> {
        self.run.push((key(&row, self.seq), row));
        self.seq += 1;
        if self.run.len() >= self.run_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.run.is_empty() {
            return Ok(());
        }
        self.run.sort_unstable_by_key(|r| r.0);
        let path = self.dir.path().join(format!("run-{}", self.runs.len()));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = BufWriter::new(file);
        for (k, r) in self.run.drain(..) {
            encode(&mut w, k.2, &r).map_err(|e| Error::io(&path, e))?;
        }
        w.flush().map_err(|e| Error::io(&path, e))?;
        self.runs.push(path);
        Ok(())
    }

    /// The spill, every row on disk, ready to be written (any number of times).
    pub fn finish(mut self) -> Result<SortedRuns> {
        self.flush()?;
        Ok(SortedRuns { _dir: self.dir, runs: self.runs, rows: self.seq })
    }
}

/// Sorted runs on disk, merged when written.
pub struct SortedRuns {
    _dir: tempfile::TempDir,
    runs: Vec<PathBuf>,
    rows: u64,
}

impl SortedRuns {
    /// The number of rows.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Write the merged rows to `path` in `format`, `batch` rows at a time, each batch made a
    /// table by `to_table`; synced to disk. Returns the number of rows.
    pub fn write(
        &self,
        path: &Path,
        format: Format,
        batch: usize,
        to_table: &dyn Fn(Vec<SummaryRow>) -> Table,
    ) -> Result<usize> {
        let mut readers = self.runs.iter().map(|p| RunReader::open(p)).collect::<Result<Vec<_>>>()?;
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(k) = r.advance()? {
                heap.push(Reverse((k, i)));
            }
        }
        let mut out = BatchWriter::create(path, format);
        let mut rows = Vec::with_capacity(batch.max(1));
        let mut total = 0;
        while let Some(Reverse((_, i))) = heap.pop() {
            rows.push(readers[i].head.take().expect("a head row for a key in the heap"));
            if let Some(k) = readers[i].advance()? {
                heap.push(Reverse((k, i)));
            }
            if rows.len() >= batch.max(1) {
                total += rows.len();
                out.write(&to_table(std::mem::take(&mut rows)))?;
            }
        }
        if total == 0 || !rows.is_empty() {
            total += rows.len();
            out.write(&to_table(rows))?;
        }
        out.finish()?;
        Ok(total)
    }
}

/// One run, read a row at a time.
struct RunReader {
    path: PathBuf,
    r: BufReader<File>,
    head: Option<SummaryRow>,
}

impl RunReader {
    fn open(path: &Path) -> Result<RunReader> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(RunReader { path: path.to_path_buf(), r: BufReader::with_capacity(1 << 16, f), head: None })
    }

    /// Read the next row into `head`; its key, or None at the end of the run.
    fn advance(&mut self) -> Result<Option<Key>> {
        match decode(&mut self.r).map_err(|e| Error::io(&self.path, e))? {
            Some((seq, row)) => {
                let k = key(&row, seq);
                self.head = Some(row);
                Ok(Some(k))
            }
            None => Ok(None),
        }
    }
}

/// A record: number, conversions, nulls, value, touches, path length, path bytes.
fn encode(w: &mut impl Write, seq: u64, r: &SummaryRow) -> std::io::Result<()> {
    w.write_all(&seq.to_le_bytes())?;
    for x in [r.conversions, r.nulls, r.value] {
        w.write_all(&x.to_le_bytes())?;
    }
    w.write_all(&r.touches.to_le_bytes())?;
    w.write_all(&(r.path.len() as u64).to_le_bytes())?;
    w.write_all(r.path.as_bytes())
}

fn decode(r: &mut impl Read) -> std::io::Result<Option<(u64, SummaryRow)>> {
    let mut b8 = [0u8; 8];
    match r.read_exact(&mut b8) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let seq = u64::from_le_bytes(b8);
    let mut f = [0.0; 3];
    for x in &mut f {
        r.read_exact(&mut b8)?;
        *x = f64::from_le_bytes(b8);
    }
    let mut b4 = [0u8; 4];
    r.read_exact(&mut b4)?;
    let touches = u32::from_le_bytes(b4);
    r.read_exact(&mut b8)?;
    let mut bytes = vec![0u8; u64::from_le_bytes(b8) as usize];
    r.read_exact(&mut bytes)?;
    let path = String::from_utf8(bytes).map_err(std::io::Error::other)?;
    Ok(Some((seq, SummaryRow { path, touches, conversions: f[0], nulls: f[1], value: f[2] })))
}

/// A table file written a batch at a time (Parquet with zstd, or CSV, as `write_table`).
enum BatchWriter {
    Parquet(Option<Box<polars::io::parquet::write::BatchedWriter<File>>>, PathBuf),
    Csv(Option<polars::io::csv::write::BatchedWriter<File>>, PathBuf),
}

impl BatchWriter {
    /// The file is created by the first batch, which brings the schema (`write` always
    /// writes one, if empty).
    fn create(path: &Path, format: Format) -> BatchWriter {
        match format {
            Format::Parquet => BatchWriter::Parquet(None, path.to_path_buf()),
            Format::Csv => BatchWriter::Csv(None, path.to_path_buf()),
        }
    }

    fn write(&mut self, t: &Table) -> Result<()> {
        let df = super::write::to_frame(t)?;
        // Unbuffered: both writers write whole encoded pages or chunks, and an error on the
        // last bytes must surface here, not in a buffer's drop.
        let open = |p: &Path| File::create(p).map_err(|e| Error::io(p, e));
        match self {
            BatchWriter::Parquet(w, p) => {
                if w.is_none() {
                    let pw = ParquetWriter::new(open(p)?).with_compression(ParquetCompression::Zstd(None));
                    *w = Some(Box::new(pw.batched(df.schema()).map_err(|e| io_err(p, e))?));
                }
                w.as_mut().expect("opened above").write_batch(&df).map_err(|e| io_err(p, e))
            }
            BatchWriter::Csv(w, p) => {
                if w.is_none() {
                    let cw = CsvWriter::new(open(p)?).include_header(true);
                    *w = Some(cw.batched(df.schema()).map_err(|e| io_err(p, e))?);
                }
                w.as_mut().expect("opened above").write_batch(&df).map_err(|e| io_err(p, e))
            }
        }
    }

    fn finish(self) -> Result<()> {
        let path = match self {
            BatchWriter::Parquet(Some(w), p) => {
                w.finish().map_err(|e| io_err(&p, e))?;
                p
            }
            BatchWriter::Csv(Some(mut w), p) => {
                w.finish().map_err(|e| io_err(&p, e))?;
                p
            }
            BatchWriter::Parquet(None, p) | BatchWriter::Csv(None, p) => p,
        };
        // The batched writers own their file: reopen it to sync.
        File::open(&path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&path, e))
    }
}

fn io_err(path: &Path, e: PolarsError) -> Error {
    Error::io(path, std::io::Error::other(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::table::Values;

    fn table(rows: Vec<SummaryRow>) -> Table {
        let (names, conv): (Vec<String>, Vec<f64>) =
            rows.into_iter().map(|r| (r.path, r.conversions)).unzip();
        Table::new("t", vec![("path", Values::Str(names)), ("conversions", Values::F64(conv))])
    }

    fn read(path: &Path, format: Format) -> DataFrame {
        match format {
            Format::Parquet => ParquetReader::new(File::open(path).unwrap()).finish().unwrap(),
            Format::Csv => CsvReadOptions::default()
                .try_into_reader_with_file_path(Some(path.into()))
                .unwrap()
                .finish()
                .unwrap(),
        }
    }

    fn row(i: usize) -> SummaryRow {
        // Counts with many ties, so the arrival number decides often.
        let conversions = [0.0, 2.0, 1.0, 2.0, 0.5][i % 5];
        let nulls = (i % 3) as f64;
        SummaryRow { path: format!("p{i:03}"), touches: 1, conversions, nulls, value: 0.0 }
    }

    /// Runs of 3 rows, batches of 4: the merged output is the in-memory sort, in both formats.
    #[test]
    fn the_merged_runs_are_the_in_memory_sort() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = SortSpill::new(dir.path(), 3).unwrap();
        (0..40).for_each(|i| spill.push(row(i)).unwrap());
        let runs = spill.finish().unwrap();
        assert_eq!(runs.runs.len(), 14);
        let mut want: Vec<(Key, String)> = (0..40).map(|i| (key(&row(i), i as u64), row(i).path)).collect();
        want.sort();
        let want: Vec<String> = want.into_iter().map(|w| w.1).collect();
        for format in [Format::Parquet, Format::Csv] {
            let out = dir.path().join(format!("out.{}", format.extension()));
            assert_eq!(runs.write(&out, format, 4, &table).unwrap(), 40);
            let df = read(&out, format);
            let got: Vec<String> =
                df.column("path").unwrap().str().unwrap().iter().map(|s| s.unwrap().to_owned()).collect();
            assert_eq!(got, want, "{format:?}");
        }
    }

    /// No rows: a table with its columns and none of rows; the spill directory goes with it.
    #[test]
    fn no_rows_write_an_empty_table_and_the_spill_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let runs = SortSpill::new(dir.path(), 3).unwrap().finish().unwrap();
        let out = dir.path().join("out.parquet");
        assert_eq!(runs.write(&out, Format::Parquet, 4, &table).unwrap(), 0);
        let df = read(&out, Format::Parquet);
        assert_eq!((df.height(), df.width()), (0, 2));
        drop(runs);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("out.parquet")]);
    }
}
