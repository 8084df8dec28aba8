//! What an event says about its workload's behaviour: (dimension, value) pairs, the values
//! made general (path patterns, applets, no ephemeral ports).
use probe_common::EventKind;

use super::patterns::{executable, path_pattern};
use crate::event::{net::Direction, Body, Event};

/// A learned dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Exec,
    FileWrite,
    FileDelete,
    FileChmod,
    Connect,
    Listen,
    Dns,
    Euid,
    Caps,
    Security,
    Rate,
}

impl Dim {
    pub const ALL: &'static [Dim] = &[
        Dim::Exec,
        Dim::FileWrite,
        Dim::FileDelete,
        Dim::FileChmod,
        Dim::Connect,
        Dim::Listen,
        Dim::Dns,
        Dim::Euid,
        Dim::Caps,
        Dim::Security,
        Dim::Rate,
    ];

    /// The name in profiles and in `alert.baseline.dimension`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Exec => "exec",
            Dim::FileWrite => "file.write",
            Dim::FileDelete => "file.delete",
            Dim::FileChmod => "file.chmod",
            Dim::Connect => "connect",
            Dim::Listen => "listen",
            Dim::Dns => "dns",
            Dim::Euid => "euid",
            Dim::Caps => "caps",
            Dim::Security => "security",
            Dim::Rate => "rate",
        }
    }

    /// The title of its alerts.
    pub fn title(self) -> &'static str {
        match self {
            Dim::Exec => "New executable for workload",
            Dim::FileWrite => "New file written by workload",
            Dim::FileDelete => "New file deleted by workload",
            Dim::FileChmod => "New file mode change by workload",
            Dim::Connect => "New outbound destination for workload",
            Dim::Listen => "New listening port for workload",
            Dim::Dns => "New DNS name queried by workload",
            Dim::Euid => "New effective user for workload",
            Dim::Caps => "New effective capability for workload",
            Dim::Security => "Security event new to workload",
            Dim::Rate => "Event rate above the workload's baseline",
        }
    }

    pub fn level(self) -> &'static str {
        match self {
            Dim::Security | Dim::Caps | Dim::Euid => "high",
            _ => "medium",
        }
    }
}

/// Security kinds: any one of them new to a workload is a deviation.
pub const SECURITY: &[EventKind] = &[
    EventKind::ProcessPtrace,
    EventKind::ProcessVmWrite,
    EventKind::ProcessCapset,
    EventKind::ProcessMemfd,
    EventKind::ProcessUnshare,
    EventKind::ProcessSetns,
    EventKind::FileMount,
    EventKind::KernelModuleLoad,
    EventKind::BpfLoad,
];

/// The kinds the baseline learns from (fork and exit for their rates).
pub const KINDS: &[EventKind] = &[
    EventKind::ProcessExec,
    EventKind::ProcessFork,
    EventKind::ProcessExit,
    EventKind::FileOpen,
    EventKind::FileCreate,
    EventKind::FileTruncate,
    EventKind::FileRename,
    EventKind::FileMkdir,
    EventKind::FileUnlink,
    EventKind::FileRmdir,
    EventKind::FileChmod,
    EventKind::NetConnect,
    EventKind::NetBind,
    EventKind::NetListen,
    EventKind::NetDns,
];

/// The local port range (`ip_local_port_range`): ports in it are chosen by the kernel.
#[derive(Clone, Copy, Debug)]
pub struct Ephemeral(pub u16, pub u16);

impl Ephemeral {
    pub fn read() -> Ephemeral {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
                Some(Ephemeral(it.next()??, it.next()??))
            })
            .unwrap_or(Ephemeral(32768, 60999))
    }

    fn port(self, p: u16) -> String {
        if (self.0..=self.1).contains(&p) {
            "ephemeral".to_owned()
        } else {
            p.to_string()
        }
    }
}

fn transport(protocol: u16, family: u16) -> &'static str {
    match (protocol, family as i32) {
        (_, libc::AF_UNIX) => "unix",
        (6, _) => "tcp",
        (17, _) => "udp",
        (1 | 58, _) => "icmp",
        _ => "ip",
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether an open asks for write access (or creates or truncates).
fn writes(flags: u32) -> bool {
    let f = flags as i32;
    f & libc::O_ACCMODE != libc::O_RDONLY || f & (libc::O_CREAT | libc::O_TRUNC) != 0
}

/// The (dimension, value) pairs of `ev` (euid and capabilities are checked apart, from bits).
pub fn observe(ev: &Event, eph: Ephemeral, out: &mut Vec<(Dim, String)>) {
    let Some(kind) = ev.data_kind() else { return };
    match &ev.body {
        Body::Exec(_) => {
            let Some(p) = ev.process.as_deref() else {
                return;
            };
            let comm = ev.task.as_ref().map_or(&[][..], |t| &t.comm[..]);
            let mut v = executable(p.exe.as_deref().unwrap_or(b"?"), &p.args, comm);
            if let Some(pp) = ev.parent.as_deref() {
                v.push_str(" <- ");
                v.push_str(&executable(
                    pp.exe.as_deref().unwrap_or(b"?"),
                    &pp.args,
                    &pp.comm,
                ));
            }
            out.push((Dim::Exec, v));
        }
        Body::File(f) => {
            let dim = match kind {
                EventKind::FileOpen if writes(f.flags) => Dim::FileWrite,
                EventKind::FileCreate | EventKind::FileTruncate | EventKind::FileMkdir => {
                    Dim::FileWrite
                }
                EventKind::FileRename => Dim::FileWrite,
                EventKind::FileUnlink | EventKind::FileRmdir => Dim::FileDelete,
                EventKind::FileChmod => Dim::FileChmod,
                _ => return,
            };
            let path = match (kind, &f.target) {
                (EventKind::FileRename, Some(t)) => t,
                _ => &f.path,
            };
            if path.is_empty() {
                return;
            }
            out.push((dim, path_pattern(&String::from_utf8_lossy(path))));
            if kind == EventKind::FileRename {
                out.push((Dim::FileDelete, path_pattern(&lossy(&f.path))));
            }
        }
        Body::Net(n) => match kind {
            EventKind::NetConnect if n.direction != Some(Direction::Inbound) => {
                let t = transport(n.protocol, n.family);
                if let Some(u) = &n.unix {
                    let name = if u.abstract_ns {
                        format!("@{}", lossy(&u.name))
                    } else {
                        path_pattern(&lossy(&u.name))
                    };
                    out.push((Dim::Connect, format!("unix {name}")));
                } else if let Some(r) = n.remote {
                    let host = match &n.remote_domain {
                        Some(d) => d.to_string(),
                        None => r.ip().to_string(),
                    };
                    let host = if r.is_ipv6() && n.remote_domain.is_none() {
                        format!("[{host}]")
                    } else {
                        host
                    };
                    out.push((Dim::Connect, format!("{t} {host}:{}", eph.port(r.port()))));
                }
            }
            EventKind::NetListen | EventKind::NetBind => {
                let t = transport(n.protocol, n.family);
                // A TCP bind is followed by a listen when it serves; UDP has no listen.
                if kind == EventKind::NetBind && t != "udp" {
                    return;
                }
                if n.ret.is_some_and(|r| r < 0) {
                    return;
                }
                if let Some(l) = n.local.filter(|l| l.port() != 0) {
                    out.push((Dim::Listen, format!("{t}/{}", eph.port(l.port()))));
                }
            }
            EventKind::NetDns => {
                if let Some(q) = &n.dns {
                    // A response carries the same question: one value either way.
                    let name = q.query.trim_end_matches('.').to_ascii_lowercase();
                    if !name.is_empty() {
                        out.push((Dim::Dns, name));
                    }
                }
            }
            _ => {}
        },
        Body::Security(_) if SECURITY.contains(&kind) => {
            out.push((Dim::Security, kind.name().to_owned()));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_ports_collapse() {
        let e = Ephemeral(32768, 60999);
        assert_eq!(e.port(40000), "ephemeral");
        assert_eq!(e.port(8080), "8080");
        assert!(writes((libc::O_WRONLY | libc::O_CREAT) as u32));
        assert!(!writes(libc::O_RDONLY as u32));
    }
}
