//! Fuzzing on stable Rust with proptest: the pipeline-file parser and the settings
//! resolution, and the aggregated path-table reader, must never panic — every input is
//! either accepted or refused with a typed error (78 / 65).
//!
//! The test command runs a bounded number of cases (256 each) plus the corpus in
//! `tests/it/fuzz_corpus/` (inputs that once mattered, kept as regression tests). A longer
//! run: `TOUCHPOINT_FUZZ_CASES=20000 cargo test --release --all-features fuzz` (about a
//! minute on two cores); proptest writes any failure it finds to `proptest-regressions/`.

use std::path::Path;

use proptest::prelude::*;
use touchpoint::settings::{parse_value, resolve, Layers};
use touchpoint::ExitStatus;

fn cases() -> u32 {
    std::env::var("TOUCHPOINT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Resolve a pipeline file's text with some environment and flags: Ok, or a settings error
/// (78) or not found (66), never a panic.
fn resolve_text(text: &str, env: &[(String, String)], sets: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(&file, text).unwrap();
    let flags = sets.iter().map(|(k, v)| (k.clone(), parse_value(v), format!("--set {k}={v}"))).collect();
    if let Err(e) = resolve(&Layers { file: Some(&file), env, flags }) {
        assert!(matches!(e.exit_status(), ExitStatus::Config | ExitStatus::NoInput), "{e}");
        assert!(!e.to_string().is_empty());
    }
}

/// Fragments of real pipeline files, shuffled and mutated by proptest.
fn toml_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("version = 1".to_owned()),
        Just("[input]".to_owned()),
        Just("[journeys]".to_owned()),
        Just("[models]".to_owned()),
        Just("[window]".to_owned()),
        Just("[guards]".to_owned()),
        Just("[output]".to_owned()),
        Just("events = \"x.parquet\"".to_owned()),
        Just("lookback_days = 30".to_owned()),
        Just("markov_order = \"auto(max=3)\"".to_owned()),
        Just("run = [\"linear\", \"markov\"]".to_owned()),
        Just("transforms = [\"trim_long_path(2)\"]".to_owned()),
        Just("run_date = \"2024-02-29\"".to_owned()),
        Just("position_weights = \"0.3,0.4,0.3\"".to_owned()),
        "[a-z_]{1,12} = [-0-9.e]{1,8}",
        "[a-z_]{1,12} = \"[ -~]{0,12}\"",
        "[ -~]{0,30}",
    ];
    prop::collection::vec(line, 0..14).prop_map(|l| l.join("\n"))
}

fn env_pair() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            "TOUCHPOINT_[A-Z_]{0,30}",
            Just("TOUCHPOINT_JOURNEYS__LOOKBACK_DAYS".to_owned()),
            Just("TOUCHPOINT_MODELS__RUN".to_owned()),
            Just("TOUCHPOINT_WINDOW__RUN_DATE".to_owned()),
        ],
        "[ -~]{0,16}",
    )
}

fn set_pair() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            "[a-z_.]{0,24}",
            Just("models.markov_order".to_owned()),
            Just("journeys.transforms".to_owned())
        ],
        "[ -~]{0,16}",
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn settings_resolution_never_panics(
        text in toml_like(),
        env in prop::collection::vec(env_pair(), 0..4),
        sets in prop::collection::vec(set_pair(), 0..3),
    ) {
        resolve_text(&text, &env, &sets);
    }

    #[test]
    fn the_path_table_reader_never_panics(
        rows in prop::collection::vec(("[ -~>]{0,20}", "[-0-9.eNaIinf]{0,8}", "[-0-9.]{0,6}"), 0..12),
        sep in prop_oneof![Just(">".to_owned()), Just(" > ".to_owned()), "[ -~]{1,3}"],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("paths.csv");
        let mut text = String::from("path,conversions,nulls\n");
        for (p, c, n) in &rows {
            text.push_str(&format!("\"{}\",{c},{n}\n", p.replace('"', "")));
        }
        std::fs::write(&file, text).unwrap();
        read_paths(&file, &sep);
    }
}

fn read_paths(file: &Path, sep: &str) {
    let cols = touchpoint::settings::PathColumns { separator: sep.to_owned(), ..Default::default() };
    match touchpoint::engine::load_paths(file, &cols) {
        Ok((rows, _)) => {
            let kept = rows.iter().map(|(p, c, n, v)| (p.as_str(), *c, *n, *v));
            let t = touchpoint::core::paths::PathTable::from_string_paths(sep, kept);
            assert!(t.rows.iter().all(|r| !r.path.is_empty()));
        }
        Err(e) => assert!(matches!(e.exit_status(), ExitStatus::DataError | ExitStatus::NoInput), "{e}"),
    }
}

#[test]
fn the_corpus_still_resolves_or_is_refused_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fuzz_corpus");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        let text = std::fs::read_to_string(&p).unwrap();
        match p.extension().and_then(|x| x.to_str()) {
            Some("toml") => resolve_text(&text, &[], &[]),
            Some("csv") => read_paths(&p, ">"),
            _ => continue,
        }
        n += 1;
    }
    assert!(n >= 4, "the corpus is in tests/it/fuzz_corpus");
}
