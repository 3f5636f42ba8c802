//! Date partitions: `<root>/<table>/run_date=D` → `<root>/.touchpoint/dates/run_date=D/<table>`,
//! and `dates/run_date=D` → `../versions/<id>`, swapped atomically per run.

use std::path::{Path, PathBuf};

use super::store::{replace_link, swap_link, sync_dir, Store};
use super::{fault, write_described, write_manifest, Document, WrittenFile};
use crate::engine::TableSource;
use crate::error::{Error, Result};
use crate::settings::Format;

/// The directory of the manifests, beside the tables.
const MANIFESTS: &str = "_manifest";

/// A root of date partitions, locked for one publisher.
#[derive(Debug)]
pub struct DatedOutput {
    root: PathBuf,
    store: Store,
    created: bool,
}

impl DatedOutput {
    /// Check that `root` can be published to and take its lock, before any data is read.
    pub fn open(root: &Path, wait: std::time::Duration) -> Result<DatedOutput> {
        if std::fs::symlink_metadata(root).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Config(format!(
                "output root `{}` is a link (a plain touchpoint output?); date partitions need a \
                 directory of their own",
                root.display()
            )));
        }
        if root.is_file() {
            return Err(Error::Config(format!(
                "output root `{}` is an existing file; give a directory",
                root.display()
            )));
        }
        if root.join(super::manifest_last::RUNS).is_dir() {
            return Err(Error::Config(format!(
                "output root `{}` holds the Spark job's publication (`_runs/`, manifests written \
                 last); the CLI's date partitions need a root of their own",
                root.display()
            )));
        }
        let created = !root.exists();
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let store = Store::open(&root.join(".touchpoint"), wait)?;
        let dates = store.dir.join("dates");
        std::fs::create_dir_all(&dates).map_err(|e| Error::io(&dates, e))?;
        let o = DatedOutput { root: root.to_path_buf(), store, created };
        o.remove_dangling_links()?;
        o.collect_garbage()?;
        Ok(o)
    }

    fn dates(&self) -> PathBuf {
        self.store.dir.join("dates")
    }

    fn collect_garbage(&self) -> Result<()> {
        let dates = self.dates();
        let pointers: Vec<PathBuf> = std::fs::read_dir(&dates)
            .map_err(|e| Error::io(&dates, e))?
            .flatten()
            .map(|e| e.path())
            .collect();
        self.store.collect_garbage(&pointers, &[&dates])
    }

    /// The visible table directories of the root (and the manifests').
    fn table_dirs(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.root).map_err(|e| Error::io(&self.root, e))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && e.path().is_dir() {
                out.push(e.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Partition links of tables a later run of their date did not write (a kill between
    /// the swap and this cleanup leaves them; the next run removes them).
    fn remove_dangling_links(&self) -> Result<()> {
        for dir in self.table_dirs()? {
            for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?.flatten() {
                let p = e.path();
                let is_link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
                if is_link && !p.exists() {
                    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
            if std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?.next().is_none() {
                let _ = std::fs::remove_dir(&dir);
            }
        }
        Ok(())
    }

    /// Partitions of `part` written as real directories by an earlier touchpoint become the
    /// date's first version.
    fn adopt_legacy(&self, part: &str) -> Result<()> {
        let legacy: Vec<PathBuf> = self
            .table_dirs()?
            .into_iter()
            .map(|d| d.join(part))
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
            .collect();
        if legacy.is_empty() {
            return Ok(());
        }
        let (id, dir) = self.store.new_version()?;
        for p in &legacy {
            let table = p.parent().and_then(Path::file_name).map(PathBuf::from).unwrap_or_default();
            std::fs::rename(p, dir.join(&table)).map_err(|e| Error::io(p, e))?;
        }
        std::os::unix::fs::symlink(Path::new("../versions").join(id), self.dates().join(part))
            .map_err(|e| Error::io(self.dates(), e))
    }

    /// The stable link `<root>/<table>/<part>` → `../.touchpoint/dates/<part>/<table>`.
    fn ensure_link(&self, table: &str, part: &str) -> Result<()> {
        let dir = self.root.join(table);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let link = dir.join(part);
        let target = Path::new("../.touchpoint/dates").join(part).join(table);
        match std::fs::read_link(&link) {
            Ok(t) if t == target => return Ok(()),
            // A link to elsewhere (made by hand) is replaced: the partition is touchpoint's.
            Ok(_) => return replace_link(&link, &target),
            Err(_) => {}
        }
        std::os::unix::fs::symlink(target, &link).map_err(|e| Error::io(&link, e))?;
        fault::step("partition link created");
        Ok(())
    }

    /// Publish the tables of `run_date` as `<root>/<table>/run_date=<date>/part-0.<ext>` and
    /// the manifest as `<root>/_manifest/run_date=<date>/_manifest.json`, then commit.
    pub fn publish(
        &self,
        run_date: &str,
        format: Format,
        (tables, documents): (&[&dyn TableSource], &[Document]),
        manifest: impl FnOnce(&[WrittenFile]) -> serde_json::Value,
    ) -> Result<Vec<WrittenFile>> {
        let part = format!("run_date={run_date}");
        self.adopt_legacy(&part)?;
        let (id, dir) = self.store.new_version()?;
        let _pending = super::store::Pending::new(&dir, &self.dates().join(format!("run_date={run_date}")));
        let file = format!("part-0.{}", format.extension());
        let mut written = Vec::new();
        for t in tables {
            let name = format!("{}/{part}/{file}", t.name());
            written.push(write_described(*t, &dir, &format!("{}/{file}", t.name()), name, format)?);
        }
        // Documents (`report.html`) get a directory of their own stem, partitioned like a table.
        let doc_dirs: Vec<&str> = documents
            .iter()
            .map(|(n, _)| Path::new(n).file_stem().and_then(|s| s.to_str()).unwrap_or(n))
            .collect();
        for ((name, bytes), stem) in documents.iter().zip(&doc_dirs) {
            let shown = format!("{stem}/{part}/{name}");
            written.push(super::write_document(&dir.join(stem).join(name), &shown, bytes)?);
        }
        let mdir = dir.join(MANIFESTS);
        std::fs::create_dir_all(&mdir).map_err(|e| Error::io(&mdir, e))?;
        write_manifest(&mdir.join("_manifest.json"), &manifest(&written))?;
        let names: Vec<&str> = tables.iter().map(|t| t.name()).chain(doc_dirs.iter().copied()).collect();
        for sub in std::iter::once(dir.clone()).chain(names.iter().map(|n| dir.join(n))).chain([mdir]) {
            sync_dir(&sub)?;
        }
        fault::step("version complete");
        for name in names.into_iter().chain([MANIFESTS]) {
            self.ensure_link(name, &part)?;
        }
        let pointer = self.dates().join(&part);
        let previous = self.dates().join(format!("{part}.previous"));
        swap_link(
            &pointer,
            &Path::new("../versions").join(&id),
            Some((&previous, Path::new("../versions"))),
        )?;
        self.remove_dangling_links()?;
        fault::step("stale partition links removed");
        self.collect_garbage()?;
        fault::step("old versions removed");
        Ok(written)
    }
}

impl Drop for DatedOutput {
    /// A root that this run created and never committed to is removed again.
    fn drop(&mut self) {
        let empty = std::fs::read_dir(self.dates()).map(|mut d| d.next().is_none()).unwrap_or(true);
        if self.created && empty {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
