//! Command line (clap).
use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use super::{
    error::ConfigError,
    kinds::parse_kinds,
    units::{check_ring_size, parse_size},
    xdp_config, RunConfig,
};
use crate::{
    enrich::container::config as container,
    filter::{self, FilterSpec, Scope},
};

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

// Parsed once per run: boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
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
    /// Sigma rules: `check` validates without loading any program, `list` shows them.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Storylines from recorded events: a process's ancestors, its descendants and what each
    /// did, as a tree, JSON or an HTML page.
    Investigate(crate::investigate::cmd::InvestigateArgs),
    /// Talk to a running probe's respond socket: list what is frozen or isolated, release it,
    /// or kill by entity id or container id.
    #[command(subcommand)]
    Respond(crate::analyze::respond::control::RespondCommand),
    /// Baseline profiles: `show FILE`, `merge A B... -o OUT`, `diff A B`.
    #[command(subcommand)]
    Baseline(crate::analyze::baseline::args::BaselineCommand),
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Load the rules (files or folders) as `run --rules` would; print the count per category
    /// and every refused rule with its reason. Exit 1 when any was refused.
    Check {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Print id, title, level and ATT&CK tags of every rule that loads.
    List {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
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
    /// Kernel ring buffer size (power of two, e.g. `16M`). Its pages are mapped twice into the
    /// probe, so they count double in its RSS.
    #[arg(long, default_value = "8M")]
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
    pub file: Box<crate::families::file::FileArgs>,
    #[command(flatten)]
    pub process: Box<crate::families::process::ProcessArgs>,
    #[command(flatten)]
    pub security: Box<crate::families::security::SecurityArgs>,
    #[command(flatten)]
    pub service: Box<crate::service::ServiceArgs>,
    /// The respond stage: actions bound to rules, the exec deny list.
    #[command(flatten)]
    pub respond: Box<crate::analyze::respond::config::RespondArgs>,
    /// Watch received traffic on these interfaces with XDP (comma-separated): flow.* events.
    #[arg(long, value_delimiter = ',')]
    pub xdp_iface: Vec<String>,
    /// XDP attach mode: auto (native when the driver has it), skb (generic), native (driver).
    #[arg(long, value_enum, default_value = "auto")]
    pub xdp_mode: crate::families::flow::Mode,
    /// Replace an XDP program already attached to an --xdp-iface (e.g. left by a crashed run).
    #[arg(long)]
    pub xdp_replace: bool,
    /// A flow still active after this long gets a flow.update (and again every period).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub flow_active_timeout: Duration,
    /// A flow without packets for this long ends (flow.end, reason idle_timeout).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub flow_idle_timeout: Duration,
    /// Flows the kernel keeps at once; beyond it the least recently used is evicted (counted).
    #[arg(long, default_value_t = probe_common::FLOW_ENTRIES)]
    pub flow_table_size: u32,
    /// Container enrichment (boxed: keeps `Command` small).
    #[command(flatten)]
    pub containers: Box<ContainerArgs>,
    /// Output format: `native` (tprobe schema), `ecs` (Elastic Common Schema) or `ocsf`.
    #[arg(long, value_enum, default_value = "native")]
    pub format: crate::encode::format::Format,
    /// One readable line per event instead of JSON (colours on a terminal).
    #[arg(long)]
    pub pretty: bool,
    /// Where events go; repeat for several: `stdout`, `file:PATH[,max_size=64M,keep=5,gzip]`,
    /// `otlp:http://HOST:4318[,spool=DIR,spool_max=256M,queue=N,batch=N,gzip=false,...]`,
    /// `syslog:tcp://HOST:PORT|udp://HOST:PORT|unix:///PATH[,facility=local0,app_name=..]`.
    #[arg(long = "sink", value_name = "SPEC", value_parser = crate::sink::config::parse_sink)]
    pub sinks: Vec<crate::sink::config::SinkConfig>,
    /// Sigma rules: a `.yml`/`.yaml` file or a folder of them (repeat for several). Alerts are
    /// `alert` events; rules that tprobe cannot feed are refused with the reason.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// IoC list: one SHA-256, IP, CIDR or domain per line, or CSV `indicator,name` (repeat
    /// for several).
    #[arg(long = "ioc", value_name = "FILE")]
    pub ioc: Vec<PathBuf>,
    /// Baselines (`--baseline DIR`, `--learn-for`, ...; docs/baselines.md).
    #[command(flatten)]
    pub baseline: Box<crate::analyze::baseline::args::BaselineArgs>,
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
        let ring = check_ring_size(parse_size(&self.ringbuf_size)?)?;
        let filters = filters_from_args(&self)?;
        let host_name = self.host_name.unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown".into())
        });
        let kinds = parse_kinds(&self.events)?;
        let alerts = super::kinds::wants_alerts(&self.events);
        let xdp = xdp_config(
            &kinds,
            crate::families::flow::XdpConfig {
                ifaces: self.xdp_iface,
                mode: self.xdp_mode,
                replace: self.xdp_replace,
                active_timeout: self.flow_active_timeout,
                idle_timeout: self.flow_idle_timeout,
                table_size: self.flow_table_size,
            },
        )?;
        let c = self.containers;
        let pr = self.process;
        let process = crate::families::process::ProcessOptions {
            ancestors: pr.ancestors,
            hash: crate::families::process::HashConfig {
                enabled: !pr.no_hash,
                max_size: parse_size(&pr.hash_max_size).map_err(|e| ConfigError::Flag {
                    flag: "--hash-max-size",
                    problem: e.to_string(),
                })?,
                wait: pr.hash_wait,
            },
        };
        Ok(RunConfig {
            process,
            xdp,
            kinds,
            threads: self.threads,
            duration: self.duration,
            count: self.count,
            output: self.output,
            ringbuf_bytes: ring,
            host_name,
            btf_path: self.btf,
            flush_interval: self.flush_interval,
            service: *self.service,
            containers: crate::enrich::container::config::ContainerConfig {
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
            alerts,
            analyze: crate::analyze::AnalyzeConfig {
                rules: self.rules,
                ioc: self.ioc,
                baseline: (*self.baseline)
                    .into_config()
                    .map_err(|e| ConfigError::Flag {
                        flag: "--baseline",
                        problem: e.to_string(),
                    })?,
            },
            respond: self.respond.into_config()?,
            format: self.format,
            pretty: self.pretty,
            sinks: self.sinks,
            file: (*self.file).into_options()?,
            security: (*self.security).into_options()?,
            filters,
            config_path: self.config,
            enrichment: Default::default(),
            limits: Default::default(),
            source: None,
        })
    }
}

/// Flags of the container stage (`container` object).
#[derive(clap::Args, Clone, Debug)]
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

/// Each value of a list through `parse`, errors naming `what`.
pub fn each<T>(
    vals: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
    err: impl Fn(String) -> ConfigError,
) -> Result<Vec<T>, ConfigError> {
    let mut out = Vec::new();
    for v in vals.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        out.push(parse(v).map_err(&err)?);
    }
    Ok(out)
}

pub fn flag_err(flag: &'static str) -> impl Fn(String) -> ConfigError {
    move |problem| ConfigError::Flag { flag, problem }
}

/// Filters from the flags alone (errors name the flag).
pub fn filters_from_args(a: &RunArgs) -> Result<FilterSpec, ConfigError> {
    let spec = FilterSpec {
        pids: each(&a.pid, filter::parse_pid, flag_err("--pid"))?,
        follow: a.follow,
        uids: each(&a.uid, filter::parse_uid, flag_err("--uid"))?,
        cgroups: each(&a.cgroup, filter::parse_cgroup, flag_err("--cgroup"))?,
        comm: each(&a.comm, filter::parse_glob, flag_err("--comm"))?,
        exe: each(&a.exe, filter::parse_glob, flag_err("--exe"))?,
        container: each(&a.container, |s| Ok(s.to_owned()), flag_err("--container"))?,
        pod: each(&a.pod, filter::parse_pod, flag_err("--pod"))?,
        namespace: each(&a.namespace, |s| Ok(s.to_owned()), flag_err("--namespace"))?,
        scope: match (a.host_only, a.containers_only) {
            (true, true) => {
                return Err(ConfigError::Flag {
                    flag: "--host-only",
                    problem: "cannot be combined with --containers-only".into(),
                })
            }
            (true, false) => Scope::HostOnly,
            (false, true) => Scope::ContainersOnly,
            _ => Scope::All,
        },
    };
    if spec.follow && spec.pids.is_empty() {
        return Err(ConfigError::Flag {
            flag: "--follow",
            problem: "needs --pid (the processes whose descendants to follow)".into(),
        });
    }
    Ok(spec)
}
