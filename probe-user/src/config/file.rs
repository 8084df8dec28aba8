//! The YAML config file (`tprobe run --config FILE`): every `run` flag, grouped in sections
//! (filters, file, xdp, enrichment, service, limits). Flags given on the command line win.
//! Errors name the file, the key and the problem (unknown key, wrong type, bad value).
use std::{fmt, path::Path, path::PathBuf};

use serde::{de, Deserialize, Deserializer};

use super::{error::ConfigError, Enrichment, Limits};

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
    pub process: Option<ProcessFile>,
    pub security: Option<SecurityFile>,
    pub xdp: Option<XdpFile>,
    pub service: Option<ServiceFile>,
    pub analyze: Option<AnalyzeFile>,
    pub respond: Option<crate::analyze::respond::config::RespondFile>,
}

/// `analyze:`: Sigma rules and IoC lists (`--rules`, `--ioc`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeFile {
    pub rules: Option<List>,
    pub ioc: Option<List>,
    pub baseline: Option<BaselineFile>,
}

/// `analyze.baseline:`: `--baseline` and its settings (docs/baselines.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineFile {
    pub dir: Option<PathBuf>,
    pub learn_for: Option<Scalar>,
    pub learn_stable: Option<Scalar>,
    pub accept: Option<bool>,
    pub read_only: Option<bool>,
    pub rate_interval: Option<Scalar>,
    pub rate_k: Option<f64>,
    pub rate_floor: Option<u64>,
    pub dir_names: Option<usize>,
    pub alerts_per_minute: Option<u32>,
}

/// `file:` (file events): `--file-include`, `--file-exclude`, `--file-reads`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEventsFile {
    pub include: Option<List>,
    pub exclude: Option<List>,
    pub reads: Option<bool>,
}

/// `process:` (process context): `--ancestors`, `--no-hash`, `--hash-max-size`, `--hash-wait`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessFile {
    pub ancestors: Option<usize>,
    pub hash: Option<bool>,
    pub hash_max_size: Option<Scalar>,
    pub hash_wait: Option<Scalar>,
}

/// `security:` (security events): `--signals`, `--ptrace-peeks`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityFile {
    pub signals: Option<List>,
    pub ptrace_peeks: Option<bool>,
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

# Process context.
process:
  # Ancestors on each event (process.ancestors, parent first); 0 turns them off.
  ancestors: 5
  # SHA-256 of executables (process.hash, exec.hash for scripts), off the event path.
  hash: true
  # Larger executables are not hashed (hash_skipped: too_large).
  hash_max_size: 64M
  # Longest time an exec event waits for its hash.
  hash_wait: 200ms

# Security events.
security:
  # Signals process.signal reports (names or numbers, or `all`).
  signals: [HUP, INT, QUIT, ABRT, KILL, TERM, STOP]
  # Also ptrace requests that only read the tracee (a debugger makes thousands).
  ptrace_peeks: false

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

# Detection: Sigma rules (files or folders) and IoC lists; relative paths are taken from this
# file's folder. The container image ships tprobe's own rule pack at /etc/tprobe/rules.
analyze:
  rules: []
  ioc: []
  # Baselines (docs/baselines.md): learn each workload's normal behaviour, then alert on what
  # it never did. A profile folder turns them on.
  # baseline:
  #   dir: /var/lib/tprobe/profiles
  #   learn_for: 10m
  #   learn_stable: 2m
  #   accept: false
  #   read_only: false
  #   rate_interval: 1m
  #   rate_k: 6
  #   rate_floor: 100
  #   dir_names: 16
  #   alerts_per_minute: 20

# Response (docs/response.md): actions bound to rule ids (RULE: kill, kill-tree, freeze or
# isolate; RULE a Sigma id, ioc.LIST, ioc, baseline or baseline:WORKLOAD), execs killed in the
# kernel (absolute paths, sha256:HEX), what is never touched (exe paths or names, container
# names), peers an isolated namespace keeps, rate limits. `control_socket: PATH` opens the
# console of `tprobe respond` (off by default).
respond:
  rules: {}
  deny_exec: []
  dry_run: false
  protect: [containerd, containerd-shim, containerd-shim-runc-v2, runc, kubelet, sshd, systemd]
  isolate:
    allow: []
  rate: 10/1m
  rate_global: 100/1m

limits:
  # Most processes kept in the process table.
  process_table: 65536
  # Most event batches queued between the ring buffer reader and the pipeline.
  queue: 1024
  # Most decoded events in that queue: past it the reader waits and the ring buffer takes the
  # rest (what the kernel then drops is counted). About 0.3 KiB of memory each.
  queue_events: 131072
"#;

pub fn file_err(path: &Path, key: &str, problem: impl fmt::Display) -> ConfigError {
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
