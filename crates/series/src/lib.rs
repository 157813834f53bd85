//! secmon-series: the embedded time-series store behind the dashboard and
//! `GET /v1/series`.
//!
//! The binary samples every metric once per tick (10 s) and calls
//! [`Store::record`] with the tick's time and the current values; charts call
//! [`Store::query`]; [`Store::save_file`] / [`Store::load_file`] keep the data
//! across restarts. Two tiers: 10 s samples for 24 h, 5 min rollups (min, max,
//! avg, last, counter increase) for 7 days; older data is dropped. Closed
//! chunks are XOR-compressed, so a flat gauge costs bytes, not kilobytes, per
//! hour.
//!
//! Pure on purpose: no threads, no clock reads (time is passed in, tests use
//! explicit times), no IO except the snapshot file functions. It is not a
//! general TSDB: no query language, no aggregation across series, no
//! out-of-order ingestion, fixed resolutions. Memory is bounded by a series
//! cap ([`Config`]); refusals are counted in [`Stats`].

mod chunk;
mod codec;
mod query;
mod sample;
mod snapshot;
mod store;

pub use query::{Func, LabelFilter, MAX_POINTS, Point, Query, QueryError, SeriesData};
pub use sample::{Kind, Labels, Sample};
pub use snapshot::{FORMAT_VERSION, SnapshotError, write_snapshot_file};
pub use store::{
    Config, MetricMemory, RAW_SLOTS, RAW_STEP_MS, ROLLUP_BUCKETS, ROLLUP_STEP_MS, STALE_MS,
    SeriesInfo, Stats, Store,
};

#[cfg(test)]
mod tests;
