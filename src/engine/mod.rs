//! The engine: the only layer that uses Polars. It finds and checks input files, scans and
//! converts them into the core's plain columns, reads the side tables (path tables, spend,
//! partials) and writes tables as Parquet or CSV.

pub mod arrow;
pub mod channel_rules;
mod convert;
pub mod discover;
pub mod generate;
pub mod read;
mod schema;
pub mod side_tables;
pub mod sources;
pub mod spill;
mod time;
pub mod write;

pub use discover::{date_of, partition_date, resolve_inputs, scoped_inputs, ReadScope};
pub use read::{
    check_kept, load_events, load_frame, read_columns, Kept, LoadOptions, MAX_EVENTS, READ_BATCH,
};
pub use schema::validate_inputs;
pub use side_tables::{load_experiments, load_paths, load_spend, PathTableRow};
pub use write::{
    parquet_rows, read_partial_block, read_partial_lags, read_partial_paths, read_partial_replicates,
    read_table, to_frame, write_frame, write_table, TableSource,
};
