//! W9: the baseline's cost, next to W8. Measured in process on a release build (the
//! `baseline_cost` measurement in probe-user): CPU per file and network event while watching
//! known values (the common case) and while learning, and resident memory per workload. In
//! process, the numbers do not carry the probe's drain and encode, which W2 and W4 measure.
use anyhow::Result;

use super::common::{Opts, Row};

pub(super) fn w9(opts: &Opts, rows: &mut Vec<Row>) -> Result<()> {
    let runs = super::common::in_process(
        "W9 baseline",
        "analyze::baseline::bench::baseline_cost",
        "BASELINE_BENCH",
        &[],
        opts.rounds,
    )?;
    let get = |k: &str| {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r[k].as_f64()).collect();
        super::common::median(&mut v)
    };
    let (watch, learn, mem) = (
        get("watching_ns_per_event"),
        get("learning_ns_per_event"),
        get("bytes_per_workload"),
    );
    let (lo, hi) = (get("watching_ns_min"), get("watching_ns_max"));
    rows.push(Row {
        name: "W9 baseline (file creates and connects, in process)".into(),
        values: vec![
            (
                "added CPU per event, watching".into(),
                format!(
                    "{:.3} µs (target <= 0.3; rounds {:.3}..{:.3})",
                    watch / 1e3,
                    lo / 1e3,
                    hi / 1e3
                ),
            ),
            (
                "added CPU per event, learning".into(),
                format!("{:.3} µs", learn / 1e3),
            ),
            (
                "memory per workload (60 values, rates)".into(),
                format!("{:.1} KiB", mem / 1024.0),
            ),
        ],
    });
    Ok(())
}
