//! Personal data in `journey_credit`: omitted by default, pseudonymized with a key from the
//! environment (checked against Python's `hmac`, an independent implementation), raw only
//! when asked for; the key never reaches the manifest, the logs or `--show-settings`.

use std::path::Path;
use std::process::Command;

use crate::common::*;

const KEY: &str = "s3cr3t-key-for-tests";

fn run(out: &Path, extra: &[&str], key: Option<&str>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_touchpoint"));
    c.args([
        "attribute",
        "--events",
        sample().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--journey-credit",
    ])
    .args(["--models", "last_touch", "--bootstrap", "0"])
    .args(extra)
    .env_remove("TOUCHPOINT_PSEUDONYM_KEY");
    if let Some(k) = key {
        c.env("TOUCHPOINT_PSEUDONYM_KEY", k);
    }
    c.output().unwrap()
}

fn user_ids(out: &Path) -> Vec<Cell> {
    let (cols, rows) = read_parquet(&out.join("journey_credit.parquet"));
    let u = cols.iter().position(|c| c == "user_id").unwrap();
    rows.into_iter().map(|r| r[u].clone()).collect()
}

#[test]
fn person_ids_are_omitted_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    assert!(run(&out, &["-q"], None).status.success());
    let ids = user_ids(&out);
    assert!(!ids.is_empty() && ids.iter().all(|c| *c == Cell::Null));
    let (_, rows) = read_parquet(&out.join("journey_credit.parquet"));
    assert_eq!(rows[0][0].str(), "j1", "journeys are numbered, not named by user");
}

#[test]
fn pseudonyms_are_hmac_sha256_under_the_key_and_the_key_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let (out, raw) = (dir.path().join("p"), dir.path().join("r"));
    let o = run(&out, &["--set", "output.person_ids=\"pseudonymized\"", "-v"], Some(KEY));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(run(&raw, &["--set", "output.person_ids=\"raw\"", "-q"], None).status.success());
    let (pseudo, plain) = (user_ids(&out), user_ids(&raw));
    assert_eq!(pseudo.len(), plain.len());
    // Python's hmac module computes the expected pseudonyms of the first rows.
    let first: Vec<&str> = plain.iter().take(20).map(|c| c.str()).collect();
    let script = format!(
        "import hmac,hashlib\nfor u in {first:?}:\n    print(hmac.new({KEY:?}.encode(), u.encode(), hashlib.sha256).hexdigest()[:32])"
    );
    let py = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let want: Vec<String> = String::from_utf8_lossy(&py.stdout).lines().map(str::to_owned).collect();
    let got: Vec<String> = pseudo.iter().take(20).map(|c| c.str().to_owned()).collect();
    assert_eq!(got, want);
    // Neither the key nor a raw id appears in the manifest, the logs or the JSON summary.
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    let logs = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    for text in [&manifest, &logs] {
        assert!(!text.contains(KEY), "the key leaked");
        assert!(!text.contains(first[0]), "a raw user id leaked");
    }
    assert!(manifest.contains("pseudonym_key_fingerprint"));
    let s = Command::new(env!("CARGO_BIN_EXE_touchpoint"))
        .args(["attribute", "--events", "x.parquet", "--out", "o", "--show-settings"])
        .env("TOUCHPOINT_PSEUDONYM_KEY", KEY)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&s.stdout).contains(KEY));
}

#[test]
fn pseudonymizing_without_a_key_is_a_configuration_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let o = run(&out, &["--set", "output.person_ids=\"pseudonymized\"", "-q"], None);
    assert_eq!(o.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&o.stderr).contains("TOUCHPOINT_PSEUDONYM_KEY"));
    assert!(!out.exists());
}

/// Rows without consent (false or null) are dropped before anything is computed: the
/// tables equal those of the same log with those rows removed by hand, and the dropped rows
/// are counted.
#[test]
fn rows_without_consent_are_dropped_and_counted() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let mut df = ParquetReader::new(std::fs::File::open(sample()).unwrap()).finish().unwrap();
    let n = df.height();
    // Every 5th row has no consent, every 11th a null one; a bad time on a no-consent row is
    // never looked at.
    let consent: Vec<Option<bool>> =
        (0..n).map(|i| if i % 11 == 3 { None } else { Some(i % 5 != 0) }).collect();
    let dropped = consent.iter().filter(|c| **c != Some(true)).count();
    df.with_column(Column::new("consent".into(), consent.clone())).unwrap();
    let with = dir.path().join("with.parquet");
    write_events(&with, &mut df);
    let mask: BooleanChunked = consent.iter().map(|c| Some(*c == Some(true))).collect();
    let mut kept = df.filter(&mask).unwrap().drop("consent").unwrap();
    let without = dir.path().join("without.parquet");
    write_events(&without, &mut kept);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let attribute = |events: &Path, out: &Path, extra: &[&str]| {
        let mut args =
            vec!["attribute", "--events", events.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"];
        args.extend_from_slice(extra);
        let o = touchpoint(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    attribute(&with, &a, &["--consent-col", "consent"]);
    attribute(&without, &b, &[]);
    for t in ["channel_attribution", "channel_roles", "path_summary", "markov_transitions"] {
        let f = format!("{t}.parquet");
        assert!(read_parquet(&a.join(&f)) == read_parquet(&b.join(&f)), "{t} differs");
    }
    let (qa, qb) = (quality(&a), quality(&b));
    assert_eq!(qa["rows_without_consent"], dropped as f64);
    assert_eq!(qa["rows_read"], n as f64);
    assert_eq!(qa["events"], qb["events"]);
}
