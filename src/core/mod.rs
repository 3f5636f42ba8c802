//! The attribution core: plain Rust over integer columns and path tables. No Polars, no
//! I/O; everything here can be tested with hand-made data. Definitions: `docs/models.md`.

pub mod analysis;
pub mod bootstrap;
pub mod calibration;
pub mod campaigns;
pub mod chain_counts;
pub mod evaluation;
pub mod event_log;
pub mod intern;
pub mod journey_stats;
pub mod journeys;
pub mod markov;
pub mod models;
pub mod paths;
pub mod privacy;
pub mod recorded;
pub mod replicates;
pub mod response;
pub mod roles;
pub mod shapley;
pub mod spend;
pub mod statistics;
pub mod table;
pub mod transforms;
pub mod world;
