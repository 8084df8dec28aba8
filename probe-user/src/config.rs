//! Run configuration: what the CLI (and later the config file) asks for, validated.
use std::{path::PathBuf, time::Duration};

use probe_common::EventKind;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown event kind or category {0:?}; known: {1}")]
    UnknownKind(String, String),
    #[error("--events selects nothing")]
    NoKinds,
    #[error("bad size {0:?}: use bytes or a K/M/G suffix (e.g. 16M)")]
    BadSize(String),
    #[error("ring buffer size {0} must be a power of two and a multiple of the page size ({1})")]
    RingSize(u64, u64),
    #[error("{0}")]
    Xdp(String),
    #[error(transparent)]
    FileEvents(#[from] crate::file::FileOptionsError),
    /// A flag value that does not parse; `problem` says why.
    #[error("{flag}: {problem}")]
    Flag { flag: &'static str, problem: String },
    /// The config file: `problem` names the key and what is wrong with it.
    #[error("config file {path}: {problem}")]
    File { path: String, problem: String },
}

/// Every kind name, for messages and `tprobe events`.
pub fn known_kinds() -> String {
    EventKind::ALL
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `process,file.open,...`: kind names, categories (`process`) or `all`.
pub fn parse_kinds(spec: &str) -> Result<Vec<EventKind>, ConfigError> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let matched: Vec<EventKind> = EventKind::ALL
            .iter()
            .copied()
            .filter(|k| {
                item == "all" || k.name() == item || k.name().split('.').next() == Some(item)
            })
            .collect();
        if matched.is_empty() {
            return Err(ConfigError::UnknownKind(item.to_owned(), known_kinds()));
        }
        for k in matched {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    if out.is_empty() {
        return Err(ConfigError::NoKinds);
    }
    out.sort();
    Ok(out)
}

/// Parses `4096`, `64K`, `16M`, `1G` (powers of 1024; `KiB` etc. accepted too).
pub fn parse_size(s: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ConfigError::BadSize(s.to_owned()))?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(ConfigError::BadSize(s.to_owned())),
    };
    n.checked_mul(mul).ok_or(ConfigError::BadSize(s.to_owned()))
}

pub fn check_ring_size(bytes: u64) -> Result<u32, ConfigError> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    if !bytes.is_power_of_two() || !bytes.is_multiple_of(page) || bytes > u32::MAX as u64 / 2 {
        return Err(ConfigError::RingSize(bytes, page));
    }
    Ok(bytes as u32)
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
    pub enrichment: crate::config_file::Enrichment,
    pub limits: crate::config_file::Limits,
    /// The command line (and file) this came from, to build it again on SIGHUP.
    pub source: Option<crate::config_file::Source>,
    /// File event settings (prefix filters, read-only opens).
    pub file: crate::file::FileOptions,
    /// Output format (`--format`) and readable lines (`--pretty`).
    pub format: crate::encode::format::Format,
    pub pretty: bool,
    /// Outputs besides `output` (`--sink`); none and no `output` means stdout.
    pub sinks: Vec<crate::sink::config::SinkConfig>,
    /// Container enrichment (`container` object).
    pub containers: crate::enrich::container::ContainerConfig,
    /// Metrics/health server, stall and shutdown limits, host procfs.
    pub service: crate::service::ServiceArgs,
    /// XDP flow telemetry, when `--xdp-iface` names interfaces.
    pub xdp: Option<crate::xdp::XdpConfig>,
}

/// Checks the XDP settings: interfaces exist, timeouts are sane, flow events are wanted.
pub fn xdp_config(
    kinds: &[EventKind],
    mut x: crate::xdp::XdpConfig,
) -> Result<Option<crate::xdp::XdpConfig>, ConfigError> {
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
        if crate::xdp::ifindex(i) == 0 {
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
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name_category_and_all() {
        assert_eq!(
            parse_kinds("process.exec").unwrap(),
            vec![EventKind::ProcessExec]
        );
        assert_eq!(
            parse_kinds("process").unwrap(),
            EventKind::ALL
                .iter()
                .copied()
                .filter(|k| k.name().starts_with("process."))
                .collect::<Vec<_>>()
        );
        assert_eq!(parse_kinds("all").unwrap(), EventKind::ALL.to_vec());
        assert_eq!(
            parse_kinds("process.exit, process.exec").unwrap(),
            vec![EventKind::ProcessExec, EventKind::ProcessExit]
        );
        assert!(matches!(
            parse_kinds("proc"),
            Err(ConfigError::UnknownKind(..))
        ));
        assert_eq!(parse_kinds(" , "), Err(ConfigError::NoKinds));
        assert_eq!(
            parse_kinds("flow").unwrap(),
            vec![
                EventKind::FlowUpdate,
                EventKind::FlowEnd,
                EventKind::FlowNew
            ]
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_size("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(check_ring_size(16 << 20).is_ok());
        assert!(check_ring_size(3 << 20).is_err());
        assert!(check_ring_size(1024).is_err());
    }

    #[test]
    fn xdp_settings_are_checked() {
        let x = |ifaces: &[&str], idle: u64| crate::xdp::XdpConfig {
            ifaces: ifaces.iter().map(|s| s.to_string()).collect(),
            mode: crate::xdp::Mode::Auto,
            replace: false,
            active_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(idle),
            table_size: 16,
        };
        let all = EventKind::ALL;
        assert!(xdp_config(all, x(&[], 15)).unwrap().is_none());
        let ok = xdp_config(all, x(&["lo", "lo", ""], 15)).unwrap().unwrap();
        assert_eq!(ok.ifaces, vec!["lo".to_string()]);
        let err = |r: Result<_, ConfigError>| r.unwrap_err().to_string();
        assert!(
            err(xdp_config(all, x(&["tprobe-none0"], 15))).contains("no such network interface")
        );
        assert!(err(xdp_config(&[EventKind::ProcessExec], x(&["lo"], 15))).contains("flow"));
        assert!(err(xdp_config(all, x(&["lo"], 0))).contains("above zero"));
    }
}
