//! The flow family (XDP), its kernel side: the `--xdp-*` options, attaching `tprobe_xdp` to the
//! interfaces asked for, and the flow maps the tracker (`enrich::flows::tracker`) reads.
pub mod iface;

use std::time::Duration;

use aya::{
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray},
    programs::{Xdp, XdpMode},
    Ebpf,
};
use probe_common::{EventKind, FlowEvent, FlowKey, FlowStats, MAP_FLOWS, MAP_XDP_STATS};

use crate::{
    event::{flow::FlowRecord, Body},
    families::wire::{need, DecodeError},
    kernel::hook::HookReport,
};
use iface::ifindex;

/// Name of the XDP program in the eBPF object.
pub const PROGRAM: &str = "tprobe_xdp";
/// Kinds the XDP hook serves (for `tprobe events`).
pub const KINDS: &[EventKind] = &[EventKind::FlowUpdate, EventKind::FlowEnd];

/// Decodes a flow record (it has no task: the tracker finds the owning process).
pub fn decode(kind: EventKind, bytes: &[u8]) -> Result<Body, DecodeError> {
    let ev: FlowEvent = need(bytes, kind)?;
    Ok(Body::Flow(Box::new(FlowRecord::from_kernel(kind, &ev))))
}

/// `--xdp-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Native (driver) mode when the driver supports it, else generic.
    Auto,
    /// Generic XDP in the kernel network stack: works on every interface.
    Skb,
    /// Native XDP in the driver: fails on interfaces whose driver lacks it.
    Native,
}

impl Mode {
    fn aya(self) -> XdpMode {
        match self {
            Mode::Auto => XdpMode::Default,
            Mode::Skb => XdpMode::Skb,
            Mode::Native => XdpMode::Driver,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Skb => "skb",
            Mode::Native => "native",
        }
    }
}

/// What `--xdp-*` and `--flow-*` ask for, validated.
#[derive(Clone, Debug)]
pub struct XdpConfig {
    pub ifaces: Vec<String>,
    pub mode: Mode,
    /// Replace an XDP program already attached to an interface (e.g. left by a crashed run).
    pub replace: bool,
    pub active_timeout: Duration,
    pub idle_timeout: Duration,
    pub table_size: u32,
}

impl XdpConfig {
    /// How often the flow map is scanned: often enough that a timeout fires within a quarter
    /// of its length, at most once a second.
    pub fn scan_interval(&self) -> Duration {
        (self.idle_timeout.min(self.active_timeout) / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("--xdp-iface {0}: no such network interface")]
    NoSuchInterface(String),
    #[error("--xdp-iface {iface}: {mode} XDP is not supported on this interface ({detail}); try --xdp-mode skb or auto")]
    ModeUnsupported {
        iface: String,
        mode: &'static str,
        detail: String,
    },
    #[error("--xdp-iface {iface}: an XDP program is already attached ({what}); tprobe leaves it alone unless started with --xdp-replace, and never replaces one a running process holds")]
    Occupied { iface: String, what: String },
    #[error("--xdp-iface {iface}: could not replace the XDP program already attached: {detail}")]
    ReplaceFailed { iface: String, detail: String },
    #[error("XDP program {PROGRAM}: {0}")]
    Program(String),
    #[error("eBPF map {0}: {1}")]
    Map(&'static str, String),
}

/// Maps the XDP tracker reads.
pub struct XdpMaps {
    pub flows: BpfHashMap<MapData, FlowKey, FlowStats>,
    pub stats: PerCpuArray<MapData, u64>,
}

/// Loads `tprobe_xdp` and attaches it to every interface of `cfg`; returns the maps and a
/// report of each attachment for the probe's hook list. The links detach when the programs are
/// dropped, and the kernel detaches them itself if the process dies.
pub fn attach(ebpf: &mut Ebpf, cfg: &XdpConfig) -> Result<(XdpMaps, Vec<HookReport>), XdpError> {
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| XdpError::Program("missing from the object".into()))?
        .try_into()
        .map_err(|e| XdpError::Program(format!("{e}")))?;
    prog.load()
        .map_err(|e| XdpError::Program(format!("verifier/load: {e:?}")))?;
    let mut reports = Vec::new();
    for iface in &cfg.ifaces {
        if ifindex(iface) == 0 {
            return Err(XdpError::NoSuchInterface(iface.clone()));
        }
        if let Some(o) = attached_program(iface) {
            let what = o.describe();
            if !cfg.replace || o.linked {
                return Err(XdpError::Occupied {
                    iface: iface.clone(),
                    what,
                });
            }
            log::warn!("{iface}: replacing the XDP program already attached ({what})");
            remove_program(iface).map_err(|detail| XdpError::ReplaceFailed {
                iface: iface.clone(),
                detail,
            })?;
        }
        prog.attach(iface, cfg.mode.aya())
            .map_err(|e| attach_error(iface, cfg.mode, e))?;
        reports.push(HookReport {
            hook: format!("xdp/{iface} (mode {})", cfg.mode.name()),
            program: PROGRAM,
            attached: true,
            reason: None,
        });
    }
    let flows = ebpf
        .take_map(MAP_FLOWS)
        .ok_or_else(|| XdpError::Map(MAP_FLOWS, "missing".into()))?
        .try_into()
        .map_err(|e| XdpError::Map(MAP_FLOWS, format!("{e}")))?;
    let stats = ebpf
        .take_map(MAP_XDP_STATS)
        .ok_or_else(|| XdpError::Map(MAP_XDP_STATS, "missing".into()))?
        .try_into()
        .map_err(|e| XdpError::Map(MAP_XDP_STATS, format!("{e}")))?;
    Ok((XdpMaps { flows, stats }, reports))
}

fn attach_error(iface: &str, mode: Mode, e: aya::programs::ProgramError) -> XdpError {
    use aya::programs::ProgramError;
    let errno = match &e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    };
    let text = format!("{e:?}");
    if let ProgramError::UnknownInterface { .. } = e {
        return XdpError::NoSuchInterface(iface.to_owned());
    }
    let detail = match &e {
        ProgramError::SyscallError(s) => format!("{}: {}", s.call, s.io_error),
        _ => e.to_string(),
    };
    if errno == Some(libc::EOPNOTSUPP) || text.contains("not supported") {
        return XdpError::ModeUnsupported {
            iface: iface.to_owned(),
            mode: mode.name(),
            detail,
        };
    }
    if matches!(errno, Some(libc::EBUSY) | Some(libc::EEXIST)) {
        return XdpError::Occupied {
            iface: iface.to_owned(),
            what: format!("attach refused: {detail}"),
        };
    }
    XdpError::Program(format!("attach to {iface}: {text}"))
}

// An XDP program already on an interface: who holds it, and removing one a crashed run left.
/// An XDP program found on an interface before we attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occupant {
    pub id: Option<u32>,
    pub name: Option<String>,
    /// Held by an XDP link (a running process, or a pinned link): it cannot be replaced.
    pub linked: bool,
}

impl Occupant {
    /// Parses the `prog/xdp id N name NAME tag ...` line of `ip -d link show`.
    pub fn parse(ip_link: &str) -> Option<Occupant> {
        let line = ip_link.lines().find(|l| l.contains("prog/xdp"))?.trim();
        let mut it = line.split_whitespace().skip(1);
        let (mut id, mut name) = (None, None);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            match k {
                "id" => id = v.parse().ok(),
                "name" => name = Some(v.to_owned()),
                _ => {}
            }
        }
        Some(Occupant {
            id,
            name,
            linked: false,
        })
    }

    fn ours(&self) -> bool {
        self.name.as_deref() == Some(PROGRAM)
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "program id {}, name {}",
            self.id.map_or("?".into(), |i| i.to_string()),
            self.name.as_deref().unwrap_or("?")
        );
        s.push_str(match (self.linked, self.ours()) {
            (true, true) => ", held by another running tprobe; stop it first",
            (true, false) => ", held by a running process through an XDP link; stop it first",
            (false, true) => {
                ", left behind by an earlier tprobe run that could not detach it (killed on a \
                 kernel without XDP links)"
            }
            (false, false) => ", attached by another tool",
        });
        s
    }
}

/// The XDP program already on `iface`, as `ip -d link` shows it; `None` when there is none
/// (or `ip` is missing: the attach then fails with a plain "busy").
pub fn attached_program(iface: &str) -> Option<Occupant> {
    let out = std::process::Command::new("ip")
        .args(["-d", "link", "show", "dev", iface])
        .output()
        .ok()?;
    let mut o = Occupant::parse(&String::from_utf8_lossy(&out.stdout))?;
    o.linked = o.id.is_some_and(|id| {
        aya::programs::loaded_links().flatten().any(|l| {
            l.program_id() == id && l.link_type().ok() == Some(aya::programs::links::LinkType::Xdp)
        })
    });
    Some(o)
}

/// Removes a netlink-attached XDP program (the kind a crashed run can leave behind; XDP links,
/// which tprobe uses, go away with their process).
pub fn remove_program(iface: &str) -> Result<(), String> {
    for flavor in ["xdpgeneric", "xdpdrv"] {
        let out = std::process::Command::new("ip")
            .args(["link", "set", "dev", iface, flavor, "off"])
            .output()
            .map_err(|e| format!("running ip: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
    }
    match attached_program(iface) {
        Some(p) => Err(format!("still attached: {}", p.describe())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_interval_follows_the_shortest_timeout() {
        let cfg = |idle: u64, active: u64| XdpConfig {
            ifaces: vec![],
            mode: Mode::Auto,
            replace: false,
            active_timeout: Duration::from_secs(active),
            idle_timeout: Duration::from_secs(idle),
            table_size: 1,
        };
        assert_eq!(cfg(15, 60).scan_interval(), Duration::from_secs(1));
        assert_eq!(cfg(2, 60).scan_interval(), Duration::from_millis(500));
    }

    #[test]
    fn occupants_from_ip_link() {
        let text = "6: x@if5: <UP> mtu 1500 xdpgeneric qdisc noqueue\n    prog/xdp id 565 name tprobe_xdp tag 7e72 jited\n";
        let o = Occupant::parse(text).unwrap();
        assert_eq!(o.id, Some(565));
        assert!(o.ours());
        assert!(o.describe().contains("earlier tprobe run"));
        let linked = Occupant {
            linked: true,
            ..o.clone()
        };
        assert!(linked.describe().contains("running tprobe"));
        assert!(Occupant::parse("6: x: <UP> mtu 1500\n").is_none());
    }
}
