//! The robustness matrix: every case runs the binary against a previously published
//! output and checks the documented exit status, the JSON error line, that the message
//! names what is wrong, and that a failed run left the previous output byte for byte.
//! `docs/robustness.md` is rendered from [`CASES`] and checked against it
//! (`TOUCHPOINT_UPDATE_DOCS=1 cargo test --release --all-features robustness` rewrites it).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use polars::prelude::*;

/// One case of the matrix.
struct Case {
    area: &'static str,
    case: &'static str,
    behaviour: &'static str,
    exit: i32,
    /// Text the message must contain (the file, the column or the problem).
    needle: &'static str,
    run: fn(&Path, &Path) -> Output,
}

/// A log of two users: u1 touches a then b and converts; u2 touches c.
fn base() -> Vec<Column> {
    vec![
        Column::new("user_id".into(), ["u1", "u1", "u1", "u2"]),
        ts(&[0, 1, 2, 0]),
        Column::new("channel".into(), ["a", "b", "b", "c"]),
        Column::new("event".into(), ["touch", "touch", "conversion", "touch"]),
        Column::new("revenue".into(), [0.0, 0.0, 10.0, 0.0]),
    ]
}

fn with(mut cols: Vec<Column>, c: Column) -> Vec<Column> {
    let name = c.name().clone();
    match cols.iter().position(|x| *x.name() == name) {
        Some(i) => cols[i] = c,
        None => cols.push(c),
    }
    cols
}

fn without(cols: Vec<Column>, name: &str) -> Vec<Column> {
    cols.into_iter().filter(|c| c.name().as_str() != name).collect()
}

fn write(dir: &Path, name: &str, cols: Vec<Column>) -> PathBuf {
    let path = dir.join(name);
    let mut df = DataFrame::new_infer_height(cols).unwrap();
    write_events(&path, &mut df);
    path
}

thread_local! {
    /// With an erasure list here, `attribute` stages its input (an erasure list naming
    /// nobody), so a case runs through the staged path; and how many runs it staged.
    static STAGED: std::cell::RefCell<(Option<String>, usize)> = const { std::cell::RefCell::new((None, 0)) };
}

fn attribute(events: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["attribute", "--events", events.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let erase = STAGED.with_borrow_mut(|(erase, runs)| {
        *runs += usize::from(erase.is_some());
        erase.clone()
    });
    match erase {
        Some(e) => touchpoint(&[&args[..], &["--set", &e]].concat()),
        None => touchpoint(&args),
    }
}

/// Run the binary as the unprivileged user `nobody` (CI runs as root, for whom no file is
/// unreadable): the binary is copied where that user can run it.
fn as_nobody(dir: &Path, args: &[&str]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("touchpoint");
    std::fs::copy(env!("CARGO_BIN_EXE_touchpoint"), &exe).unwrap();
    for p in [dir, &bin, &exe] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(args)
        .output()
        .expect("setpriv (util-linux) runs the binary as nobody")
}

/// A valid Parquet file whose schema names `channel` twice (written with arrow-rs'
/// low-level writer: data frame libraries refuse to make one).
fn duplicate_columns(dir: &Path) -> PathBuf {
    use parquet::data_type::ByteArray;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;
    let schema =
        "message schema { REQUIRED BYTE_ARRAY user_id (UTF8); REQUIRED INT64 ts (TIMESTAMP(MICROS,true)); \
                  REQUIRED BYTE_ARRAY channel (UTF8); REQUIRED BYTE_ARRAY channel (UTF8); \
                  REQUIRED BYTE_ARRAY event (UTF8); REQUIRED DOUBLE revenue; }";
    let path = dir.join("dup.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let mut w =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut i = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        use parquet::file::writer::SerializedColumnWriter;
        let c: &mut SerializedColumnWriter = &mut col;
        match i {
            1 => {
                c.typed::<parquet::data_type::Int64Type>().write_batch(&[T0, T0 + DAY], None, None).unwrap();
            }
            5 => {
                c.typed::<parquet::data_type::DoubleType>().write_batch(&[0.0, 1.0], None, None).unwrap();
            }
            _ => {
                let v = if i == 4 { ["touch", "conversion"] } else { ["u1", "u1"] };
                let v: Vec<ByteArray> = v.iter().map(|s| ByteArray::from(*s)).collect();
                c.typed::<parquet::data_type::ByteArrayType>().write_batch(&v, None, None).unwrap();
            }
        }
        col.close().unwrap();
        i += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
    path
}

fn quality_of(out: &Path) -> std::collections::BTreeMap<String, f64> {
    quality(out)
}

fn ok_conversions(out: &Path) -> f64 {
    quality_of(out)["conversions"]
}

const CASES: &[Case] = &[
    Case {
        area: "schema",
        case: "missing column",
        behaviour: "names the column and the columns the file has",
        exit: 65,
        needle: "`channel`",
        run: |d, o| attribute(&write(d, "e.parquet", without(base(), "channel")), o, &[]),
    },
    Case {
        area: "schema",
        case: "wrong type (float user id)",
        behaviour: "names the column, its type and the types accepted",
        exit: 65,
        needle: "`user_id`",
        run: |d, o| {
            attribute(
                &write(d, "e.parquet", with(base(), Column::new("user_id".into(), [1.5, 1.5, 1.5, 2.5]))),
                o,
                &[],
            )
        },
    },
    Case {
        area: "schema",
        case: "wrong type (integer time)",
        behaviour: "names the column and the types accepted",
        exit: 65,
        needle: "`ts`",
        run: |d, o| {
            attribute(&write(d, "e.parquet", with(base(), Column::new("ts".into(), [1i64, 2, 3, 4]))), o, &[])
        },
    },
    Case {
        area: "schema",
        case: "wrong type (integer channel)",
        behaviour: "names the column and the types accepted",
        exit: 65,
        needle: "`channel`",
        run: |d, o| {
            attribute(
                &write(d, "e.parquet", with(base(), Column::new("channel".into(), [1i64, 2, 2, 3]))),
                o,
                &[],
            )
        },
    },
    Case {
        area: "schema",
        case: "wrong type (float conversion marker)",
        behaviour: "names the column and the types accepted",
        exit: 65,
        needle: "`event`",
        run: |d, o| {
            attribute(
                &write(d, "e.parquet", with(base(), Column::new("event".into(), [0.0, 0.0, 1.0, 0.0]))),
                o,
                &[],
            )
        },
    },
    Case {
        area: "schema",
        case: "wrong type (string value)",
        behaviour: "names the column and the types accepted",
        exit: 65,
        needle: "`revenue`",
        run: |d, o| {
            attribute(
                &write(d, "e.parquet", with(base(), Column::new("revenue".into(), ["0", "0", "10", "0"]))),
                o,
                &[],
            )
        },
    },
    Case {
        area: "schema",
        case: "duplicate column names",
        behaviour: "says so (not 'corrupt')",
        exit: 65,
        needle: "duplicate column names",
        run: |d, o| attribute(&duplicate_columns(d), o, &[]),
    },
    Case {
        area: "schema",
        case: "unparseable time strings",
        behaviour: "names the column and the values, no advice about foreign options",
        exit: 65,
        needle: "not ISO-8601",
        run: |d, o| {
            attribute(
                &write(
                    d,
                    "e.parquet",
                    with(
                        base(),
                        Column::new("ts".into(), ["2024-01-01", "2024-01-02", "soon", "2024-01-01"]),
                    ),
                ),
                o,
                &[],
            )
        },
    },
    Case {
        area: "schema",
        case: "string ids in one file, integer ids in another",
        behaviour: "names both files",
        exit: 65,
        needle: "b.parquet",
        run: |d, o| {
            let dir = d.join("logs");
            std::fs::create_dir_all(&dir).unwrap();
            write(&dir, "a.parquet", base());
            write(&dir, "b.parquet", with(base(), Column::new("user_id".into(), [1i64, 1, 1, 2])));
            attribute(&dir, o, &[])
        },
    },
    Case {
        area: "schema",
        case: "mixed integer widths across files",
        behaviour: "valid: ids are compared as 64-bit integers",
        exit: 0,
        needle: "",
        run: |d, o| {
            let dir = d.join("logs");
            std::fs::create_dir_all(&dir).unwrap();
            write(&dir, "a.parquet", with(base(), Column::new("user_id".into(), [1i32, 1, 1, 2])));
            write(&dir, "b.parquet", with(base(), Column::new("user_id".into(), [3i64, 3, 3, 4])));
            let r = attribute(&dir, o, &[]);
            assert_eq!(quality_of(o)["users"], 4.0);
            r
        },
    },
    Case {
        area: "schema",
        case: "time zones differ across files",
        behaviour: "valid: times are converted to UTC instants",
        exit: 0,
        needle: "",
        run: |d, o| {
            let dir = d.join("logs");
            std::fs::create_dir_all(&dir).unwrap();
            let zoned = |tz: &str| -> Column {
                Series::new("ts".into(), [T0, T0 + DAY, T0 + 2 * DAY, T0])
                    .cast(&DataType::Datetime(
                        TimeUnit::Microseconds,
                        TimeZone::opt_try_new(Some(if tz == "utc" { "UTC" } else { "America/New_York" }))
                            .unwrap(),
                    ))
                    .unwrap()
                    .into()
            };
            write(&dir, "a.parquet", with(base(), zoned("utc")));
            write(
                &dir,
                "b.parquet",
                with(with(base(), zoned("ny")), Column::new("user_id".into(), ["v1", "v1", "v1", "v2"])),
            );
            let r = attribute(&dir, o, &[]);
            assert_eq!(ok_conversions(o), 2.0);
            r
        },
    },
    Case {
        area: "schema",
        case: "a column of Arrow type null (pandas' all-None revenue) in one file, float in another",
        behaviour: "valid: read as nulls (a null value is 0)",
        exit: 0,
        needle: "",
        run: |d, o| {
            let dir = d.join("logs");
            std::fs::create_dir_all(&dir).unwrap();
            write(&dir, "a.parquet", base());
            let users = Column::new("user_id".into(), ["v1", "v1", "v1", "v2"]);
            let revenue = Column::full_null("revenue".into(), 4, &DataType::Null);
            write(&dir, "b.parquet", with(with(base(), users), revenue));
            let r = attribute(&dir, o, &[]);
            assert_eq!((ok_conversions(o), quality_of(o)["conversion_value"]), (2.0, 10.0));
            r
        },
    },
    Case {
        area: "schema",
        case: "a user id of Arrow type null",
        behaviour: "names the file and the column: a user id may not be null",
        exit: 65,
        needle: "`user_id`: has type null",
        run: |d, o| {
            let users = Column::full_null("user_id".into(), 4, &DataType::Null);
            attribute(&write(d, "e.parquet", with(base(), users)), o, &[])
        },
    },
    Case {
        area: "values",
        case: "null user id",
        behaviour: "fails by default, naming the row (counted from 0)",
        exit: 65,
        needle: "row 1",
        run: |d, o| {
            attribute(
                &write(
                    d,
                    "e.parquet",
                    with(base(), Column::new("user_id".into(), [Some("u1"), None, Some("u1"), Some("u2")])),
                ),
                o,
                &[],
            )
        },
    },
    Case {
        area: "values",
        case: "null user id with on_invalid_rows = drop",
        behaviour: "valid: dropped and counted in data_quality",
        exit: 0,
        needle: "",
        run: |d, o| {
            let r = attribute(
                &write(
                    d,
                    "e.parquet",
                    with(base(), Column::new("user_id".into(), [Some("u1"), None, Some("u1"), Some("u2")])),
                ),
                o,
                &["--on-invalid-rows", "drop"],
            );
            assert_eq!(quality_of(o)["rows_rejected_null_user_id"], 1.0);
            r
        },
    },
    Case {
        area: "values",
        case: "null time",
        behaviour: "fails by default, naming the column",
        exit: 65,
        needle: "`ts`",
        run: |d, o| {
            let t: Column = Series::new("ts".into(), [Some(T0), None, Some(T0 + 2 * DAY), Some(T0)])
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                .unwrap()
                .into();
            attribute(&write(d, "e.parquet", with(base(), t)), o, &[])
        },
    },
    Case {
        area: "values",
        case: "null conversion marker",
        behaviour: "fails by default, naming the column",
        exit: 65,
        needle: "`event`",
        run: |d, o| {
            attribute(
                &write(
                    d,
                    "e.parquet",
                    with(
                        base(),
                        Column::new("event".into(), [Some("touch"), None, Some("conversion"), Some("touch")]),
                    ),
                ),
                o,
                &[],
            )
        },
    },
    Case {
        area: "values",
        case: "NaN value",
        behaviour: "names the column and the row",
        exit: 65,
        needle: "row 2",
        run: |d, o| {
            attribute(
                &write(
                    d,
                    "e.parquet",
                    with(base(), Column::new("revenue".into(), [0.0, 0.0, f64::NAN, 0.0])),
                ),
                o,
                &[],
            )
        },
    },
    Case {
        area: "values",
        case: "infinite value",
        behaviour: "names the column and the row",
        exit: 65,
        needle: "row 2",
        run: |d, o| {
            attribute(
                &write(
                    d,
                    "e.parquet",
                    with(base(), Column::new("revenue".into(), [0.0, 0.0, f64::INFINITY, 0.0])),
                ),
                o,
                &[],
            )
        },
    },
    Case {
        area: "values",
        case: "negative value",
        behaviour: "names the column and the row",
        exit: 65,
        needle: "row 2",
        run: |d, o| {
            attribute(
                &write(d, "e.parquet", with(base(), Column::new("revenue".into(), [0.0, 0.0, -1.0, 0.0]))),
                o,
                &[],
            )
        },
    },
    Case {
        area: "values",
        case: "values whose sum overflows",
        behaviour: "refused: the total would be infinite",
        exit: 65,
        needle: "`revenue`",
        run: |d, o| {
            let cols = vec![
                Column::new("user_id".into(), ["u1", "u1", "u2", "u2"]),
                ts(&[0, 1, 0, 1]),
                Column::new("channel".into(), ["a", "a", "b", "b"]),
                Column::new("event".into(), ["touch", "conversion", "touch", "conversion"]),
                Column::new("revenue".into(), [0.0, f64::MAX, 0.0, f64::MAX]),
            ];
            attribute(&write(d, "e.parquet", cols), o, &[])
        },
    },
    Case {
        area: "values",
        case: "a conversion without a channel",
        behaviour: "valid: a conversion, not a touch",
        exit: 0,
        needle: "",
        run: |d, o| {
            let r = attribute(
                &write(
                    d,
                    "e.parquet",
                    with(base(), Column::new("channel".into(), [Some("a"), Some("b"), None, Some("c")])),
                ),
                o,
                &[],
            );
            assert_eq!(quality_of(o)["touches"], 3.0);
            r
        },
    },
    Case {
        area: "values",
        case: "dates before 1970 and after 2100",
        behaviour: "valid",
        exit: 0,
        needle: "",
        run: |d, o| {
            let t: Column = Series::new(
                "ts".into(),
                [-40 * 365 * DAY, -40 * 365 * DAY + DAY, 130 * 365 * DAY, 130 * 365 * DAY],
            )
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .unwrap()
            .into();
            let r = attribute(
                &write(
                    d,
                    "e.parquet",
                    with(with(base(), t), Column::new("user_id".into(), ["u1", "u1", "u2", "u2"])),
                ),
                o,
                &[],
            );
            assert_eq!(ok_conversions(o), 1.0);
            r
        },
    },
    Case {
        area: "files",
        case: "truncated Parquet",
        behaviour: "names the file",
        exit: 65,
        needle: "e.parquet",
        run: |d, o| {
            let p = write(d, "e.parquet", base());
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            attribute(&p, o, &[])
        },
    },
    Case {
        area: "files",
        case: "not Parquet, named .parquet",
        behaviour: "names the file",
        exit: 65,
        needle: "e.parquet",
        run: |d, o| {
            let p = d.join("e.parquet");
            std::fs::write(&p, "user_id,ts\nu1,2024-01-01\n").unwrap();
            attribute(&p, o, &[])
        },
    },
    Case {
        area: "files",
        case: "empty file (0 bytes)",
        behaviour: "names the file",
        exit: 65,
        needle: "0 bytes",
        run: |d, o| {
            let p = d.join("e.parquet");
            std::fs::write(&p, "").unwrap();
            attribute(&p, o, &[])
        },
    },
    Case {
        area: "files",
        case: "zero rows",
        behaviour: "says the input has no rows",
        exit: 65,
        needle: "no rows",
        run: |d, o| {
            let cols: Vec<Column> = base().into_iter().map(|c| c.slice(0, 0)).collect();
            attribute(&write(d, "e.parquet", cols), o, &[])
        },
    },
    Case {
        area: "files",
        case: "directory without Parquet files",
        behaviour: "not found: retry when the data has landed",
        exit: 66,
        needle: "no .parquet files",
        run: |d, o| {
            let dir = d.join("empty");
            std::fs::create_dir_all(&dir).unwrap();
            attribute(&dir, o, &[])
        },
    },
    Case {
        area: "files",
        case: "files whose schemas disagree",
        behaviour: "names the file and the missing column",
        exit: 65,
        needle: "`revenue`",
        run: |d, o| {
            let dir = d.join("logs");
            std::fs::create_dir_all(&dir).unwrap();
            write(&dir, "a.parquet", base());
            write(&dir, "b.parquet", without(base(), "revenue"));
            attribute(&dir, o, &[])
        },
    },
    Case {
        area: "files",
        case: "missing path",
        behaviour: "not found",
        exit: 66,
        needle: "no such file",
        run: |d, o| attribute(&d.join("nope.parquet"), o, &[]),
    },
    Case {
        area: "files",
        case: "path too long to look up",
        behaviour: "I/O error, not 'retry later'",
        exit: 74,
        needle: "I/O error",
        run: |d, o| attribute(&d.join("x".repeat(300)), o, &[]),
    },
    Case {
        area: "files",
        case: "an unreadable file (as a user without permission)",
        behaviour: "I/O error naming the file",
        exit: 74,
        needle: "e.parquet",
        run: |d, _| {
            use std::os::unix::fs::PermissionsExt;
            let p = write(d, "e.parquet", base());
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
            let w = d.join("w");
            std::fs::create_dir_all(&w).unwrap();
            std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o777)).unwrap();
            let out = w.join("out");
            as_nobody(d, &["attribute", "--events", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
        },
    },
    Case {
        area: "files",
        case: "an output that cannot be written",
        behaviour: "I/O error before any data is read",
        exit: 74,
        needle: "ro/.out.touchpoint",
        run: |d, _| {
            let p = write(d, "e.parquet", base());
            let ro = d.join("ro");
            std::fs::create_dir_all(&ro).unwrap();
            let out = ro.join("out");
            as_nobody(d, &["attribute", "--events", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
        },
    },
    Case {
        area: "files",
        case: "output is an existing file",
        behaviour: "refused before any data is read",
        exit: 78,
        needle: "existing file",
        run: |d, _| {
            let f = d.join("taken");
            std::fs::write(&f, "x").unwrap();
            attribute(&write(d, "e.parquet", base()), &f, &[])
        },
    },
    Case {
        area: "shapes",
        case: "one user with 1,000,000 touches",
        behaviour: "valid: every model linear or n log n in the path length",
        exit: 0,
        needle: "",
        run: |d, o| {
            let n = 1_000_000usize;
            let cols = vec![
                Column::new("user_id".into(), vec!["bot"; n]),
                ts(&(0..n as i64).map(|i| i / 100_000).collect::<Vec<_>>()),
                Column::new("channel".into(), (0..n).map(|i| ["a", "b", "c"][i % 3]).collect::<Vec<_>>()),
                Column::new(
                    "event".into(),
                    (0..n).map(|i| if i + 1 == n { "conversion" } else { "touch" }).collect::<Vec<_>>(),
                ),
                Column::new(
                    "revenue".into(),
                    (0..n).map(|i| if i + 1 == n { 5.0 } else { 0.0 }).collect::<Vec<_>>(),
                ),
            ];
            let r = attribute(&write(d, "e.parquet", cols), o, &[]);
            assert_eq!(quality_of(o)["path_length_max"], n as f64);
            r
        },
    },
    Case {
        area: "shapes",
        case: "a single channel",
        behaviour: "valid: all credit to it",
        exit: 0,
        needle: "",
        run: |d, o| {
            let r = attribute(
                &write(d, "e.parquet", with(base(), Column::new("channel".into(), ["a"; 4]))),
                o,
                &[],
            );
            assert_eq!(quality_of(o)["channels"], 1.0);
            r
        },
    },
    Case {
        area: "shapes",
        case: "zero conversions (a typo in the marker value)",
        behaviour: "valid, status ok_no_conversions, a warning naming the values the column holds",
        exit: 0,
        needle: "`conversion`, `touch`",
        run: |d, o| attribute(&write(d, "e.parquet", base()), o, &["--conversion-value", "Conversion"]),
    },
    Case {
        area: "shapes",
        case: "zero conversions with guards.min_conversions",
        behaviour: "guard: fails, nothing published",
        exit: 65,
        needle: "guard",
        run: |d, o| {
            attribute(
                &write(d, "e.parquet", base()),
                o,
                &["--conversion-value", "Conversion", "--min-conversions", "1"],
            )
        },
    },
    Case {
        area: "shapes",
        case: "every conversion unattributed",
        behaviour: "valid: reported under (unattributed)",
        exit: 0,
        needle: "",
        run: |d, o| {
            let r = attribute(
                &write(
                    d,
                    "e.parquet",
                    with(
                        base(),
                        Column::new("channel".into(), [None, None, None, Some("c")])
                            .cast(&DataType::String)
                            .unwrap(),
                    ),
                ),
                o,
                &["--on-invalid-rows", "drop"],
            );
            assert_eq!(quality_of(o)["unattributed_conversions"], 1.0);
            r
        },
    },
    Case {
        area: "shapes",
        case: "channel names with unicode, spaces, quotes, newlines",
        behaviour: "valid: kept as they are",
        exit: 0,
        needle: "",
        run: |d, o| {
            let r = attribute(
                &write(
                    d,
                    "e.parquet",
                    with(
                        base(),
                        Column::new("channel".into(), ["Ümlaut é", "with space", "q\"uote", "new\nline"]),
                    ),
                ),
                o,
                &[],
            );
            let (_, rows) = read_parquet(&o.join("channel_attribution.parquet"));
            assert!(rows.iter().any(|r| r[1] == Cell::Str("new\nline".into())));
            r
        },
    },
    Case {
        area: "shapes",
        case: "a reserved channel name or the path separator",
        behaviour: "refused, naming the channel",
        exit: 65,
        needle: "(start)",
        run: |d, o| {
            attribute(
                &write(
                    d,
                    "e.parquet",
                    with(base(), Column::new("channel".into(), ["a", "(start)", "b", "c"])),
                ),
                o,
                &[],
            )
        },
    },
    Case {
        area: "shapes",
        case: "an empty channel name on a touch",
        behaviour: "like a null channel: an invalid touch",
        exit: 65,
        needle: "null channel",
        run: |d, o| {
            attribute(
                &write(d, "e.parquet", with(base(), Column::new("channel".into(), ["", "b", "b", "c"]))),
                o,
                &[],
            )
        },
    },
    Case {
        area: "shapes",
        case: "exact duplicate events",
        behaviour: "valid: counted in data_quality and warned about; dropped with journeys.dedupe = exact",
        exit: 0,
        needle: "duplicate",
        run: |d, o| {
            let mut df = DataFrame::new_infer_height(base()).unwrap();
            let df2 = df.clone();
            df.vstack_mut(&df2).unwrap();
            let p = d.join("e.parquet");
            write_events(&p, &mut df);
            let r = attribute(&p, o, &[]);
            assert_eq!(quality_of(o)["duplicate_events"], 4.0);
            assert_eq!(ok_conversions(o), 2.0);
            let deduped = d.join("dedup");
            assert!(attribute(&p, &deduped, &["--dedupe", "exact"]).status.success());
            assert_eq!(ok_conversions(&deduped), 1.0);
            r
        },
    },
    Case {
        area: "shapes",
        case: "events repeated under one event id",
        behaviour: "valid: with journeys.dedupe = event_id the first row (in journey order) of each person's id is kept",
        exit: 0,
        needle: "",
        run: |d, o| {
            // The same conversion delivered twice (a retry of the collector).
            let cols = with(
                with(base(), Column::new("event_id".into(), ["e1", "e2", "e3", "e4"])),
                ts(&[0, 1, 2, 0]),
            );
            let mut df = DataFrame::new_infer_height(cols).unwrap();
            let mut retry = DataFrame::new_infer_height(with(
                base(),
                Column::new("event_id".into(), ["x", "y", "e3", "z"]),
            ))
            .unwrap();
            retry = retry.slice(2, 1);
            df.vstack_mut(&retry).unwrap();
            let p = d.join("e.parquet");
            write_events(&p, &mut df);
            let r = attribute(&p, o, &["--event-id-col", "event_id", "--dedupe", "event_id"]);
            assert_eq!(ok_conversions(o), 1.0);
            assert_eq!(quality_of(o)["duplicate_events"], 1.0);
            r
        },
    },
    Case {
        area: "configuration",
        case: "unknown key",
        behaviour: "names the key",
        exit: 78,
        needle: "lookbak_days",
        run: |d, o| attribute(&write(d, "e.parquet", base()), o, &["--set", "journeys.lookbak_days=3"]),
    },
    Case {
        area: "configuration",
        case: "wrong type",
        behaviour: "names the flag that brought it",
        exit: 78,
        needle: "--set",
        run: |d, o| {
            attribute(&write(d, "e.parquet", base()), o, &["--set", "journeys.lookback_days=\"soon\""])
        },
    },
    Case {
        area: "configuration",
        case: "negative lookback",
        behaviour: "names the setting",
        exit: 78,
        needle: "lookback_days",
        run: |d, o| attribute(&write(d, "e.parquet", base()), o, &["--lookback-days", "-1"]),
    },
    Case {
        area: "configuration",
        case: "Markov order 0",
        behaviour: "names the setting",
        exit: 78,
        needle: "markov_order",
        run: |d, o| attribute(&write(d, "e.parquet", base()), o, &["--markov-order", "0"]),
    },
    Case {
        area: "configuration",
        case: "unknown model",
        behaviour: "suggests the closest",
        exit: 78,
        needle: "did you mean `linear`",
        run: |d, o| attribute(&write(d, "e.parquet", base()), o, &["--models", "lienar"]),
    },
    Case {
        area: "configuration",
        case: "unrelated TOUCHPOINT_* variables (TOUCHPOINT_HOME, Kubernetes' TOUCHPOINT_SERVICE_HOST)",
        behaviour: "valid: ignored; only TOUCHPOINT_<SECTION>__<KEY> are settings",
        exit: 0,
        needle: "",
        run: |d, o| {
            let p = write(d, "e.parquet", base());
            touchpoint_env(
                &["attribute", "--events", p.to_str().unwrap(), "--out", o.to_str().unwrap()],
                &[
                    ("TOUCHPOINT_HOME", "/opt/touchpoint"),
                    ("TOUCHPOINT_SERVICE_HOST", "10.0.0.1"),
                    ("TOUCHPOINT_SERVICE_PORT", "80"),
                ],
            )
        },
    },
    Case {
        area: "configuration",
        case: "a channel in no group named like a group",
        behaviour: "refused: it would merge into the group silently",
        exit: 78,
        needle: "has its name",
        run: |d, o| attribute(&write(d, "e.parquet", base()), o, &["--channel-group", "c=a"]),
    },
    Case {
        area: "configuration",
        case: "a channel group with a reserved name",
        behaviour: "refused, naming the group",
        exit: 78,
        needle: "(null)",
        run: |d, o| attribute(&write(d, "e.parquet", base()), o, &["--channel-group", "(null)=a"]),
    },
    Case {
        area: "configuration",
        case: "a date that does not exist",
        behaviour: "names the date",
        exit: 78,
        needle: "2024-02-30",
        run: |d, o| attribute(&write(d, "e.parquet", base()), o, &["--run-date", "2024-02-30"]),
    },
    Case {
        area: "sources",
        case: "a source file without its id column",
        behaviour: "names the source's file and column and the columns it has",
        exit: 65,
        needle: "`crm_id`",
        run: |d, o| {
            std::fs::write(d.join("calls.csv"), "who,called_at\n1,2023-11-15T00:00:00Z\n").unwrap();
            let src =
                format!("cc={},user=crm_id,time=called_at,channel=phone", d.join("calls.csv").display());
            attribute(&write(d, "e.parquet", base()), o, &["--source", &src])
        },
    },
    Case {
        area: "sources",
        case: "string ids in one file of a source, integer ids in another",
        behaviour: "names the source and both files",
        exit: 65,
        needle: "id type differs",
        run: |d, o| {
            std::fs::create_dir_all(d.join("calls")).unwrap();
            std::fs::write(d.join("calls/a.csv"), "crm_id,called_at\n1,2023-11-15T00:00:00Z\n").unwrap();
            std::fs::write(d.join("calls/b.csv"), "crm_id,called_at\nx,2023-11-15T00:00:00Z\n").unwrap();
            let src =
                format!("cc={},user=crm_id,time=called_at,channel=phone", d.join("calls/*.csv").display());
            attribute(&write(d, "e.parquet", base()), o, &["--source", &src])
        },
    },
    Case {
        area: "sources",
        case: "a text value column in the conversions table",
        behaviour: "refused, naming the file and the column (never read as 0)",
        exit: 65,
        needle: "`value`",
        run: |d, o| {
            std::fs::write(
                d.join("orders.csv"),
                "conversion_id,user_id,ts,value\nO1,u1,2023-11-15T00:00:00Z,ten\n",
            )
            .unwrap();
            let orders = d.join("orders.csv");
            attribute(&write(d, "e.parquet", base()), o, &["--conversions", orders.to_str().unwrap()])
        },
    },
    Case {
        area: "sources",
        case: "a conversion id repeated in the conversions table",
        behaviour: "valid: the earliest row kept, the others counted (duplicate_conversion_ids)",
        exit: 0,
        needle: "",
        run: |d, o| {
            let rows = "conversion_id,user_id,ts,value\nO1,u2,2023-11-15T00:00:00Z,5\nO1,u2,2023-11-15T01:00:00Z,5\n";
            std::fs::write(d.join("orders.csv"), rows).unwrap();
            let orders = d.join("orders.csv");
            attribute(&write(d, "e.parquet", base()), o, &["--conversions", orders.to_str().unwrap()])
        },
    },
    Case {
        area: "sources",
        case: "a customers table giving one person two segments",
        behaviour: "names the two rows, never the person",
        exit: 65,
        needle: "another segment",
        run: |d, o| {
            std::fs::write(d.join("customers.csv"), "person_id,segment\nu1,gold\nu1,silver\n").unwrap();
            let c = d.join("customers.csv");
            attribute(&write(d, "e.parquet", base()), o, &["--customers", c.to_str().unwrap()])
        },
    },
    Case {
        area: "sources",
        case: "several sources with --shard",
        behaviour: "valid: each shard stages everything and keeps its own persons",
        exit: 0,
        needle: "",
        run: |d, o| {
            std::fs::write(d.join("erase.csv"), "person_id\nnobody\n").unwrap();
            let e = d.join("erase.csv");
            let r = attribute(
                &write(d, "e.parquet", base()),
                o,
                &["--erasure-list", e.to_str().unwrap(), "--shard", "0/2"],
            );
            assert!(o.join("partial_paths.parquet").exists());
            r
        },
    },
    Case {
        area: "configuration",
        case: "an unknown time zone",
        behaviour: "names the zone and the expected form",
        exit: 78,
        needle: "Mars/Olympus",
        run: |d, o| attribute(&write(d, "e.parquet", base()), o, &["--timezone", "Mars/Olympus"]),
    },
    Case {
        area: "process",
        case: "another run holds the output",
        behaviour: "fails at once naming the lock (or waits --lock-timeout)",
        exit: 75,
        needle: "lock",
        run: |d, o| {
            let lock = std::fs::File::create(o.parent().unwrap().join(".out.touchpoint/lock")).unwrap();
            lock.try_lock().unwrap();
            attribute(&write(d, "e.parquet", base()), o, &[])
        },
    },
];

#[test]
fn every_case_of_the_matrix_has_its_documented_outcome() {
    check_cases(false);
}

/// One set of input rules (`docs/sources.md`): every case of the matrix that runs
/// `attribute` on an event log runs again staged (the same log with an erasure list naming
/// nobody) and must have the same documented outcome: exit status, JSON line, the message
/// naming the file or column, the previous output intact.
#[test]
fn every_case_of_the_matrix_read_staged_has_the_documented_outcome() {
    check_cases(true);
}

fn check_cases(staged: bool) {
    let mut failures = Vec::new();
    for c in CASES {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // A previous publication that a failing run must leave byte for byte.
        let prev = attribute(&sample(), &out, &["-q"]);
        assert!(prev.status.success());
        let before = files(&out);
        let erase = dir.path().join("erase-nobody.csv");
        std::fs::write(&erase, "person_id\nnobody\n").unwrap();
        let set = format!("input.erasure_list=\"{}\"", erase.display());
        STAGED.with_borrow_mut(|s| *s = (staged.then_some(set), 0));
        let o = (c.run)(dir.path(), &out);
        let runs = STAGED.with_borrow_mut(|s| std::mem::take(s).1);
        if staged && runs == 0 {
            continue; // not a case of an event log read by `attribute`
        }
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        let last = String::from_utf8_lossy(&o.stdout).lines().last().unwrap_or_default().to_owned();
        let json: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
        let mut problems = Vec::new();
        if o.status.code() != Some(c.exit) {
            problems.push(format!("exit {:?}, documented {}", o.status.code(), c.exit));
        }
        if c.exit != 0 {
            if json["exit_code"] != c.exit || json["status"] != "error" {
                problems.push(format!("last stdout line: {last}"));
            }
            if files(&out) != before {
                problems.push("the previous output changed".into());
            }
        }
        if !c.needle.is_empty() && !stderr.contains(c.needle) {
            problems.push(format!("the message lacks `{}`", c.needle));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}{} / {}: {}\n  stderr: {}",
                if staged { "staged: " } else { "" },
                c.area,
                c.case,
                problems.join("; "),
                stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn render() -> String {
    let mut s = String::from(
        "# Robustness matrix\n\n\
         What touchpoint does with bad or unusual input, configuration and processes. Every row is a\n\
         case of `tests/it/robustness.rs`, which checks the exit status, the JSON error line, that the\n\
         message names what is wrong, and that a failed run leaves the previous output byte for byte;\n\
         this page is rendered from those cases (`TOUCHPOINT_UPDATE_DOCS=1 cargo test --release\n\
         --all-features robustness`), and a test fails when the two differ. Kills at every step of\n\
         publication are tested in `tests/it/publication.rs`.\n\n\
         | area | case | behaviour | exit |\n| --- | --- | --- | --- |\n",
    );
    for c in CASES {
        s.push_str(&format!("| {} | {} | {} | {} |\n", c.area, c.case, c.behaviour, c.exit));
    }
    s.push_str(
        "\nA disk that fills up mid-write (74, the previous run whole) is tested in\n\
         `tests/it/publication.rs` on a small tmpfs, where the tests run as root.\n",
    );
    s
}

#[test]
fn the_robustness_page_matches_the_matrix() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/robustness.md");
    if std::env::var_os("TOUCHPOINT_UPDATE_DOCS").is_some() {
        std::fs::write(&path, render()).unwrap();
    }
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(doc, render(), "docs/robustness.md is stale: rerun with TOUCHPOINT_UPDATE_DOCS=1");
}
