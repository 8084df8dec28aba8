//! Command line (clap).
use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError, RunConfig};
use crate::enrich::container;

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
    /// Container enrichment (boxed: keeps `Command` small).
    #[command(flatten)]
    pub containers: Box<ContainerArgs>,
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
        let c = self.containers;
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
            containers: crate::enrich::container::ContainerConfig {
                enabled: !c.no_containers,
                cri_socket: container::socket_choice(
                    c.cri_socket.as_deref(),
                    container::CRI_SOCKETS,
                ),
                containerd_socket: container::socket_choice(
                    c.containerd_socket.as_deref(),
                    container::CONTAINERD_SOCKETS,
                ),
                docker_socket: container::socket_choice(
                    c.docker_socket.as_deref(),
                    container::DOCKER_SOCKETS,
                ),
                containerd_namespaces: c
                    .containerd_namespace
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                wait: c.container_wait,
                sweep_interval: c.container_sweep_interval.max(Duration::from_millis(50)),
                ..Default::default()
            },
        })
    }
}

/// Flags of the container stage (`container` object).
#[derive(clap::Args, Debug)]
pub struct ContainerArgs {
    /// Do not add `container` to events (no cgroup or runtime lookups).
    #[arg(long)]
    pub no_containers: bool,
    /// CRI runtime.v1 socket (containerd, CRI-O): a path, `auto` (usual paths) or `none`.
    #[arg(long, value_name = "PATH")]
    pub cri_socket: Option<String>,
    /// containerd socket for containers made outside CRI: a path, `auto` or `none`.
    #[arg(long, value_name = "PATH")]
    pub containerd_socket: Option<String>,
    /// Docker Engine API socket (Docker, or podman's compatible service): a path, `auto` or `none`.
    #[arg(long, value_name = "PATH")]
    pub docker_socket: Option<String>,
    /// containerd namespaces to search, comma-separated (after the one the cgroup path names).
    #[arg(long, default_value = "k8s.io,default,moby")]
    pub containerd_namespace: String,
    /// Longest time an event of a new container waits for its runtime metadata (`0` = never).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub container_wait: Duration,
    /// How often cache entries of removed containers are evicted.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub container_sweep_interval: Duration,
}
