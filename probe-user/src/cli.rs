//! Command line (clap).
use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError, RunConfig};

#[derive(Parser, Debug)]
#[command(
    name = "tprobe",
    version,
    about = "eBPF process, file and network telemetry as JSON lines"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Attach the probes and print events as JSON lines until Ctrl-C/SIGTERM.
    Run(RunArgs),
    /// List the event kinds and the hooks behind them.
    Events,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Event kinds or categories to report, comma-separated (e.g. `process.exec,process.exit`).
    #[arg(long, default_value = "all")]
    pub events: String,
    /// Also report thread creation and thread exits.
    #[arg(long)]
    pub threads: bool,
    /// Stop after this long (e.g. `30s`, `5m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many events (not counting `probe.*`).
    #[arg(long)]
    pub count: Option<u64>,
    /// Write to this file (created mode 0600, appended) instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Kernel ring buffer size (power of two, e.g. `16M`).
    #[arg(long, default_value = "16M")]
    pub ringbuf_size: String,
    /// Longest time a quiet event may wait in the ring buffer (e.g. `100ms`).
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub flush_interval: Duration,
    /// Host name reported in `host.name` (default: $NODE_NAME, then the kernel's host name).
    #[arg(long, env = "NODE_NAME")]
    pub host_name: Option<String>,
    /// Kernel BTF used to find struct offsets.
    #[arg(long, default_value = "/sys/kernel/btf/vmlinux")]
    pub btf: PathBuf,
    #[command(flatten)]
    pub file: Box<crate::file::FileArgs>,
}

impl RunArgs {
    pub fn into_config(self) -> Result<RunConfig, ConfigError> {
        let ring = config::check_ring_size(config::parse_size(&self.ringbuf_size)?)?;
        let host_name = self.host_name.unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown".into())
        });
        Ok(RunConfig {
            kinds: config::parse_kinds(&self.events)?,
            threads: self.threads,
            duration: self.duration,
            count: self.count,
            output: self.output,
            ringbuf_bytes: ring,
            host_name,
            btf_path: self.btf,
            flush_interval: self.flush_interval,
            file: (*self.file).into_options()?,
        })
    }
}
