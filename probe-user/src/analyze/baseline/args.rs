//! The baseline's flags on `tprobe run` and the `tprobe baseline` subcommands (clap), kept
//! here so the shared command line only names them.
use std::{path::PathBuf, time::Duration};

use super::config::BaselineConfig;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct BaselineArgs {
    /// Learn a profile of normal behaviour per workload, kept as JSON files in DIR, then
    /// report what a workload never did as `alert`s with `source: "baseline"`.
    #[arg(long = "baseline", value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    /// A workload learns this long after its first event, then watches.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub learn_for: Duration,
    /// ...or stops learning earlier after this long without a new value.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub learn_stable: Duration,
    /// Learn deviations into the profile (each is still reported once).
    #[arg(long)]
    pub baseline_accept: bool,
    /// Never write to DIR (profiles shipped read-only, e.g. a ConfigMap).
    #[arg(long)]
    pub baseline_read_only: bool,
    /// The interval event rates are counted over.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub baseline_rate_interval: Duration,
    /// A rate deviation is an interval above mean + K standard deviations...
    #[arg(long, default_value_t = 6.0, value_name = "K")]
    pub baseline_rate_k: f64,
    /// ...and above this many events.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub baseline_rate_floor: u64,
    /// A directory with more distinct file names than N is learned as `dir/*`.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub baseline_dir_names: usize,
    /// Baseline alerts per workload per minute; more are counted as suppressed.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub baseline_alert_rate: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("--baseline-rate-k must be a positive number, not {0}")]
    K(f64),
    #[error("--baseline-rate-interval must be at least 1s")]
    Interval,
    #[error("--learn-for must be longer than 0")]
    LearnFor,
}

impl BaselineArgs {
    /// The baseline config, `None` without `--baseline`.
    pub fn into_config(self) -> Result<Option<BaselineConfig>, ArgsError> {
        let Some(dir) = self.baseline else {
            return Ok(None);
        };
        if !(self.baseline_rate_k.is_finite() && self.baseline_rate_k > 0.0) {
            return Err(ArgsError::K(self.baseline_rate_k));
        }
        if self.baseline_rate_interval < Duration::from_secs(1) {
            return Err(ArgsError::Interval);
        }
        if self.learn_for.is_zero() {
            return Err(ArgsError::LearnFor);
        }
        Ok(Some(BaselineConfig {
            dir,
            learn_for: self.learn_for,
            learn_stable: self.learn_stable,
            accept: self.baseline_accept,
            read_only: self.baseline_read_only,
            rate_interval: self.baseline_rate_interval,
            rate_k: self.baseline_rate_k,
            rate_floor: self.baseline_rate_floor,
            dir_names: self.baseline_dir_names.max(1),
            alerts_per_minute: self.baseline_alert_rate.max(1),
        }))
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum BaselineCommand {
    /// Print a profile for a person: values with counts, first and last seen; rates.
    Show {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Merge profiles of one workload (e.g. from several nodes) into OUT.
    Merge {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: PathBuf,
    },
    /// What each of two profiles has that the other has not (exit 1 when they differ).
    Diff {
        #[arg(value_name = "A")]
        a: PathBuf,
        #[arg(value_name = "B")]
        b: PathBuf,
    },
}

/// Runs a `tprobe baseline` subcommand: what to print, what to say on stderr, the exit code.
pub fn run(c: BaselineCommand) -> (String, Option<String>, u8) {
    let r = match c {
        BaselineCommand::Show { file } => super::cmd::show(&file).map(|s| (s, 0)),
        BaselineCommand::Merge { files, output } => {
            super::cmd::merge(&files, &output, 16).map(|s| (s, 0))
        }
        BaselineCommand::Diff { a, b } => super::cmd::diff_files(&a, &b),
    };
    match r {
        Ok((s, code)) => (s, None, code),
        Err(e) => (String::new(), Some(e.to_string()), 2),
    }
}
