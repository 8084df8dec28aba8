//! JSON views of the security events (`shared/schema.md`, second-wave kinds): `cred`, `caps`,
//! `ptrace`, `target`, `signal`, `rename`, `memfd`, `ns`, `dup`, `module`, `bpf`, `mount`,
//! and `times` of `file.utime`.
use probe_common::{EventKind, SecSyscall};
use serde::Serialize;

use super::{b64_if_invalid, net::NetV, ResultV};
use crate::{
    event::{
        file::FileTimes,
        security::{SecRecord, StrArg},
    },
    families::security::names,
};

/// A string argument: lossy text, exact bytes when not UTF-8, and why it is cut or missing.
#[derive(Serialize, Default)]
pub struct StrV {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b64: Option<String>,
    pub truncated: bool,
    pub unreadable: bool,
}

fn str_v(s: &StrArg) -> StrV {
    StrV {
        value: s
            .value
            .as_deref()
            .map(|v| String::from_utf8_lossy(v).into_owned()),
        b64: s.value.as_deref().and_then(b64_if_invalid),
        truncated: s.truncated,
        unreadable: s.unreadable,
    }
}

/// A [`StrV`] written as `<key>`, `<key>_b64`, `<key>_truncated`, `<key>_unreadable` (the
/// flags only when set) into the object that holds it (`#[serde(flatten)]`).
#[derive(Default)]
pub struct StrField {
    key: &'static str,
    v: StrV,
}

impl StrField {
    fn new(key: &'static str, s: &StrArg) -> Self {
        StrField { key, v: str_v(s) }
    }

    /// The value, when there is one.
    pub fn value(&self) -> Option<&str> {
        self.v.value.as_deref()
    }
}

impl Serialize for StrField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(None)?;
        if let Some(v) = &self.v.value {
            m.serialize_entry(self.key, v)?;
        }
        if let Some(b) = &self.v.b64 {
            m.serialize_entry(&format!("{}_b64", self.key), b)?;
        }
        if self.v.truncated {
            m.serialize_entry(&format!("{}_truncated", self.key), &true)?;
        }
        if self.v.unreadable {
            m.serialize_entry(&format!("{}_unreadable", self.key), &true)?;
        }
        m.end()
    }
}

#[derive(Serialize, Default)]
pub struct CredV {
    pub syscall: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ruid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub euid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsuid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rgid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sgid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsgid: Option<u32>,
    /// setfsuid/setfsgid return the id in force before the call, not an errno.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<i64>,
}

#[derive(Serialize)]
pub struct CapsV {
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    /// The pid the header named (0: the caller itself).
    pub pid: i32,
    pub version: String,
}

#[derive(Serialize, Default)]
pub struct TargetV {
    /// The host pid when the kernel named the task; else the pid as the caller passed it.
    pub pid: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// `caller`: the pid is in the caller's pid namespace (a container), not the host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<&'static str>,
}

#[derive(Serialize)]
pub struct PtraceV {
    pub request: String,
    pub target: TargetV,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
}

#[derive(Serialize)]
pub struct SignalV {
    pub number: u64,
    pub name: String,
    pub syscall: &'static str,
    pub target: TargetV,
    /// Sent to a process group (kill with pid 0 or below): `target` is the first receiver.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub group: bool,
}

#[derive(Serialize)]
pub struct RenameV {
    pub old_comm: String,
    pub new_comm: String,
    /// The thread renamed, when not the one acting (a write to another thread's comm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
}

#[derive(Serialize)]
pub struct MemfdV {
    #[serde(flatten)]
    pub name: StrField,
    pub flags: Vec<String>,
}

#[derive(Serialize)]
pub struct NsV {
    pub flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
}

#[derive(Serialize)]
pub struct DupV {
    pub oldfd: i32,
    pub newfd: i64,
}

#[derive(Serialize, Default)]
pub struct ModuleV {
    pub syscall: &'static str,
    #[serde(flatten)]
    pub name: StrField,
    #[serde(flatten)]
    pub path: StrField,
    #[serde(flatten)]
    pub args: StrField,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
}

#[derive(Serialize, Default)]
pub struct BpfV {
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prog_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prog_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insn_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_type: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub attr_unreadable: bool,
}

#[derive(Serialize, Default)]
pub struct MountV {
    pub syscall: &'static str,
    #[serde(flatten)]
    pub source: StrField,
    #[serde(flatten)]
    pub target: StrField,
    #[serde(flatten)]
    pub fstype: StrField,
    pub flags: Vec<String>,
}

/// `file` of `file.mount` / `file.umount`: the mount point.
#[derive(Serialize)]
pub struct MountFileV {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_b64: Option<String>,
    pub path_truncated: bool,
}

/// `times` of `file.utime`: RFC 3339, or `now` / `omit`.
#[derive(Serialize)]
pub struct TimesV {
    pub atime: String,
    pub mtime: String,
}

/// Every top-level object a security event may carry, flattened into the native line.
#[derive(Serialize, Default)]
pub struct SecurityV {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cred: Option<CredV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caps: Option<CapsV>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub caps_unreadable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ptrace: Option<PtraceV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<SignalV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rename: Option<RenameV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memfd: Option<MemfdV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns: Option<NsV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dup: Option<DupV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<ModuleV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf: Option<BpfV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount: Option<MountV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<MountFileV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<NetV>,
}

/// An id argument; -1 means "unchanged" and is absent.
fn id(v: u64) -> Option<u32> {
    let v = v as u32;
    (v != u32::MAX).then_some(v)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The target of a record: the task the kernel named, else the pid argument `arg`.
fn target_v(r: &SecRecord, host: &str, arg: Option<i64>) -> TargetV {
    let mut t = TargetV::default();
    match (r.target, arg) {
        (Some(k), _) => {
            t.pid = k.pid as i64;
            t.tid = (k.tid != k.pid).then_some(k.tid);
            t.entity_id = Some(crate::event::process::entity_id(host, k.pid, k.start_ns));
        }
        (None, Some(pid)) => {
            t.pid = pid;
            t.pid_ns = r.caller_pidns.then_some("caller");
        }
        (None, None) => {}
    }
    if let Some(p) = &r.target_info {
        t.exe = p.exe.as_deref().map(lossy);
        t.comm = (!p.comm.is_empty()).then(|| lossy(&p.comm));
        if t.entity_id.is_none() {
            t.entity_id = Some(p.entity_id.clone());
        }
    }
    t
}

/// Two u32 halves of an `extra` word.
fn halves(v: u64) -> (u32, u32) {
    (v as u32, (v >> 32) as u32)
}

fn caps_v(x: &[u64; 4]) -> CapsV {
    // Two `{effective, permitted, inheritable}` structs, back to back.
    let (e0, p0) = halves(x[0]);
    let (i0, e1) = halves(x[1]);
    let (p1, i1) = halves(x[2]);
    let (version, pid) = halves(x[3]);
    // Version 1 has one struct (32 capabilities).
    let two = version != 0x1998_0330;
    let join = |lo: u32, hi: u32| lo as u64 | if two { (hi as u64) << 32 } else { 0 };
    CapsV {
        effective: names::cap_names(join(e0, e1)),
        permitted: names::cap_names(join(p0, p1)),
        inheritable: names::cap_names(join(i0, i1)),
        pid: pid as i32,
        version: format!("0x{version:08x}"),
    }
}

/// A module's name from its file: the base name without `.ko` and a compression suffix.
fn module_name(path: &[u8]) -> Vec<u8> {
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let mut name = base;
    for ext in [&b".xz"[..], b".gz", b".zst"] {
        name = name.strip_suffix(ext).unwrap_or(name);
    }
    name.strip_suffix(b".ko").unwrap_or(name).to_vec()
}

fn comm_text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    lossy(&b[..end])
}

fn extra_bytes(x: &[u64; 4]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, w) in x.iter().enumerate() {
        out[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The objects of a security event, and its `result`.
pub fn security_v(
    kind: EventKind,
    r: &SecRecord,
    tid: u32,
    host: &str,
) -> (SecurityV, Option<ResultV>) {
    let mut v = SecurityV::default();
    let mut result = r.ret.map(ResultV::from_ret);
    let a = &r.args;
    let s = &r.strings;
    let Some(sys) = r.syscall else {
        // The socket kinds; a dup's old and new fd are its first two arguments.
        // The socket kinds.
        let Some(n) = &r.net else {
            return (v, result);
        };
        let mut nv = NetV::new(n);
        if kind == EventKind::NetSocket {
            nv.family = names::family_name(n.family);
            nv.protocol = Some(names::socket_protocol(n.family, n.protocol));
            nv.transport = if n.family == 17 { "packet" } else { "raw" };
            if let (Some(r), Some(fd)) = (result.as_mut(), n.fd) {
                r.fd = Some(fd as i64);
            }
        } else {
            v.dup = Some(DupV {
                oldfd: a[0] as i32,
                newfd: a[1] as i64,
            });
        }
        v.net = Some(nv);
        return (v, result);
    };
    match sys {
        SecSyscall::Setuid => {
            v.cred = Some(CredV {
                syscall: sys.name(),
                uid: id(a[0]),
                ..Default::default()
            })
        }
        SecSyscall::Setgid => {
            v.cred = Some(CredV {
                syscall: sys.name(),
                gid: id(a[0]),
                ..Default::default()
            })
        }
        SecSyscall::Setreuid => {
            v.cred = Some(CredV {
                syscall: sys.name(),
                ruid: id(a[0]),
                euid: id(a[1]),
                ..Default::default()
            })
        }
        SecSyscall::Setregid => {
            v.cred = Some(CredV {
                syscall: sys.name(),
                rgid: id(a[0]),
                egid: id(a[1]),
                ..Default::default()
            })
        }
        SecSyscall::Setresuid => {
            v.cred = Some(CredV {
                syscall: sys.name(),
                ruid: id(a[0]),
                euid: id(a[1]),
                suid: id(a[2]),
                ..Default::default()
            })
        }
        SecSyscall::Setresgid => {
            v.cred = Some(CredV {
                syscall: sys.name(),
                rgid: id(a[0]),
                egid: id(a[1]),
                sgid: id(a[2]),
                ..Default::default()
            })
        }
        SecSyscall::Setfsuid => {
            v.cred = Some(CredV {
                syscall: sys.name(),
                fsuid: id(a[0]),
                previous: r.ret,
                ..Default::default()
            })
        }
        SecSyscall::Setfsgid => {
            v.cred = Some(CredV {
                syscall: sys.name(),
                fsgid: id(a[0]),
                previous: r.ret,
                ..Default::default()
            })
        }
        SecSyscall::Capset => match &r.extra {
            Some(x) => v.caps = Some(caps_v(x)),
            None => v.caps_unreadable = true,
        },
        SecSyscall::Ptrace => {
            let req = a[0];
            let addr = matches!(req, 1..=6).then(|| format!("0x{:x}", a[2]));
            let pid = (req != 0).then_some(a[1] as i32 as i64);
            v.ptrace = Some(PtraceV {
                request: names::ptrace_request(req),
                target: target_v(r, host, pid),
                addr,
            });
        }
        SecSyscall::ProcessVmWritev => {
            v.target = Some(target_v(r, host, Some(a[0] as i32 as i64)));
            v.bytes = r.ret.filter(|&n| n >= 0);
        }
        SecSyscall::Kill | SecSyscall::Tgkill | SecSyscall::Tkill | SecSyscall::PidfdSendSignal => {
            let (sig, pid) = match sys {
                SecSyscall::Tgkill => (a[2], Some(a[0] as i32 as i64)),
                SecSyscall::PidfdSendSignal => (a[1], None),
                _ => (a[1], Some(a[0] as i32 as i64)),
            };
            v.signal = Some(SignalV {
                number: sig,
                name: names::signal_name(sig),
                syscall: sys.name(),
                target: target_v(r, host, pid),
                group: r.target_many || (sys == SecSyscall::Kill && (a[0] as i32) <= 0),
            });
        }
        SecSyscall::TaskRename => {
            let b = r.extra.as_ref().map(extra_bytes).unwrap_or([0; 32]);
            v.rename = Some(RenameV {
                old_comm: comm_text(&b[..16]),
                new_comm: comm_text(&b[16..]),
                tid: r.target.map(|t| t.tid).filter(|&t| t != tid),
            });
            result = Some(ResultV::from_ret(0));
        }
        SecSyscall::MemfdCreate => {
            v.memfd = Some(MemfdV {
                name: StrField::new("name", &s[0]),
                flags: names::memfd_flags(a[1]),
            });
            if let (Some(res), Some(fd)) = (result.as_mut(), r.ret.filter(|&f| f >= 0)) {
                res.fd = Some(fd);
            }
        }
        SecSyscall::Unshare => {
            v.ns = Some(NsV {
                flags: names::clone_flags(a[0]),
                fd: None,
            })
        }
        SecSyscall::Setns => {
            v.ns = Some(NsV {
                flags: names::clone_flags(a[1]),
                fd: Some(a[0] as i32),
            })
        }
        SecSyscall::InitModule | SecSyscall::FinitModule | SecSyscall::DeleteModule => {
            let mut m = ModuleV {
                syscall: sys.name(),
                name: StrField::new("name", &StrArg::default()),
                path: StrField::new("path", &StrArg::default()),
                args: StrField::new("args", &StrArg::default()),
                flags: None,
            };
            if sys == SecSyscall::DeleteModule {
                m.name = StrField::new("name", &s[0]);
                m.flags = Some(names::delete_module_flags(a[1]));
            } else {
                m.args = StrField::new("args", &s[1]);
            }
            if sys == SecSyscall::FinitModule {
                if let Some(p) = s[2].value.as_deref() {
                    let name = StrArg {
                        value: Some(module_name(p)),
                        ..Default::default()
                    };
                    m.name = StrField::new("name", &name);
                }
                m.path = StrField::new("path", &s[2]);
            }
            v.module = Some(m);
        }
        SecSyscall::Bpf => {
            let mut b = BpfV {
                command: names::bpf_command(a[0]),
                ..Default::default()
            };
            match &r.extra {
                Some(x) => {
                    let (ty, insns) = halves(x[0]);
                    b.prog_type = Some(names::bpf_prog_type(ty));
                    b.insn_count = Some(insns);
                    let bytes = extra_bytes(x);
                    b.prog_name = Some(comm_text(&bytes[8..24]));
                    b.attach_type = Some(halves(x[3]).0);
                }
                None => b.attr_unreadable = r.extra_unreadable,
            }
            if let (Some(res), Some(fd)) = (result.as_mut(), r.ret.filter(|&f| f >= 0)) {
                res.fd = Some(fd);
            }
            v.bpf = Some(b);
        }
        SecSyscall::Mount | SecSyscall::Umount2 => {
            let t = str_v(&s[2]);
            v.file = Some(MountFileV {
                path: t.value.unwrap_or_default(),
                path_b64: t.b64,
                path_truncated: t.truncated || t.unreadable,
            });
            let mount = sys == SecSyscall::Mount;
            let none = StrArg::default();
            v.mount = Some(MountV {
                syscall: sys.name(),
                source: StrField::new("source", if mount { &s[0] } else { &none }),
                target: StrField::new("target", &s[2]),
                fstype: StrField::new("fstype", if mount { &s[1] } else { &none }),
                flags: if mount {
                    names::mount_flags(a[3])
                } else {
                    names::umount_flags(a[1])
                },
            });
        }
    }
    (v, result)
}

/// `UTIME_NOW` / `UTIME_OMIT` in a timespec's nanoseconds.
const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// `times` of a utime call.
pub fn times_v(t: &FileTimes) -> Option<TimesV> {
    let one = |(sec, nsec): (i64, i64)| match nsec {
        UTIME_NOW => "now".to_owned(),
        UTIME_OMIT => "omit".to_owned(),
        n => chrono::DateTime::from_timestamp(sec, n.clamp(0, 999_999_999) as u32)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_else(|| format!("{sec}.{n:09}")),
    };
    match t {
        FileTimes::Set([a, m]) => Some(TimesV {
            atime: one(*a),
            mtime: one(*m),
        }),
        FileTimes::Now => Some(TimesV {
            atime: "now".into(),
            mtime: "now".into(),
        }),
        FileTimes::Unreadable => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_and_times() {
        assert_eq!(module_name(b"/lib/modules/x/kernel/nf.ko.zst"), b"nf");
        assert_eq!(module_name(b"plain.ko"), b"plain");
        assert_eq!(module_name(b"/tmp/notamodule"), b"notamodule");
        let t = times_v(&FileTimes::Set([(978_307_200, 0), (0, UTIME_OMIT)])).unwrap();
        assert_eq!(t.atime, "2001-01-01T00:00:00.000000000Z");
        assert_eq!(t.mtime, "omit");
        assert_eq!(times_v(&FileTimes::Now).unwrap().mtime, "now");
        assert!(times_v(&FileTimes::Unreadable).is_none());
    }

    #[test]
    fn caps_of_both_versions() {
        // v3: effective CAP_SYS_ADMIN (21) and CAP_BPF (39, second word bit 7).
        let x = [1u64 << 21, (1u64 << 7) << 32, 0, 0x2008_0522];
        let c = caps_v(&x);
        assert_eq!(c.effective, vec!["CAP_SYS_ADMIN", "CAP_BPF"]);
        assert!(c.permitted.is_empty());
        // v1: the second word is not there.
        let c = caps_v(&[1, (1u64 << 7) << 32, 0, 0x1998_0330]);
        assert_eq!(c.effective, vec!["CAP_CHOWN"]);
    }
}
