//! Typed errors of the library and their exit codes.
//!
//! Every error a user can cause maps to one documented exit status (sysexits.h numbers, the
//! convention of scheduled Unix jobs), so a scheduler can tell "fix the data" (65) from
//! "the file is not there yet" (66) from "the disk is full" (74) without parsing messages.
//! Messages name the file, the column and the problem.

use std::path::PathBuf;

/// Exit status: success.
pub const EXIT_OK: i32 = 0;
/// Exit status: command-line usage error (clap's own code).
pub const EXIT_USAGE: i32 = 2;
/// Exit status: the input data is bad (EX_DATAERR).
pub const EXIT_DATA: i32 = 65;
/// Exit status: an input file or directory does not exist (EX_NOINPUT).
pub const EXIT_NO_INPUT: i32 = 66;
/// Exit status: an internal error, a bug in touchpoint (EX_SOFTWARE).
pub const EXIT_SOFTWARE: i32 = 70;
/// Exit status: reading or writing failed (EX_IOERR).
pub const EXIT_IO: i32 = 74;
/// Exit status: the settings are invalid (EX_CONFIG).
pub const EXIT_CONFIG: i32 = 78;

/// Result alias of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input data violates the contract (SPEC §1).
    #[error("bad input: {file}{}: {problem}", column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    BadInput {
        /// The file at fault (or the input pattern when no single file is).
        file: PathBuf,
        /// The column at fault, when there is one.
        column: Option<String>,
        /// What is wrong, in words a data engineer can act on.
        problem: String,
    },
    /// The input path, directory or glob matched nothing.
    #[error("input not found: {path}: {problem}")]
    NotFound {
        /// The path or pattern as given.
        path: PathBuf,
        /// Why nothing was found.
        problem: String,
    },
    /// Invalid settings (flags, pipeline file, environment).
    #[error("bad configuration: {0}")]
    Config(String),
    /// Reading or writing failed at the operating-system level.
    #[error("I/O error: {path}: {source}")]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An unexpected failure inside a dependency or touchpoint itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The documented process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadInput { .. } => EXIT_DATA,
            Error::NotFound { .. } => EXIT_NO_INPUT,
            Error::Config(_) => EXIT_CONFIG,
            Error::Io { .. } => EXIT_IO,
            Error::Internal(_) => EXIT_SOFTWARE,
        }
    }

    /// Shorthand for a [`Error::BadInput`].
    pub fn bad_input(file: impl Into<PathBuf>, column: Option<&str>, problem: impl Into<String>) -> Self {
        Error::BadInput { file: file.into(), column: column.map(str::to_owned), problem: problem.into() }
    }

    /// Shorthand for an [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// A short machine-readable kind, used in the JSON summary and the manifest.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::BadInput { .. } => "bad_input",
            Error::NotFound { .. } => "input_not_found",
            Error::Config(_) => "bad_configuration",
            Error::Io { .. } => "io_error",
            Error::Internal(_) => "internal_error",
        }
    }
}
