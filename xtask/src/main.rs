//! `cargo xtask test`: the one command that runs every test on a fresh machine.
//!
//! 1. the Rust tests (`cargo test --release --all-features`; they set up their own Chromium,
//!    JDK and PySpark when missing);
//! 2. the Python package: a venv with `python/requirements-test.txt` (from PyPI, once), the
//!    wheel built by maturin with the same release profile and target directory (so it links
//!    the Polars the tests just compiled), installed into the venv;
//! 3. the Python tests (`python/tests`, pytest), Spark's included.
//!
//! The cargo target directory is the one `cargo xtask` was built in (that of `cargo run`,
//! so the README's two commands share one build; `CARGO_TARGET_DIR` overrides it); the venv
//! is `~/.cache/touchpoint-spark-venv` (`TOUCHPOINT_VENV` overrides it).
//! Arguments after `test` go to pytest (`cargo xtask test -k spark`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("python") => python().map(|_| ()),
        _ => Err("usage: cargo xtask test [pytest args…] | cargo xtask python (build and install the wheel)"
            .into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

/// The repository: `cargo run` tells the running xtask its manifest directory. The one
/// baked in at compile time is only a fallback: two clones sharing a target directory share
/// one xtask binary, which must test the clone it was run from.
fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest.parent().expect("xtask/ is inside the repository").to_path_buf()
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
}

/// The target directory `cargo xtask` itself was built in (`<target>/release/xtask`): the
/// one `cargo run --release` used too, so the README's two commands compile Polars once.
/// CI sets `CARGO_TARGET_DIR` outside the clone.
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().and_then(Path::parent).map_or_else(|| root().join("target"), Path::to_path_buf)
}

/// What `cargo run` sets for the xtask binary itself. Left in a nested cargo's environment
/// they reach build scripts that track them (ring's tracks `CARGO_MANIFEST_DIR`), which
/// would rebuild Polars for the wheel and again for the tests.
fn run_env_of_xtask() -> Vec<String> {
    let own = [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "OUT_DIR",
    ];
    std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| own.contains(&k.as_str()) || k.starts_with("CARGO_PKG_"))
        .collect()
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: {shown}");
    for k in run_env_of_xtask() {
        cmd.env_remove(k);
    }
    // `cargo run` also puts the xtask's target directory and the toolchain's libraries on
    // the library path; keep only what the caller had.
    if let Some(p) = std::env::var_os("LD_LIBRARY_PATH") {
        let kept: Vec<PathBuf> = std::env::split_paths(&p)
            .filter(|d| !d.starts_with(root().join("target")) && !d.starts_with(target_dir()))
            .filter(|d| !d.to_string_lossy().contains("/toolchains/"))
            .collect();
        cmd.env("LD_LIBRARY_PATH", std::env::join_paths(kept).map_err(|e| e.to_string())?);
    }
    let status = cmd.env("CARGO_TARGET_DIR", target_dir()).status().map_err(|e| format!("{shown}: {e}"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("{shown} failed ({status})")),
    }
}

fn test(pytest_args: &[String]) -> Result<()> {
    let root = root();
    run(Command::new(env!("CARGO")).current_dir(&root).args(["test", "--release", "--all-features"]))?;
    let (py, wheel) = python()?;
    // The install test puts this wheel into a clean venv, as a user installs it.
    run(Command::new(&py)
        .current_dir(&root)
        .env("TOUCHPOINT_WHEEL", &wheel)
        .args(["-m", "pytest", "-q", "python/tests"])
        .args(pytest_args))
}

/// The venv's Python with the test requirements and the freshly built wheel installed, and
/// that wheel.
fn python() -> Result<(PathBuf, PathBuf)> {
    let root = root();
    let venv = std::env::var_os("TOUCHPOINT_VENV")
        .map_or_else(|| home().join(".cache/touchpoint-spark-venv"), PathBuf::from);
    let py = venv.join("bin/python");
    let wanted =
        std::fs::read_to_string(root.join("python/requirements-test.txt")).map_err(|e| e.to_string())?;
    let marker = venv.join(".touchpoint-requirements");
    if !py.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        run(Command::new(&py)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(root.join("python/requirements-test.txt")))?;
        std::fs::write(&marker, &wanted).map_err(|e| e.to_string())?;
    }
    let wheels = target_dir().join("wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    run(Command::new(venv.join("bin/maturin"))
        .current_dir(&root)
        .args(["build", "--release", "--quiet", "-m", "python/Cargo.toml", "--out"])
        .arg(&wheels))?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("maturin built no wheel")?;
    run(Command::new(&py)
        .args(["-m", "pip", "install", "-q", "--force-reinstall", "--no-deps"])
        .arg(&wheel))?;
    Ok((py, wheel))
}
