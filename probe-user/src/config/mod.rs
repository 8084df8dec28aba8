//! Run configuration: what the flags and the config file ask for, validated. Its rooms: the
//! clap flags (`cli`), the YAML file (`file`) and how it merges under the flags (`merge`),
//! kinds, units and the one error type.
pub mod cli;
pub mod error;
pub mod file;
pub mod kinds;
pub mod merge;
pub mod units;

use std::{path::PathBuf, sync::Arc, time::Duration};

use probe_common::EventKind;
use serde::Deserialize;

use crate::families::flow::iface::ifindex;

use error::ConfigError;

/// Container enrichment: runtime sockets (`PATH`, `auto` or `none`) and the hold time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Enrichment {
    /// `false` turns container enrichment off (`--no-containers`).
    pub containers: Option<bool>,
    pub cri_socket: Option<String>,
    pub containerd_socket: Option<String>,
    /// Docker Engine API socket; podman's compatible service works too.
    pub docker_socket: Option<String>,
    /// containerd namespaces to look in, e.g. `k8s.io,default`.
    pub containerd_namespace: Option<String>,
    /// Longest hold of a brand-new container's events for its first lookup (e.g. `200ms`).
    pub container_wait: Option<String>,
    pub container_sweep_interval: Option<String>,
}

/// Resource bounds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most processes kept in the process table.
    pub process_table: Option<u64>,
    /// Most event batches queued between the drain and the pipeline.
    pub queue: Option<u64>,
    /// Most decoded events in that queue (the bound that holds memory under overload).
    pub queue_events: Option<u64>,
}

/// Builds the config again from where it came from (the command line and the file it names),
/// on SIGHUP.
#[derive(Clone)]
pub struct Source(Arc<dyn Fn() -> Result<RunConfig, ConfigError> + Send + Sync>);

impl Source {
    pub fn new(f: impl Fn() -> Result<RunConfig, ConfigError> + Send + Sync + 'static) -> Self {
        Source(Arc::new(f))
    }

    pub fn resolve(&self) -> Result<RunConfig, ConfigError> {
        (self.0)()
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source")
    }
}

/// Everything `tprobe run` needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub kinds: Vec<EventKind>,
    pub threads: bool,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    pub output: Option<PathBuf>,
    pub ringbuf_bytes: u32,
    pub host_name: String,
    pub btf_path: PathBuf,
    /// Longest time a quiet event waits in the ring buffer before userspace reads it.
    pub flush_interval: Duration,
    pub filters: crate::filter::FilterSpec,
    /// `--config`: reloaded on SIGHUP.
    pub config_path: Option<PathBuf>,
    pub enrichment: Enrichment,
    pub limits: Limits,
    /// The command line (and file) this came from, to build it again on SIGHUP.
    pub source: Option<Source>,
    /// File event settings (prefix filters, read-only opens).
    pub file: crate::families::file::FileOptions,
    /// Process context: ancestors, executable hashes.
    pub process: crate::families::process::ProcessOptions,
    /// Security event settings (signals reported, ptrace peeks).
    pub security: crate::families::security::SecurityOptions,
    /// Output format (`--format`) and readable lines (`--pretty`).
    pub format: crate::encode::format::Format,
    pub pretty: bool,
    /// Outputs besides `output` (`--sink`); none and no `output` means stdout.
    pub sinks: Vec<crate::sink::config::SinkConfig>,
    /// Container enrichment (`container` object).
    pub containers: crate::enrich::container::config::ContainerConfig,
    /// Metrics/health server, stall and shutdown limits, host procfs.
    pub service: crate::service::ServiceArgs,
    /// `--events` includes `alert` (or `all`): the analyze stage's alerts are written.
    pub alerts: bool,
    /// Sigma rules and IoC lists (`--rules`, `--ioc`, `analyze:` in the file).
    pub analyze: crate::analyze::AnalyzeConfig,
    /// Actions bound to rules, the exec deny list (`--respond`, `--deny-exec`, `respond:`).
    pub respond: crate::analyze::respond::config::RespondConfig,
    /// XDP flow telemetry, when `--xdp-iface` names interfaces.
    pub xdp: Option<crate::families::flow::XdpConfig>,
}

/// Checks the XDP settings: interfaces exist, timeouts are sane, flow events are wanted.
pub fn xdp_config(
    kinds: &[EventKind],
    mut x: crate::families::flow::XdpConfig,
) -> Result<Option<crate::families::flow::XdpConfig>, ConfigError> {
    x.ifaces.retain(|i| !i.trim().is_empty());
    let mut seen = Vec::new();
    x.ifaces.retain(|i| {
        let new = !seen.contains(i);
        seen.push(i.clone());
        new
    });
    if x.ifaces.is_empty() {
        return Ok(None);
    }
    for i in &x.ifaces {
        if ifindex(i) == 0 {
            return Err(ConfigError::Xdp(format!(
                "--xdp-iface {i}: no such network interface"
            )));
        }
    }
    if !kinds
        .iter()
        .any(|k| matches!(k, EventKind::FlowEnd | EventKind::FlowUpdate))
    {
        return Err(ConfigError::Xdp(
            "--xdp-iface needs flow events: add `flow` to --events".into(),
        ));
    }
    if x.idle_timeout.is_zero() || x.active_timeout.is_zero() {
        return Err(ConfigError::Xdp(
            "--flow-idle-timeout and --flow-active-timeout must be above zero".into(),
        ));
    }
    if x.table_size == 0 {
        return Err(ConfigError::Xdp(
            "--flow-table-size must be at least 1".into(),
        ));
    }
    Ok(Some(x))
}

#[cfg(test)]
mod tests;
