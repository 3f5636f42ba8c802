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
