//! The YAML config file (`tprobe run --config FILE`): every `run` flag, grouped in sections
//! (filters, file, xdp, enrichment, service, limits). Flags given on the command line win.
//! Errors name the file, the key and the problem (unknown key, wrong type, bad value).
use std::{collections::BTreeSet, fmt, path::Path, path::PathBuf, time::Duration};

use serde::{de, Deserialize, Deserializer};

use crate::{
    cli::RunArgs,
    config::{self, ConfigError, RunConfig},
    filter::{self, FilterSpec, Scope},
};

/// A string, number or bool from YAML, kept as text (`ringbuf_size: 8M` or `4096`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scalar(pub String);

struct ScalarVisitor;

impl<'de> de::Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(v.to_owned()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A list: a YAML sequence of scalars, one scalar, or a comma-separated string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct List(pub Vec<String>);

struct ListVisitor;

impl<'de> de::Visitor<'de> for ListVisitor {
    type Value = List;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list, or a comma-separated string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<List, E> {
        Ok(List(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<List, E> {
        Ok(List(vec![v.to_string()]))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<List, E> {
        Ok(List(vec![v.to_string()]))
    }
    fn visit_unit<E: de::Error>(self) -> Result<List, E> {
        Ok(List::default())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<List, A::Error> {
        let mut out = Vec::new();
        while let Some(Scalar(s)) = seq.next_element::<Scalar>()? {
            out.push(s);
        }
        Ok(List(out))
    }
}

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListVisitor)
    }
}

/// The file, as written. Every key is optional; absent keys keep the flag defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub events: Option<List>,
    pub threads: Option<bool>,
    pub duration: Option<Scalar>,
    pub count: Option<u64>,
    pub output: Option<PathBuf>,
    pub ringbuf_size: Option<Scalar>,
    pub flush_interval: Option<Scalar>,
    pub host_name: Option<String>,
    pub btf: Option<PathBuf>,
    pub filters: Option<FiltersFile>,
    pub enrichment: Option<Enrichment>,
    pub limits: Option<Limits>,
    /// `native`, `ecs` or `ocsf` (`--format`).
    pub format: Option<String>,
    pub pretty: Option<bool>,
    /// `--sink` specs, e.g. `otlp:http://collector:4318,spool=/var/lib/tprobe/spool`: a YAML
    /// list (a spec has commas of its own).
    pub sinks: Option<Vec<String>>,
    pub file: Option<FileEventsFile>,
    pub xdp: Option<XdpFile>,
    pub service: Option<ServiceFile>,
}

/// `file:` (file events): `--file-include`, `--file-exclude`, `--file-reads`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEventsFile {
    pub include: Option<List>,
    pub exclude: Option<List>,
    pub reads: Option<bool>,
}

/// `xdp:` (flow telemetry): the `--xdp-*` and `--flow-*` flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdpFile {
    pub ifaces: Option<List>,
    pub mode: Option<String>,
    pub replace: Option<bool>,
    pub active_timeout: Option<Scalar>,
    pub idle_timeout: Option<Scalar>,
    pub table_size: Option<u32>,
}

/// `service:` (`/metrics`, `/healthz`, shutdown, host procfs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// Listen address, or `none` for no server.
    pub metrics_addr: Option<String>,
    pub stall_timeout: Option<Scalar>,
    pub shutdown_timeout: Option<Scalar>,
    pub proc_root: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersFile {
    pub pid: Option<List>,
    pub follow: Option<bool>,
    pub uid: Option<List>,
    pub cgroup: Option<List>,
    pub comm: Option<List>,
    pub exe: Option<List>,
    pub container: Option<List>,
    pub pod: Option<List>,
    pub namespace: Option<List>,
    pub host_only: Option<bool>,
    pub containers_only: Option<bool>,
}

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
}

/// The commented default printed by `tprobe config --default`.
pub const DEFAULT_YAML: &str = r#"# tprobe run --config FILE
# Every key is optional; a flag given on the command line overrides the key of the same name.
# `kill -HUP <tprobe pid>` reloads this file: events, threads, filters and the output switch
# without losing events (other keys need a restart).

# Kinds or categories to report: a list or a comma-separated string (`tprobe events`).
events: all
# Also report thread creation and thread exits.
threads: false
# Stop after this long (e.g. 30s, 5m); null runs until Ctrl-C/SIGTERM.
duration: null
# Stop after this many events (probe.* not counted).
count: null
# Append JSON lines to this file (created mode 0600); null writes to stdout.
output: null
# Kernel ring buffer size: a power of two, a multiple of the page size.
ringbuf_size: 8M
# Longest time a quiet event waits in the ring buffer.
flush_interval: 100ms
# host.name of every event; null takes $NODE_NAME, then the kernel's host name.
host_name: null
# Kernel BTF used to find struct offsets.
btf: /sys/kernel/btf/vmlinux

# Values of one key are alternatives; different keys must all match.
filters:
  # Only these processes (decided in the kernel).
  pid: []
  # With pid: also every descendant, added in the kernel when it forks.
  follow: false
  # Only these users: uids or names (decided in the kernel).
  uid: []
  # Only tasks in these cgroups or below: ids, v2 paths such as /kubepods, or directories.
  cgroup: []
  # Only these command names (shell globs, e.g. "py*").
  comm: []
  # Only these executables (absolute paths or globs, e.g. "/usr/bin/*").
  exe: []
  # Only these containers: full or short id (4+ hex digits), or name.
  container: []
  # Only these pods: NAMESPACE/NAME.
  pod: []
  # Only pods in these Kubernetes namespaces.
  namespace: []
  # Only processes outside containers / only processes in containers.
  host_only: false
  containers_only: false

# Output format: native (tprobe schema), ecs or ocsf; pretty: readable lines instead of JSON.
format: native
pretty: false
# Where events go, several at once (`--sink`): stdout, file:PATH[,max_size=64M,keep=5,gzip],
# otlp:http://HOST:4318[,spool=DIR,...], syslog:tcp://HOST:PORT. Empty: stdout (or `output`).
sinks: []

# File events.
file:
  # Only paths under these prefixes (empty: everywhere); none under these.
  include: []
  exclude: [/dev/null, /dev/pts]
  # Also report read-only opens (the noisiest kind; off on a busy node).
  reads: false

# XDP flow telemetry on these interfaces (add `flow` to events).
xdp:
  ifaces: []
  # auto, skb (generic) or native (driver).
  mode: auto
  # Replace an XDP program left attached by a crashed run.
  replace: false
  active_timeout: 60s
  idle_timeout: 15s
  table_size: 65536

# Container and Kubernetes metadata from the runtimes (sockets: a path, auto or none).
enrichment:
  containers: true
  cri_socket: auto
  containerd_socket: auto
  docker_socket: auto
  containerd_namespace: k8s.io,default,moby
  # Longest hold of a brand-new container's first events while its lookup runs.
  container_wait: 200ms
  container_sweep_interval: 10s

# /metrics and /healthz (an address, or none), shutdown budget, the host's procfs.
service:
  metrics_addr: 127.0.0.1:9810
  stall_timeout: 10s
  shutdown_timeout: 20s
  proc_root: /proc

limits:
  # Most processes kept in the process table.
  process_table: 65536
  # Most event batches queued between the ring buffer reader and the pipeline.
  queue: 1024
"#;

/// Flags the user gave (on the command line or through their environment variable): clap
/// argument ids, i.e. `RunArgs` field names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Given(pub BTreeSet<String>);

impl Given {
    pub fn from_matches(m: &clap::ArgMatches) -> Self {
        use clap::parser::ValueSource;
        Given(
            m.ids()
                .filter(|id| {
                    matches!(
                        m.value_source(id.as_str()),
                        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                    )
                })
                .map(|id| id.as_str().to_owned())
                .collect(),
        )
    }

    fn has(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

/// The command line and the file it names: enough to build the config again on SIGHUP.
#[derive(Clone, Debug)]
pub struct Source {
    pub args: RunArgs,
    pub given: Given,
}

impl Source {
    pub fn resolve(&self) -> Result<RunConfig, ConfigError> {
        resolve(&self.args, &self.given)
    }
}

fn file_err(path: &Path, key: &str, problem: impl fmt::Display) -> ConfigError {
    ConfigError::File {
        path: path.display().to_string(),
        problem: format!("key `{key}`: {problem}"),
    }
}

/// Reads and type-checks the file.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.display().to_string(),
        problem: format!("cannot read it: {e}"),
    })?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    // An empty file (or only comments) is an empty config, not an error.
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Ok(FileConfig::default());
    }
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let raw = e.inner().to_string();
        // serde_norway puts its own path in front ("filters: unknown field ..."): drop it.
        let inner = ["unknown field ", "invalid type: ", "invalid value: "]
            .iter()
            .filter_map(|m| raw.find(m))
            .min()
            .map(|i| raw[i..].to_owned())
            .unwrap_or(raw);
        // "... at line 2 column 3" goes last, after our wording.
        let (inner, at) = match inner.rfind(" at line ") {
            Some(i) => (inner[..i].to_owned(), format!(" ({})", &inner[i + 4..])),
            None => (inner, String::new()),
        };
        let problem = if let Some(rest) = inner.strip_prefix("unknown field ") {
            // "`evnts`, expected one of `events`, ... at line 2 column 1"
            let (name, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
            let known = expected
                .trim_start_matches(" one of ")
                .trim_start_matches(' ');
            format!(
                "unknown key {}{}",
                name.replace('`', "\""),
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (known keys: {})", known.replace('`', ""))
                }
            )
        } else if let Some(rest) = inner.strip_prefix("invalid type: ") {
            format!("wrong type: {rest}")
        } else if let Some(rest) = inner.strip_prefix("invalid value: ") {
            format!("bad value: {rest}")
        } else {
            inner.clone()
        };
        let known = ["unknown key", "wrong type", "bad value"]
            .iter()
            .any(|k| problem.starts_with(k));
        if !known {
            ConfigError::File {
                path: path.display().to_string(),
                problem: format!("not valid YAML: {problem}{at}"),
            }
        } else if key == "." || key.is_empty() {
            ConfigError::File {
                path: path.display().to_string(),
                problem: if problem.starts_with("unknown key") {
                    format!("{problem}{at}")
                } else {
                    format!("the file must be a mapping of keys to values ({problem}){at}")
                },
            }
        } else if problem.starts_with("unknown key") {
            // The path ends at the unknown key itself; name the section it sits in.
            ConfigError::File {
                path: path.display().to_string(),
                problem: match key.rsplit_once('.') {
                    Some((section, _)) => format!("in `{section}`: {problem}{at}"),
                    None => format!("{problem}{at}"),
                },
            }
        } else {
            file_err(path, &key, format!("{problem}{at}"))
        }
    })
}

/// Each value of a list through `parse`, errors naming `what`.
fn each<T>(
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

fn flag_err(flag: &'static str) -> impl Fn(String) -> ConfigError {
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

/// Merges the file named by `--config` under the flags the user gave, validates the result.
pub fn resolve(args: &RunArgs, given: &Given) -> Result<RunConfig, ConfigError> {
    let mut cfg = merge(args, given)?;
    cfg.source = Some(Source {
        args: args.clone(),
        given: given.clone(),
    });
    Ok(cfg)
}

fn merge(args: &RunArgs, given: &Given) -> Result<RunConfig, ConfigError> {
    let Some(path) = args.config.clone() else {
        return args.clone().into_config();
    };
    let file = load(&path)?;
    let p = path.as_path();
    let mut a = args.clone();
    let take = |id: &str| !given.has(id);

    if let (Some(v), true) = (&file.events, take("events")) {
        let joined = v.0.join(",");
        config::parse_kinds(&joined)
            .map_err(|e| file_err(p, "events", format!("bad value: {e}")))?;
        a.events = joined;
    }
    if let (Some(v), true) = (file.threads, take("threads")) {
        a.threads = v;
    }
    if let (Some(v), true) = (&file.duration, take("duration")) {
        a.duration = Some(parse_duration(&v.0).map_err(|e| file_err(p, "duration", e))?);
    }
    if let (Some(v), true) = (file.count, take("count")) {
        a.count = Some(v);
    }
    if let (Some(v), true) = (&file.output, take("output")) {
        a.output = Some(v.clone());
    }
    if let (Some(v), true) = (&file.ringbuf_size, take("ringbuf_size")) {
        config::parse_size(&v.0)
            .and_then(config::check_ring_size)
            .map_err(|e| file_err(p, "ringbuf_size", format!("bad value: {e}")))?;
        a.ringbuf_size = v.0.clone();
    }
    if let (Some(v), true) = (&file.flush_interval, take("flush_interval")) {
        a.flush_interval = parse_duration(&v.0).map_err(|e| file_err(p, "flush_interval", e))?;
    }
    if let (Some(v), true) = (&file.host_name, take("host_name")) {
        a.host_name = Some(v.clone());
    }
    if let (Some(v), true) = (&file.btf, take("btf")) {
        a.btf = v.clone();
    }
    if let Some(f) = &file.filters {
        // Each list is checked here so the message names the key, then handed to the flags.
        macro_rules! list {
            ($field:ident, $key:literal, $parse:expr) => {
                if let (Some(v), true) = (&f.$field, take(stringify!($field))) {
                    each(&v.0, $parse, |e| {
                        file_err(p, $key, format!("bad value: {e}"))
                    })?;
                    a.$field = v.0.clone();
                }
            };
        }
        list!(pid, "filters.pid", filter::parse_pid);
        list!(uid, "filters.uid", filter::parse_uid);
        list!(cgroup, "filters.cgroup", filter::parse_cgroup);
        list!(comm, "filters.comm", filter::parse_glob);
        list!(exe, "filters.exe", filter::parse_glob);
        list!(container, "filters.container", |s: &str| Ok::<_, String>(
            s.to_owned()
        ));
        list!(pod, "filters.pod", filter::parse_pod);
        list!(namespace, "filters.namespace", |s: &str| Ok::<_, String>(
            s.to_owned()
        ));
        if let (Some(v), true) = (f.follow, take("follow")) {
            a.follow = v;
        }
        // The two scope flags are one setting: either on the command line overrides both.
        if take("host_only") && take("containers_only") {
            let (h, c) = (
                f.host_only.unwrap_or(false),
                f.containers_only.unwrap_or(false),
            );
            if h && c {
                return Err(file_err(
                    p,
                    "filters.host_only",
                    "bad value: cannot be true together with filters.containers_only",
                ));
            }
            a.host_only = h;
            a.containers_only = c;
        }
        if a.follow && a.pid.is_empty() {
            return Err(file_err(
                p,
                "filters.follow",
                "bad value: needs filters.pid (the processes whose descendants to follow)",
            ));
        }
    }
    if let (Some(v), true) = (&file.format, take("format")) {
        a.format = clap::ValueEnum::from_str(v, true)
            .map_err(|_| file_err(p, "format", "bad value: use native, ecs or ocsf"))?;
    }
    if let (Some(v), true) = (file.pretty, take("pretty")) {
        a.pretty = v;
    }
    if let (Some(v), true) = (&file.sinks, take("sinks")) {
        a.sinks = v
            .iter()
            .map(|spec| crate::sink::config::parse_sink(spec))
            .collect::<Result<_, _>>()
            .map_err(|e| file_err(p, "sinks", format!("bad value: {e}")))?;
    }
    if let Some(f) = &file.file {
        if let (Some(v), true) = (&f.include, take("file_include")) {
            a.file.file_include = v.0.clone();
        }
        if let (Some(v), true) = (&f.exclude, take("file_exclude")) {
            a.file.file_exclude = v.0.clone();
        }
        if let (Some(v), true) = (f.reads, take("file_reads")) {
            a.file.file_reads = v;
        }
    }
    if let Some(x) = &file.xdp {
        if let (Some(v), true) = (&x.ifaces, take("xdp_iface")) {
            a.xdp_iface = v.0.clone();
        }
        if let (Some(v), true) = (&x.mode, take("xdp_mode")) {
            a.xdp_mode = clap::ValueEnum::from_str(v, true)
                .map_err(|_| file_err(p, "xdp.mode", "bad value: use auto, skb or native"))?;
        }
        if let (Some(v), true) = (x.replace, take("xdp_replace")) {
            a.xdp_replace = v;
        }
        if let (Some(v), true) = (&x.active_timeout, take("flow_active_timeout")) {
            a.flow_active_timeout =
                parse_duration(&v.0).map_err(|e| file_err(p, "xdp.active_timeout", e))?;
        }
        if let (Some(v), true) = (&x.idle_timeout, take("flow_idle_timeout")) {
            a.flow_idle_timeout =
                parse_duration(&v.0).map_err(|e| file_err(p, "xdp.idle_timeout", e))?;
        }
        if let (Some(v), true) = (x.table_size, take("flow_table_size")) {
            a.flow_table_size = v;
        }
    }
    if let Some(e) = &file.enrichment {
        let c = &mut a.containers;
        if let (Some(v), true) = (e.containers, take("no_containers")) {
            c.no_containers = !v;
        }
        for (key, id, value, slot) in [
            (
                "enrichment.cri_socket",
                "cri_socket",
                &e.cri_socket,
                &mut c.cri_socket,
            ),
            (
                "enrichment.containerd_socket",
                "containerd_socket",
                &e.containerd_socket,
                &mut c.containerd_socket,
            ),
            (
                "enrichment.docker_socket",
                "docker_socket",
                &e.docker_socket,
                &mut c.docker_socket,
            ),
        ] {
            if let (Some(v), true) = (value, take(id)) {
                if v.trim().is_empty() {
                    return Err(file_err(p, key, "bad value: a path, `auto` or `none`"));
                }
                *slot = Some(v.clone());
            }
        }
        if let (Some(v), true) = (&e.containerd_namespace, take("containerd_namespace")) {
            c.containerd_namespace = v.clone();
        }
        if let (Some(v), true) = (&e.container_wait, take("container_wait")) {
            c.container_wait =
                parse_duration(v).map_err(|x| file_err(p, "enrichment.container_wait", x))?;
        }
        if let (Some(v), true) = (
            &e.container_sweep_interval,
            take("container_sweep_interval"),
        ) {
            c.container_sweep_interval = parse_duration(v)
                .map_err(|x| file_err(p, "enrichment.container_sweep_interval", x))?;
        }
    }
    if let Some(sv) = &file.service {
        let s = &mut a.service;
        if let (Some(v), true) = (&sv.metrics_addr, take("metrics_addr") && take("no_metrics")) {
            if v.trim() == "none" {
                s.no_metrics = true;
            } else {
                s.metrics_addr = Some(v.trim().parse().map_err(|_| {
                    file_err(p, "service.metrics_addr", "bad value: IP:PORT or `none`")
                })?);
            }
        }
        if let (Some(v), true) = (&sv.stall_timeout, take("stall_timeout")) {
            s.stall_timeout =
                parse_duration(&v.0).map_err(|e| file_err(p, "service.stall_timeout", e))?;
        }
        if let (Some(v), true) = (&sv.shutdown_timeout, take("shutdown_timeout")) {
            s.shutdown_timeout =
                parse_duration(&v.0).map_err(|e| file_err(p, "service.shutdown_timeout", e))?;
        }
        if let (Some(v), true) = (&sv.proc_root, take("proc_root")) {
            s.proc_root = v.clone();
        }
    }
    if let Some(l) = &file.limits {
        for (k, v) in [
            ("limits.process_table", l.process_table),
            ("limits.queue", l.queue),
        ] {
            if v == Some(0) {
                return Err(file_err(p, k, "bad value: must be at least 1"));
            }
        }
    }
    let mut cfg = a.into_config()?;
    cfg.enrichment = file.enrichment.unwrap_or_default();
    cfg.limits = file.limits.unwrap_or_default();
    Ok(cfg)
}

/// `tprobe config --check FILE`: validates the file alone (no flags) and describes the
/// settings it gives, as JSON.
pub fn check_file(path: &Path) -> Result<String, ConfigError> {
    use clap::Parser as _;
    let argv = ["tprobe", "run", "--config", &path.display().to_string()].map(str::to_owned);
    let crate::cli::Command::Run(args) = crate::cli::Cli::parse_from(argv).command else {
        unreachable!("parsed a run command line")
    };
    let mut given = Given::default();
    given.0.insert("config".into());
    let c = resolve(&args, &given)?;
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "events": c.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "threads": c.threads,
        "duration_s": c.duration.map(|d| d.as_secs_f64()),
        "count": c.count,
        "output": c.output.map(|p| p.display().to_string()),
        "ringbuf_bytes": c.ringbuf_bytes,
        "flush_interval_ms": c.flush_interval.as_millis() as u64,
        "host_name": c.host_name,
        "btf": c.btf_path.display().to_string(),
        "filters": c.filters,
        "enrichment": c.enrichment,
        "limits": c.limits,
    }))
    .unwrap_or_default())
}

/// `30s`, `5m`, `100ms`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("bad value: {s:?} is not a duration like 30s, 5m or 100ms ({e})"))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(extra: &[&str]) -> (RunArgs, Given) {
        let mut argv = vec!["tprobe", "run"];
        argv.extend(extra);
        let m = <Cli as clap::CommandFactory>::command().get_matches_from(&argv);
        let given = Given::from_matches(m.subcommand_matches("run").unwrap());
        let Command::Run(a) = Cli::parse_from(&argv).command else {
            panic!()
        };
        (a, given)
    }

    fn with_file(text: &str, extra: &[&str]) -> Result<RunConfig, ConfigError> {
        // Unique per call: tests run in parallel.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tprobe-cfg-{}-{n}", std::process::id()));
        std::fs::write(&dir, text).unwrap();
        let mut v = vec!["--config", dir.to_str().unwrap()];
        v.extend(extra);
        let (a, g) = args(&v);
        let r = resolve(&a, &g);
        let _ = std::fs::remove_file(&dir);
        r
    }

    fn msg(r: Result<RunConfig, ConfigError>) -> String {
        r.expect_err("an error").to_string()
    }

    #[test]
    fn default_file_equals_no_file() {
        let (a, g) = args(&[]);
        let plain = resolve(&a, &g).unwrap();
        let from_file = with_file(DEFAULT_YAML, &[]).unwrap();
        assert_eq!(plain.kinds, from_file.kinds);
        assert_eq!(plain.ringbuf_bytes, from_file.ringbuf_bytes);
        assert_eq!(plain.flush_interval, from_file.flush_interval);
        assert_eq!(plain.filters, from_file.filters);
        assert_eq!(plain.btf_path, from_file.btf_path);
        assert_eq!(from_file.limits.process_table, Some(65536));
        // Every key of the file format appears in the default.
        for key in [
            "events:",
            "threads:",
            "duration:",
            "count:",
            "output:",
            "ringbuf_size:",
            "flush_interval:",
            "host_name:",
            "btf:",
            "filters:",
            "pid:",
            "follow:",
            "uid:",
            "cgroup:",
            "comm:",
            "exe:",
            "container:",
            "pod:",
            "namespace:",
            "host_only:",
            "containers_only:",
            "enrichment:",
            "cri_socket:",
            "limits:",
            "process_table:",
            "format:",
            "sinks:",
            "file:",
            "xdp:",
            "service:",
        ] {
            assert!(DEFAULT_YAML.contains(key), "{key}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let f = "events: [process.exec]\ncount: 5\nfilters:\n  comm: [curl, wget]\n  uid: root\n";
        let c = with_file(f, &[]).unwrap();
        assert_eq!(c.kinds, vec![probe_common::EventKind::ProcessExec]);
        assert_eq!(c.count, Some(5));
        assert_eq!(c.filters.comm, vec!["curl", "wget"]);
        assert_eq!(c.filters.uids, vec![0]);
        let c = with_file(f, &["--count", "9", "--comm", "sh", "--events", "process"]).unwrap();
        assert_eq!(c.count, Some(9));
        assert_eq!(c.filters.comm, vec!["sh"]);
        assert_eq!(c.kinds, crate::config::parse_kinds("process").unwrap());
        assert_eq!(c.filters.uids, vec![0], "keys not overridden stay");
        let c = with_file("filters:\n  host_only: true\n", &["--containers-only"]).unwrap();
        assert_eq!(c.filters.scope, Scope::ContainersOnly);
        let c = with_file("events: process.exit, process.exec\nduration: 30\n", &[]).unwrap();
        assert_eq!(c.kinds.len(), 2);
        assert_eq!(c.duration, Some(Duration::from_secs(30)));
        assert!(with_file("# nothing\n", &[]).is_ok());
    }

    #[test]
    fn errors_name_key_and_problem() {
        let m = msg(with_file("evnts: all\n", &[]));
        assert!(
            m.contains("unknown key \"evnts\"") && m.contains("events"),
            "{m}"
        );
        let m = msg(with_file("filters:\n  pids: [1]\n", &[]));
        assert!(m.contains("in `filters`: unknown key \"pids\""), "{m}");
        let m = msg(with_file("threads: yes please\n", &[]));
        assert!(m.contains("key `threads`: wrong type"), "{m}");
        let m = msg(with_file("count: many\n", &[]));
        assert!(m.contains("key `count`: wrong type"), "{m}");
        let m = msg(with_file("filters:\n  pid: [12, abc]\n", &[]));
        assert!(
            m.contains("key `filters.pid`: bad value") && m.contains("abc"),
            "{m}"
        );
        let m = msg(with_file("ringbuf_size: 3M\n", &[]));
        assert!(m.contains("key `ringbuf_size`: bad value"), "{m}");
        let m = msg(with_file("events: [process.nope]\n", &[]));
        assert!(
            m.contains("key `events`: bad value") && m.contains("process.nope"),
            "{m}"
        );
        let m = msg(with_file("duration: soon\n", &[]));
        assert!(m.contains("key `duration`: bad value"), "{m}");
        let m = msg(with_file("filters:\n  follow: true\n", &[]));
        assert!(m.contains("key `filters.follow`"), "{m}");
        let m = msg(with_file("filters: [1, 2]\n", &[]));
        assert!(m.contains("key `filters`: wrong type"), "{m}");
        let m = msg(with_file("events: [\n", &[]));
        assert!(m.contains("not valid YAML"), "{m}");
        let m = msg(with_file("limits:\n  queue: 0\n", &[]));
        assert!(m.contains("key `limits.queue`: bad value"), "{m}");
        assert!(msg(with_file("filters:\n  pod: [web]\n", &[])).contains("NAMESPACE/NAME"));
        let m = msg(with_file("- events\n", &[]));
        assert!(m.contains("must be a mapping"), "{m}");
        let m = msg(with_file("threads: true\nevnts: all\n", &[]));
        assert!(m.ends_with("(line 2 column 1)"), "{m}");
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let (a, g) = args(&["--pid", "12,x"]);
        let m = resolve(&a, &g).unwrap_err().to_string();
        assert!(m.starts_with("--pid:") && m.contains("\"x\""), "{m}");
        let (a, g) = args(&["--follow"]);
        assert!(resolve(&a, &g)
            .unwrap_err()
            .to_string()
            .contains("needs --pid"));
        let (a, g) = args(&["--pid", "1,2", "--pid", "3", "--follow"]);
        let c = resolve(&a, &g).unwrap();
        assert_eq!(c.filters.pids, vec![1, 2, 3]);
        assert!(c.filters.follow);
    }

    #[test]
    fn every_section_reaches_the_run_config() {
        let f = "format: ecs\nsinks:\n  - file:/tmp/x.log,keep=3\n  - stdout\nfile:\n  include: [/etc]\n  reads: true\nenrichment:\n  cri_socket: none\n  containerd_namespace: k8s.io\n  container_wait: 1s\nservice:\n  metrics_addr: none\n  shutdown_timeout: 5s\nlimits:\n  process_table: 100\n  queue: 8\n";
        let c = with_file(f, &[]).unwrap();
        assert_eq!(c.format, crate::encode::format::Format::Ecs);
        assert_eq!(c.sinks.len(), 2);
        assert!(c.file.reads);
        assert!(c.file.prefixes.contains(&(b"/etc".to_vec(), true)));
        assert_eq!(c.containers.cri_socket, None);
        assert_eq!(c.containers.containerd_namespaces, vec!["k8s.io"]);
        assert_eq!(c.containers.wait, Duration::from_secs(1));
        assert!(c.service.listen().is_none());
        assert_eq!(c.service.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(
            (c.limits.process_table, c.limits.queue),
            (Some(100), Some(8))
        );
        // A flag still wins over its key.
        let c = with_file(f, &["--format", "ocsf"]).unwrap();
        assert_eq!(c.format, crate::encode::format::Format::Ocsf);
        // Bad values name their key.
        assert!(msg(with_file("format: xml\n", &[])).contains("`format`"));
        assert!(msg(with_file("xdp:\n  mode: turbo\n", &[])).contains("`xdp.mode`"));
        assert!(msg(with_file("sinks: [\"ftp:x\"]\n", &[])).contains("`sinks`"));
        assert!(msg(with_file("service:\n  metrics_addr: here\n", &[])).contains("metrics_addr"));
        assert!(msg(with_file("file:\n  colour: red\n", &[])).contains("colour"));
    }
}
