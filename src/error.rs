//! Typed errors of the library and their exit codes.
//!
//! Every error a user can cause maps to one documented exit status (sysexits.h numbers, the
//! convention of scheduled Unix jobs), so a scheduler can tell "fix the data" (65) from
//! "the file is not there yet" (66) from "the disk is full" (74) without parsing messages.
//! Messages name the file, the column and the problem.

use std::path::PathBuf;

/// The documented exit status of the binary (sysexits.h numbers, the convention of
/// scheduled Unix jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Success (also when the input has no conversions: see the summary's status).
    Ok = 0,
    /// Command-line usage error (clap's own code).
    Usage = 2,
    /// The input data is bad (EX_DATAERR).
    DataError = 65,
    /// An input does not exist, or holds no events for the window (EX_NOINPUT): retry later.
    NoInput = 66,
    /// An internal error, a bug in touchpoint (EX_SOFTWARE).
    Software = 70,
    /// Reading or writing failed (EX_IOERR).
    IoError = 74,
    /// Another run holds the output's lock (EX_TEMPFAIL): retry later.
    TempFail = 75,
    /// The settings are invalid (EX_CONFIG).
    Config = 78,
}

impl ExitStatus {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Result alias of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input data violates the contract (`docs/models.md` § Input).
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
    /// The command line is incomplete (what clap cannot say on its own).
    #[error("usage: {0}")]
    Usage(String),
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
    /// A guard of the settings failed: nothing was published.
    #[error("guard failed: {0}; nothing was published and the previous outputs are unchanged")]
    Guard(String),
    /// Another run is publishing to the same output.
    #[error("output locked: {path} is held by another touchpoint run on the same output; retry when it has finished")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// An unexpected failure inside touchpoint itself (a bug).
    #[error("internal error: {0}")]
    Internal(String),
    /// An unexpected failure inside a dependency, with its error kept as the source.
    #[error("internal error: {context}")]
    Dependency {
        /// What touchpoint was doing.
        context: String,
        /// The dependency's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// The documented process exit status for this error.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::BadInput { .. } | Error::Guard(_) => ExitStatus::DataError,
            Error::NotFound { .. } => ExitStatus::NoInput,
            Error::Config(_) => ExitStatus::Config,
            Error::Usage(_) => ExitStatus::Usage,
            Error::Io { .. } => ExitStatus::IoError,
            Error::Locked { .. } => ExitStatus::TempFail,
            Error::Internal(_) | Error::Dependency { .. } => ExitStatus::Software,
        }
    }

    /// Shorthand for a [`Error::BadInput`].
    pub fn bad_input(file: impl Into<PathBuf>, column: Option<&str>, problem: impl Into<String>) -> Self {
        Error::BadInput { file: file.into(), column: column.map(str::to_owned), problem: problem.into() }
    }

    /// Shorthand for an [`Error::Dependency`].
    pub fn dependency(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Dependency { context: context.into(), source: Box::new(source) }
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
            Error::Usage(_) => "usage",
            Error::Io { .. } => "io_error",
            Error::Locked { .. } => "locked",
            Error::Guard(_) => "guard",
            Error::Internal(_) | Error::Dependency { .. } => "internal_error",
        }
    }
}
