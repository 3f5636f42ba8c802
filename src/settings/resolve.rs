//! Resolution of the settings layers: defaults < pipeline file < environment < flags.
//!
//! Every layer writes the same dotted keys of [`Settings`] (`journeys.lookback_days`), so
//! there is one schema and one set of defaults. Each layer is checked as it is applied, so
//! a wrong type is blamed on the layer that brought it: the file (with its line), the
//! environment variable, or the flag.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::Settings;
use crate::error::{Error, Result};

/// The sections of a pipeline file; `TOUCHPOINT_<SECTION>__<KEY>` is a setting only for
/// these sections, so unrelated variables (`TOUCHPOINT_HOME`, or the
/// `TOUCHPOINT_SERVICE_HOST` Kubernetes injects for a Service named `touchpoint`) are
/// ignored.
pub const SECTIONS: [&str; 14] = [
    "input",
    "columns",
    "path_table",
    "journeys",
    "models",
    "window",
    "output",
    "guards",
    "spend_response",
    "channel_groups",
    "channel_rules",
    "conversions",
    "identity",
    "segments",
];

/// Keys of the file that are paths, relative to the file itself.
const FILE_PATHS: [(&str, &str); 9] = [
    ("input", "events"),
    ("input", "paths"),
    ("input", "spend"),
    ("input", "experiments"),
    ("input", "erasure_list"),
    ("output", "root"),
    ("conversions", "path"),
    ("identity", "path"),
    ("segments", "customers"),
];

/// The layers of one resolution, lowest first.
#[derive(Debug, Default)]
pub struct Layers<'a> {
    /// A pipeline file.
    pub file: Option<&'a Path>,
    /// The process environment (`TOUCHPOINT_<SECTION>__<KEY>` variables are read).
    pub env: &'a [(String, String)],
    /// Flags: (dotted key, value, the flag as the user wrote it), in order.
    pub flags: Vec<(String, toml::Value, String)>,
}

/// Resolved settings and where each value that is not a default came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The settings, validated.
    pub settings: Settings,
    /// Dotted key → source (`environment TOUCHPOINT_…`, `flag --set`, …) of every override.
    pub sources: BTreeMap<String, String>,
}

/// Resolve the layers into validated settings.
pub fn resolve(layers: &Layers) -> Result<Resolved> {
    let mut table = match layers.file {
        Some(f) => read_file(f)?,
        None => toml::Table::new(),
    };
    let mut sources = BTreeMap::new();
    // Each override is type-checked as it is applied, so an error names the one variable
    // or flag that brought it.
    for (k, dotted, v) in settings_env(layers.env) {
        let blame = format!("environment variable {k}");
        set_key(&mut table, &dotted, parse_value(&v)).map_err(|e| Error::Config(format!("{blame}: {e}")))?;
        check(&table).map_err(|e| Error::Config(format!("{blame}: {e}")))?;
        sources.insert(dotted, format!("environment {k}"));
    }
    for (dotted, v, flag) in &layers.flags {
        set_key(&mut table, dotted, v.clone()).map_err(|e| Error::Config(format!("{flag}: {e}")))?;
        check(&table).map_err(|e| Error::Config(format!("{flag}: {e}")))?;
        sources.insert(dotted.clone(), format!("flag {flag}"));
    }
    let settings = check(&table).map_err(Error::Config)?;
    Ok(Resolved { settings: settings.validate()?, sources })
}

fn check(table: &toml::Table) -> std::result::Result<Settings, String> {
    Settings::deserialize(toml::Value::Table(table.clone())).map_err(|e| e.message().to_owned())
}

/// Read a pipeline file: syntax and types are checked on the file alone (errors carry its
/// line), then its relative paths are made relative to the file.
fn read_file(file: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::NotFound { path: file.into(), problem: "no such pipeline file".into() }
        }
        _ => Error::io(file, e),
    })?;
    let mut table: toml::Table = toml::from_str(&text)
        .and_then(|t: toml::Table| toml::from_str::<Settings>(&text).map(|_| t))
        .map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
    let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let relative = |p: &mut String| {
        if Path::new(p.as_str()).is_relative() {
            *p = base.join(p.as_str()).to_string_lossy().into_owned();
        }
    };
    for (section, key) in FILE_PATHS {
        if let Some(toml::Value::String(p)) = table.get_mut(section).and_then(|s| s.get_mut(key)) {
            relative(p);
        }
    }
    if let Some(toml::Value::Array(sources)) = table.get_mut("sources") {
        for s in sources {
            if let Some(toml::Value::String(p)) = s.get_mut("path") {
                relative(p);
            }
        }
    }
    Ok(table)
}

/// The settings among environment variables, sorted: (name, dotted key, value).
fn settings_env(env: &[(String, String)]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = env
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("TOUCHPOINT_")?;
            let (section, key) = rest.split_once("__")?;
            let section = section.to_ascii_lowercase();
            if !SECTIONS.contains(&section.as_str()) || key.is_empty() {
                return None;
            }
            let dotted = format!("{section}.{}", key.to_ascii_lowercase().replace("__", "."));
            Some((k.clone(), dotted, v.clone()))
        })
        .collect();
    out.sort();
    out
}

/// A TOML literal when the text is one (numbers, booleans, arrays, quoted strings), else
/// the text as a string.
pub fn parse_value(v: &str) -> toml::Value {
    format!("v = {v}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_owned()))
}

/// Parse `--set section.key=value`.
pub fn parse_set(s: &str) -> Result<(String, toml::Value)> {
    let (k, v) =
        s.split_once('=').ok_or_else(|| Error::Config(format!("--set `{s}`: expected section.key=value")))?;
    Ok((k.trim().to_owned(), parse_value(v.trim())))
}

fn set_key(table: &mut toml::Table, dotted: &str, value: toml::Value) -> std::result::Result<(), String> {
    let parts: Vec<&str> = dotted.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("bad settings key `{dotted}`"));
    }
    let mut t = table;
    for p in &parts[..parts.len() - 1] {
        let entry = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        t = entry.as_table_mut().ok_or_else(|| format!("`{p}` in `{dotted}` is not a section"))?;
    }
    t.insert(parts[parts.len() - 1].to_owned(), value);
    Ok(())
}

/// Paths given as flags are taken as they are (relative to the working directory).
pub fn path_value(p: &Path) -> toml::Value {
    toml::Value::String(p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_section_variables_are_settings() {
        let e = env(&[
            ("TOUCHPOINT_HOME", "/opt/tp"),
            ("TOUCHPOINT_SERVICE_HOST", "10.0.0.1"),
            ("TOUCHPOINT_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
            ("TOUCHPOINT_JOURNEYS__LOOKBACK_DAYS", "14"),
        ]);
        let r = resolve(&Layers { env: &e, ..Default::default() }).unwrap();
        assert_eq!(r.settings.journeys.lookback_days, 14.0);
        assert_eq!(r.sources.len(), 1);
    }

    #[test]
    fn a_wrong_type_is_blamed_on_its_layer() {
        let e = env(&[("TOUCHPOINT_JOURNEYS__LOOKBACK_DAYS", "soon")]);
        let err = resolve(&Layers { env: &e, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("TOUCHPOINT_JOURNEYS__LOOKBACK_DAYS"), "{err}");
        let flags = vec![("models.markov_order".into(), parse_value("\"x\""), "--markov-order".into())];
        let err = resolve(&Layers { flags, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("--markov-order"), "{err}");
    }

    #[test]
    fn unknown_keys_and_impossible_dates_are_errors() {
        let flags = vec![("journeys.lookbak_days".into(), parse_value("3"), "--set".into())];
        assert!(resolve(&Layers { flags, ..Default::default() }).is_err());
        let flags = vec![("window.run_date".into(), parse_value("2024-02-30"), "--run-date".into())];
        let err = resolve(&Layers { flags, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("2024-02-30"), "{err}");
    }
}
