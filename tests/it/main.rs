//! The integration tests, one binary (one link of Polars): the binary end to end, the
//! journey and model oracles, invariants, scheduling, shards and the layering rules.

mod browser;
mod calibration;
mod channel_rules;
mod cli;
mod common;
mod defects;
mod fuzz;
mod input_matrix;
mod input_rules;
mod invariants;
mod journeys;
mod layers;
mod messages;
mod models;
mod oracles;
mod privacy;
mod publication;
mod relationship;
mod response;
mod robustness;
mod scheduling;
mod schema;
mod shard;
mod spark;
mod spend;
mod training;
mod uncertainty;
