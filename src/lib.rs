//! touchpoint: multi-touch attribution from Parquet event logs.
//!
//! The pipeline is a chain of layers, each in its own module (see `ARCHITECTURE.md`):
//! [`input`] (Parquet → columns, Polars inside) → [`journeys`] (sort, cut, lookback →
//! [`paths::PathTable`]) → [`models`] and [`markov`] (plain Rust over the path table) →
//! [`pipeline`] (orchestration) → [`report`] (tables) → [`output`] (atomic publication).
//! [`cli`] is a thin shell.

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod error;
pub mod generate;
pub mod input;
pub mod intern;
pub mod job;
pub mod journeys;
pub mod markov;
pub mod models;
pub mod output;
pub mod paths;
pub mod pipeline;
pub mod report;
pub mod shard;

pub use error::{Error, Result};
