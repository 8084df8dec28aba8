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
// Parsed once per run: the size of `RunArgs` does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Attach the probes and print events as JSON lines until Ctrl-C/SIGTERM.
    Run(RunArgs),
    /// List the event kinds and the hooks behind them.
    Events,
    /// Print the JSON Schema of the native output format.
    Schema,
    /// Report what this kernel and these privileges allow; non-zero exit when the probe
    /// cannot run.
    Check(CheckArgs),
    /// Config file helpers: `--default` prints a commented default, `--check FILE` validates.
    Config(ConfigArgs),
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Kernel BTF to check.
    #[arg(long, default_value = "/sys/kernel/btf/vmlinux")]
    pub btf: PathBuf,
}

#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct ConfigArgs {
    /// Print the default config file, with a comment for every key.
    #[arg(long)]
    pub default: bool,
    /// Validate FILE and print the resulting settings as JSON.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}

#[derive(clap::Args, Clone, Debug)]
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
    /// YAML config file (`tprobe config --default`); flags given here override it. SIGHUP
    /// reloads it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only these processes (pids, comma-separated or repeated). Decided in the kernel.
    #[arg(long, value_delimiter = ',', value_name = "PID")]
    pub pid: Vec<String>,
    /// With --pid: also every descendant, added in the kernel when it forks.
    #[arg(long)]
    pub follow: bool,
    /// Only these users (uids or names). Decided in the kernel.
    #[arg(long, value_delimiter = ',', value_name = "UID")]
    pub uid: Vec<String>,
    /// Only tasks in these cgroups or below (ids, v2 paths like /kubepods, or directories).
    /// Decided in the kernel.
    #[arg(long, value_delimiter = ',', value_name = "CGROUP")]
    pub cgroup: Vec<String>,
    /// Only these command names (shell globs, e.g. `py*`).
    #[arg(long, value_delimiter = ',', value_name = "COMM")]
    pub comm: Vec<String>,
    /// Only these executables (absolute paths or globs, e.g. `/usr/bin/*`).
    #[arg(long, value_delimiter = ',', value_name = "PATH")]
    pub exe: Vec<String>,
    /// Only these containers (full or short id, or name).
    #[arg(long, value_delimiter = ',', value_name = "ID|NAME")]
    pub container: Vec<String>,
    /// Only these pods (NAMESPACE/NAME).
    #[arg(long, value_delimiter = ',', value_name = "NS/NAME")]
    pub pod: Vec<String>,
    /// Only pods in these Kubernetes namespaces.
    #[arg(long, value_delimiter = ',', value_name = "NS")]
    pub namespace: Vec<String>,
    /// Only processes that run outside containers.
    #[arg(long, conflicts_with = "containers_only")]
    pub host_only: bool,
    /// Only processes that run in containers.
    #[arg(long)]
    pub containers_only: bool,
}

impl RunArgs {
    pub fn into_config(self) -> Result<RunConfig, ConfigError> {
        let ring = config::check_ring_size(config::parse_size(&self.ringbuf_size)?)?;
        let filters = crate::config_file::filters_from_args(&self)?;
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
            filters,
            config_path: self.config,
            enrichment: Default::default(),
            limits: Default::default(),
            source: None,
        })
    }
}
