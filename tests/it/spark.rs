//! Against real Apache Spark (PySpark 4 in local mode, `tests/spark/parity.py`): Spark's own
//! `pmod(xxhash64(id), n)` is touchpoint's shard function for string, `INT` and `BIGINT`
//! ids (and `--shard` splits the users as Spark does), and the Spark SQL of `docs/scale.md`
//! builds the path table touchpoint builds, so `--paths` on Spark's table gives the same
//! credits as the events themselves.
//!
//! The test set-up installs what it needs when missing: a venv with PySpark from PyPI under
//! `~/.cache/touchpoint-spark-venv`, and Debian's OpenJDK 17.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use polars::prelude::*;
use touchpoint::core::event_log::{shard_of_i32, shard_of_i64, shard_of_str};

use crate::common::*;

/// The PySpark version the tests run (Spark 4.x).
const PYSPARK: &str = "pyspark==4.0.1";

/// Python with PySpark, and a JDK: installed once per machine when missing.
fn spark_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if !Command::new("java").arg("-version").output().is_ok_and(|o| o.status.success()) {
            assert!(apt_install("openjdk-17-jre-headless"), "could not install Debian's OpenJDK 17");
        }
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let venv = Path::new(&home).join(".cache/touchpoint-spark-venv");
        let py = venv.join("bin/python");
        let has = |py: &Path| {
            Command::new(py)
                .args(["-c", &format!("import pyspark; assert pyspark.__version__ == '{}'", &PYSPARK[9..])])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !has(&py) {
            let ok =
                Command::new("python3").args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success())
                    && Command::new(&py)
                        .args(["-m", "pip", "install", "-q", PYSPARK])
                        .status()
                        .is_ok_and(|s| s.success());
            assert!(ok && has(&py), "could not install {PYSPARK} into {}", venv.display());
        }
        py
    })
}

/// The Spark SQL block of `docs/scale.md` that builds the path table, as written there.
fn documented_sql() -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scale.md")).unwrap();
    doc.split("```sql")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("WITH numbered"))
        .expect("docs/scale.md has the path-table SQL")
        .to_owned()
}

/// Ids of every kind, edge values included, with a row number.
fn write_ids(path: &Path) -> (Vec<String>, Vec<i32>, Vec<i64>) {
    let mut s: Vec<String> =
        ["ABC", "", "u0000001", "Ümlaut ☃", "with space", "a>b", "0"].map(str::to_owned).to_vec();
    let mut i: Vec<i32> = vec![1, -1, 0, i32::MIN, i32::MAX, 12345, -98765];
    let mut l: Vec<i64> = vec![1, -1, 0, i64::MIN, i64::MAX, 1 << 40, -(1 << 50)];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while s.len() < 300 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        s.push(format!("user-{:x}", x >> 20));
        i.push((x >> 32) as i32);
        l.push(x as i64);
    }
    let row: Vec<i64> = (0..s.len() as i64).collect();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("row".into(), row),
        Column::new("s".into(), s.clone()),
        Column::new("i".into(), i.clone()),
        Column::new("l".into(), l.clone()),
    ])
    .unwrap();
    write_events(path, &mut df);
    (s, i, l)
}

struct SparkRun {
    dir: tempfile::TempDir,
    ids: (Vec<String>, Vec<i32>, Vec<i64>),
    json: serde_json::Value,
}

/// One Spark session for every check of this file (a JVM start costs ~10 s).
fn spark() -> &'static SparkRun {
    static RUN: OnceLock<SparkRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let py = spark_python();
        let dir = tempfile::tempdir().unwrap();
        let ids = write_ids(&dir.path().join("ids.parquet"));
        std::fs::write(dir.path().join("counts.sql"), documented_sql()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spark/parity.py");
        let o = Command::new(py)
            .arg(script)
            .arg(dir.path().join("ids.parquet"))
            .arg(sample())
            .arg(dir.path().join("counts.sql"))
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "spark: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/spark.json")).unwrap())
            .unwrap();
        SparkRun { dir, ids, json }
    })
}

/// The one Parquet part file Spark wrote into a directory.
fn part(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .expect("a part file")
}

#[test]
fn spark_xxhash64_pmod_is_the_shard_function_for_strings_ints_and_bigints() {
    let run = spark();
    let v = &run.json["vectors"];
    assert_eq!(
        (v[0].as_i64(), v[1].as_i64(), v[2].as_i64()),
        (Some(4105715581806190027), Some(-6698625589789238999), Some(-7001672635703045582)),
        "Spark's published xxhash64 values"
    );
    let (names, rows) = read_parquet(&part(&run.dir.path().join("out/shards")));
    let (s, i, l) = &run.ids;
    let mut checked = 0;
    for r in &rows {
        let k = r[0].num() as usize;
        for (c, name) in names.iter().enumerate().skip(1) {
            let (kind, n) = name.split_once('_').unwrap();
            let n: u32 = n.parse().unwrap();
            let ours = match kind {
                "s" => shard_of_str(&s[k], n),
                "i" => shard_of_i32(i[k], n),
                _ => shard_of_i64(l[k], n),
            };
            assert_eq!(r[c].num() as u32, ours, "{name} of row {k}");
            checked += 1;
        }
    }
    assert_eq!(checked, 300 * 12);
}

#[test]
fn shard_runs_split_the_users_as_spark_does() {
    let run = spark();
    let by_spark = &run.json["users_by_shard"];
    let dir = tempfile::tempdir().unwrap();
    for k in 0..3 {
        let out = dir.path().join(format!("s{k}"));
        let shard = format!("{k}/3");
        let o = touchpoint(&[
            "attribute",
            "--events",
            sample().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--shard",
            &shard,
            "-q",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["partial"]["stats"]["users"], by_spark[k.to_string()], "shard {k}");
    }
}

/// (model, channel) → (conversions, value) of a `channel_attribution.parquet`.
fn credits(dir: &Path) -> BTreeMap<(String, String), (f64, f64)> {
    let (names, rows) = read_parquet(&dir.join("channel_attribution.parquet"));
    let at = |n: &str| names.iter().position(|x| x == n).unwrap();
    rows.iter()
        .map(|r| {
            (
                (r[at("model")].str().to_owned(), r[at("channel")].str().to_owned()),
                (r[at("conversions")].num(), r[at("value")].num()),
            )
        })
        .collect()
}

#[test]
fn the_spark_sql_of_docs_scale_builds_the_path_table_touchpoint_builds() {
    let run = spark();
    let paths = part(&run.dir.path().join("out/paths"));
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("events"), dir.path().join("paths"));
    let models =
        ["--models", "first_touch,last_touch,linear,position_based,markov,shapley", "--bootstrap", "0", "-q"];
    let events = sample();
    let mut argv = vec!["attribute", "--events", events.to_str().unwrap(), "--out", a.to_str().unwrap()];
    argv.extend(["--conversion-is-touch", "false", "--lookback-days", "30"]);
    argv.extend(models);
    let o = touchpoint(&argv);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let mut argv = vec!["attribute", "--paths", paths.to_str().unwrap(), "--out", b.to_str().unwrap()];
    argv.extend(models);
    let o = touchpoint(&argv);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let (x, y) = (credits(&a), credits(&b));
    assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
    for (k, (c, v)) in &x {
        let (c2, v2) = y[k];
        assert!((c - c2).abs() <= 1e-9 * c.abs().max(1.0), "{k:?}: {c} vs {c2}");
        assert!((v - v2).abs() <= 1e-9 * v.abs().max(1.0), "{k:?}: {v} vs {v2}");
    }
    let (q1, q2) = (quality(&a), quality(&b));
    for m in ["conversions", "conversion_value", "unattributed_conversions", "distinct_paths"] {
        assert!((q1[m] - q2[m]).abs() <= 1e-9 * q1[m].abs().max(1.0), "{m}: {} vs {}", q1[m], q2[m]);
    }
}
