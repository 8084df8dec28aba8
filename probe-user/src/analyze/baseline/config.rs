//! The baseline's settings and counters: a leaf every part of the baseline reads.
use std::{path::PathBuf, time::Duration};

/// `--baseline DIR` and its settings (`analyze.baseline` in the config file).
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineConfig {
    pub dir: PathBuf,
    /// Learning ends this long after a workload's first event...
    pub learn_for: Duration,
    /// ...or after this long without a new value.
    pub learn_stable: Duration,
    /// Deviations are learned into the profile (and still reported once).
    pub accept: bool,
    /// Nothing is written to `dir` (a ConfigMap, a shared copy).
    pub read_only: bool,
    /// The interval rates count over (a minute).
    pub rate_interval: Duration,
    /// An interval above mean + k·σ ...
    pub rate_k: f64,
    /// ... and above this count is a rate deviation.
    pub rate_floor: u64,
    /// A directory with more distinct names than this becomes `dir/*`.
    pub dir_names: usize,
    /// Alerts per workload per minute; more are counted as suppressed.
    pub alerts_per_minute: u32,
}

impl BaselineConfig {
    pub fn new(dir: PathBuf) -> BaselineConfig {
        BaselineConfig {
            dir,
            learn_for: Duration::from_secs(600),
            learn_stable: Duration::from_secs(120),
            accept: false,
            read_only: false,
            rate_interval: Duration::from_secs(60),
            rate_k: 6.0,
            rate_floor: 100,
            dir_names: 16,
            alerts_per_minute: 20,
        }
    }
}

impl Eq for BaselineConfig {}

/// Counters of the whole baseline, for `probe.stop` and `/metrics`.
#[derive(Default, Debug)]
pub struct Totals {
    pub alerts: u64,
    pub suppressed: u64,
    /// Deviations already reported in this run.
    pub repeats: u64,
    pub writes: u64,
    pub write_errors: u64,
    /// Events of workloads past `MAX_WORKLOADS`, or whose workload could not be told.
    pub unkeyed: u64,
    pub over_cap: u64,
    /// New values not kept: a dimension was full.
    pub values_dropped: u64,
    pub accepted: u64,
}
