//! What the user binds: `--respond RULE=ACTION` (repeatable), `--deny-exec`, `--respond-dry-run`,
//! the protect list, rate limits, the isolate allow list and the control socket, and the
//! `respond:` section of the config file that fills in the flags not given.
use std::{net::Ipv4Addr, path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::event::response::Action;

/// Protected by default: the runtime, the node agent, remote access and init.
pub const DEFAULT_PROTECT: &[&str] = &[
    "containerd",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "runc",
    "kubelet",
    "sshd",
    "systemd",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RespondConfigError {
    #[error("--respond {0:?}: expected RULE=ACTION (e.g. my-rule-id=kill)")]
    Binding(String),
    #[error(
        "--respond {spec:?}: unknown action {action:?} (known: kill, kill-tree, freeze, isolate)"
    )]
    UnknownAction { spec: String, action: String },
    #[error("--deny-exec {0:?}: expected an absolute path or sha256:HEX (64 hex digits)")]
    Deny(String),
    #[error("--respond-allow {0:?}: expected IP:PORT, IP or CIDR (IPv4)")]
    Allow(String),
    #[error("--respond-rate {0:?}: expected N/DURATION for one rule, e.g. 10/1m")]
    Rate(String),
    #[error("--respond-allow: at most {0} entries")]
    TooManyAllowed(u32),
}

/// One `--deny-exec` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DenyEntry {
    Path(PathBuf),
    /// Lowercase hex.
    Sha256(String),
}

impl DenyEntry {
    pub fn parse(s: &str) -> Result<DenyEntry, RespondConfigError> {
        let s = s.trim();
        if let Some(h) = s.strip_prefix("sha256:") {
            if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(DenyEntry::Sha256(h.to_ascii_lowercase()));
            }
            return Err(RespondConfigError::Deny(s.into()));
        }
        if s.starts_with('/') {
            return Ok(DenyEntry::Path(s.into()));
        }
        Err(RespondConfigError::Deny(s.into()))
    }

    /// How the entry is named in a `response.kill` trigger.
    pub fn rule_id(&self) -> String {
        match self {
            DenyEntry::Path(p) => format!("deny-exec:{}", p.display()),
            DenyEntry::Sha256(h) => format!("deny-exec:sha256:{h}"),
        }
    }
}

/// One allowed peer of an isolated namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub net: Ipv4Addr,
    pub prefix: u8,
    /// 0: every port.
    pub port: u16,
}

impl Allowed {
    pub fn parse(s: &str) -> Result<Allowed, RespondConfigError> {
        let bad = || RespondConfigError::Allow(s.into());
        let s = s.trim();
        if let Ok(a) = s.parse::<std::net::SocketAddrV4>() {
            return Ok(Allowed {
                net: *a.ip(),
                prefix: 32,
                port: a.port(),
            });
        }
        if let Ok(ip) = s.parse::<Ipv4Addr>() {
            return Ok(Allowed {
                net: ip,
                prefix: 32,
                port: 0,
            });
        }
        let n: ipnet::Ipv4Net = s.parse().map_err(|_| bad())?;
        Ok(Allowed {
            net: n.network(),
            prefix: n.prefix_len(),
            port: 0,
        })
    }
}

/// A rate limit: at most `max` actions per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub max: u32,
    pub per: Duration,
}

impl Rate {
    pub fn parse(s: &str) -> Result<Rate, RespondConfigError> {
        let bad = || RespondConfigError::Rate(s.into());
        let (n, d) = s.trim().split_once('/').ok_or_else(bad)?;
        Ok(Rate {
            max: n.trim().parse().map_err(|_| bad())?,
            per: humantime::parse_duration(d.trim()).map_err(|_| bad())?,
        })
    }
}

/// What one binding matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleMatch {
    /// A Sigma rule id, an IoC list's id (`ioc.NAME`), or `ioc` (every list).
    Id(String),
    /// Every baseline alert.
    Baseline,
    /// Baseline alerts of one workload.
    BaselineWorkload(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub rule: RuleMatch,
    pub action: Action,
    /// As the user wrote it (the key of the rate limit).
    pub spec: String,
}

impl Binding {
    pub fn parse(spec: &str) -> Result<Binding, RespondConfigError> {
        let (rule, action) = spec
            .rsplit_once('=')
            .filter(|(r, a)| !r.trim().is_empty() && !a.trim().is_empty())
            .ok_or_else(|| RespondConfigError::Binding(spec.into()))?;
        let (rule, action) = (rule.trim(), action.trim());
        let action = match action {
            "kill" => Action::Kill,
            "kill-tree" | "kill_tree" => Action::KillTree,
            "freeze" => Action::Freeze,
            "isolate" => Action::Isolate,
            _ => {
                return Err(RespondConfigError::UnknownAction {
                    spec: spec.into(),
                    action: action.into(),
                })
            }
        };
        let rule = match rule.split_once(':') {
            _ if rule == "baseline" => RuleMatch::Baseline,
            Some(("baseline", w)) => RuleMatch::BaselineWorkload(w.to_owned()),
            _ => RuleMatch::Id(rule.to_owned()),
        };
        Ok(Binding {
            rule,
            action,
            spec: spec.into(),
        })
    }
}

/// The flags of the respond stage (`tprobe run`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RespondArgs {
    /// Bind an action to a rule: RULE=ACTION with ACTION kill, kill-tree, freeze or isolate;
    /// RULE a Sigma rule id, an IoC list id (`ioc.NAME`, or `ioc` for every list), `baseline`
    /// or `baseline:WORKLOAD`. Repeat for several.
    #[arg(long = "respond", value_name = "RULE=ACTION")]
    pub respond: Vec<String>,
    /// Executables whose exec is killed in the kernel before they run: absolute paths and
    /// `sha256:HEX`, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub deny_exec: Vec<String>,
    /// Emit every response event with `dry_run: true` and do nothing.
    #[arg(long)]
    pub respond_dry_run: bool,
    /// Never act on these: executable paths, executable names, container names (replaces the
    /// default list: containerd, runc, kubelet, sshd, systemd).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub respond_protect: Vec<String>,
    /// Peers an isolated namespace can still reach: IP:PORT, IP or CIDR (IPv4).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub respond_allow: Vec<String>,
    /// Most actions per rule, N/DURATION.
    #[arg(long, default_value = "10/1m", value_name = "N/DURATION")]
    pub respond_rate: String,
    /// Most actions in all, N/DURATION.
    #[arg(long, default_value = "100/1m", value_name = "N/DURATION")]
    pub respond_rate_global: String,
    /// Control socket (unix, root only) for `tprobe respond list|release|kill`; off by default.
    #[arg(long, value_name = "PATH")]
    pub respond_socket: Option<PathBuf>,
}

/// `respond:` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondFile {
    /// `RULE: ACTION` pairs.
    pub rules: Option<std::collections::BTreeMap<String, String>>,
    pub deny_exec: Option<Vec<String>>,
    pub dry_run: Option<bool>,
    pub protect: Option<Vec<String>>,
    pub isolate: Option<IsolateFile>,
    pub rate: Option<String>,
    pub rate_global: Option<String>,
    pub control_socket: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolateFile {
    pub allow: Option<Vec<String>>,
}

impl RespondArgs {
    /// The file's values for every flag not given (`given` says whether a flag was).
    pub fn fill_from(&mut self, f: &RespondFile, given: impl Fn(&str) -> bool) {
        if let (Some(r), false) = (&f.rules, given("respond")) {
            self.respond = r.iter().map(|(k, v)| format!("{k}={v}")).collect();
        }
        if let (Some(v), false) = (&f.deny_exec, given("deny_exec")) {
            self.deny_exec = v.clone();
        }
        if let (Some(v), false) = (f.dry_run, given("respond_dry_run")) {
            self.respond_dry_run = v;
        }
        if let (Some(v), false) = (&f.protect, given("respond_protect")) {
            self.respond_protect = v.clone();
        }
        if let (Some(v), false) = (
            f.isolate.as_ref().and_then(|i| i.allow.as_ref()),
            given("respond_allow"),
        ) {
            self.respond_allow = v.clone();
        }
        if let (Some(v), false) = (&f.rate, given("respond_rate")) {
            self.respond_rate = v.clone();
        }
        if let (Some(v), false) = (&f.rate_global, given("respond_rate_global")) {
            self.respond_rate_global = v.clone();
        }
        if let (Some(v), false) = (&f.control_socket, given("respond_socket")) {
            self.respond_socket = Some(v.clone());
        }
    }

    pub fn into_config(&self) -> Result<RespondConfig, RespondConfigError> {
        let allow = self
            .respond_allow
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Allowed::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        if allow.len() > probe_common::ISOLATE_ALLOW_MAX as usize {
            return Err(RespondConfigError::TooManyAllowed(
                probe_common::ISOLATE_ALLOW_MAX,
            ));
        }
        Ok(RespondConfig {
            bindings: self
                .respond
                .iter()
                .map(|s| Binding::parse(s))
                .collect::<Result<_, _>>()?,
            deny: self
                .deny_exec
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| DenyEntry::parse(s))
                .collect::<Result<_, _>>()?,
            dry_run: self.respond_dry_run,
            protect: if self.respond_protect.is_empty() {
                DEFAULT_PROTECT.iter().map(|s| s.to_string()).collect()
            } else {
                self.respond_protect.clone()
            },
            allow,
            rate: Rate::parse(&self.respond_rate)?,
            rate_global: Rate::parse(&self.respond_rate_global)?,
            socket: self.respond_socket.clone(),
        })
    }
}

/// The respond stage's settings, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RespondConfig {
    pub bindings: Vec<Binding>,
    pub deny: Vec<DenyEntry>,
    pub dry_run: bool,
    pub protect: Vec<String>,
    pub allow: Vec<Allowed>,
    pub rate: Rate,
    pub rate_global: Rate,
    pub socket: Option<PathBuf>,
}

impl Default for RespondConfig {
    fn default() -> Self {
        RespondArgs {
            respond_rate: "10/1m".into(),
            respond_rate_global: "100/1m".into(),
            ..Default::default()
        }
        .into_config()
        .expect("the defaults parse")
    }
}

impl RespondConfig {
    /// Nothing to do: no binding, no deny list, no control socket.
    pub fn is_off(&self) -> bool {
        self.bindings.is_empty() && self.deny.is_empty() && self.socket.is_none()
    }

    /// Whether any binding (or the console) may isolate, so the TC programs are loaded.
    pub fn may_isolate(&self) -> bool {
        self.socket.is_some() || self.bindings.iter().any(|b| b.action == Action::Isolate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_parse_and_bad_ones_say_why() {
        let b = Binding::parse("baseline:nginx=freeze").unwrap();
        assert_eq!(b.rule, RuleMatch::BaselineWorkload("nginx".into()));
        assert_eq!(b.action, Action::Freeze);
        assert_eq!(
            Binding::parse("baseline=kill").unwrap().rule,
            RuleMatch::Baseline
        );
        let e = Binding::parse("r1=explode").unwrap_err();
        assert!(e.to_string().contains("unknown action \"explode\""), "{e}");
        assert!(Binding::parse("r1").is_err());
        assert!(DenyEntry::parse("relative/path").is_err());
        assert!(DenyEntry::parse("sha256:abc").is_err());
        let a = Allowed::parse("10.0.0.1:4318").unwrap();
        assert_eq!((a.prefix, a.port), (32, 4318));
        assert_eq!(Allowed::parse("10.1.0.0/16").unwrap().prefix, 16);
        assert_eq!(Rate::parse("5/10s").unwrap().max, 5);
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn the_file_fills_the_flags_not_given() {
        let f: RespondFile = serde_norway::from_str(
            "rules: {r1: kill, 'baseline:web': freeze}\ndeny_exec: [/bin/nc]\n\
             isolate: {allow: ['10.0.0.1:4318']}\ncontrol_socket: /run/x.sock\n",
        )
        .unwrap();
        let mut a = RespondArgs {
            respond_rate: "10/1m".into(),
            respond_rate_global: "100/1m".into(),
            respond_dry_run: true,
            ..Default::default()
        };
        a.fill_from(&f, |k| k == "respond_dry_run");
        let c = a.into_config().unwrap();
        assert_eq!(c.bindings.len(), 2);
        assert_eq!(c.deny, vec![DenyEntry::Path("/bin/nc".into())]);
        assert_eq!(c.allow[0].port, 4318);
        assert!(c.dry_run, "the flag given wins");
        assert_eq!(
            c.socket.as_deref(),
            Some(std::path::Path::new("/run/x.sock"))
        );
        assert!(serde_norway::from_str::<RespondFile>("bogus: 1").is_err());
    }
}
