//! touchpoint: multi-touch attribution from Parquet event logs.
//!
//! Layers in folders, each depending only on the ones below it (`ARCHITECTURE.md`; a test
//! enforces it): [`cli`] → [`run`] → [`publish`] → [`report`] → [`engine`] → [`core`] →
//! [`settings`], with [`error`] shared by all. Polars is used only in [`engine`]; the
//! attribution rules are plain Rust in [`core`], defined in `docs/models.md`.

#![warn(missing_docs)]

pub mod cli;
pub mod core;
pub mod engine;
pub mod error;
pub mod publish;
pub mod report;
pub mod run;
pub mod settings;

pub use error::{Error, ExitStatus, Result};
