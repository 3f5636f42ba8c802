//! The architecture rules, checked on the source (in the spirit of rust-analyzer's tidy
//! tests): each layer imports only the layers below it, Polars only in the engine, and no
//! source file passes 800 lines. `ARCHITECTURE.md` explains the layers.

use std::path::{Path, PathBuf};

/// Layers from the top; a module may use its own layer and those after it. `error` is the
/// foundation every layer shares.
const LAYERS: [&str; 8] = ["cli", "run", "publish", "report", "engine", "core", "settings", "error"];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The layer of a source file: its folder under `src/`, or its stem for top-level files.
fn layer_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The crate-level modules a file refers to (`crate::x`).
fn crate_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `touchpoint_crate::`
        }
        let name: String = text[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let layer = layer_of(src, f);
        let lines = text.lines().count();
        if lines > 800 {
            bad.push(format!("{}: {lines} lines (at most 800)", f.display()));
        }
        if layer != "engine" && (text.contains("polars::") || text.contains("use polars")) {
            bad.push(format!("{}: uses Polars outside the engine layer", f.display()));
        }
        let Some(own) = rank(&layer) else { continue }; // lib.rs, main.rs: the roots
        for r in crate_refs(&text) {
            if let Some(other) = rank(&r) {
                if other < own {
                    bad.push(format!("{}: layer `{layer}` uses `crate::{r}`, a layer above it", f.display()));
                }
            }
        }
    }
    bad
}

#[test]
fn layers_import_only_downwards_polars_stays_in_the_engine_and_files_stay_short() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = violations(&src);
    // The Python extension is an edge like the CLI: it reaches Arrow only through the
    // library's `engine::arrow`, never Polars or polars-arrow itself.
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/src/lib.rs");
    if std::fs::read_to_string(&py).unwrap().contains("polars") {
        bad.push(format!("{}: the Python extension names Polars", py.display()));
    }
    assert!(bad.is_empty(), "architecture rules broken:\n{}", bad.join("\n"));
}

#[test]
fn the_layer_check_catches_an_upward_import_and_polars_outside_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("core")).unwrap();
    std::fs::create_dir_all(src.join("engine")).unwrap();
    std::fs::write(src.join("core/a.rs"), "use crate::report::TableName;\nuse polars::prelude::*;\n")
        .unwrap();
    std::fs::write(src.join("engine/b.rs"), "use crate::core::a;\nuse polars::prelude::*;\n").unwrap();
    std::fs::write(src.join("core/long.rs"), "//\n".repeat(801)).unwrap();
    let bad = violations(src);
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(bad.iter().any(|b| b.contains("crate::report")));
    assert!(bad.iter().any(|b| b.contains("Polars outside")));
    assert!(bad.iter().any(|b| b.contains("801 lines")));
}
