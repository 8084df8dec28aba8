//! The `process` parts of a native line that are more than copies of a field: the identity
//! the kernel read at the event, hashes, ancestors, the `exec` object, and the shared
//! renderings every process object uses. A leaf of the native encoder (imports no encoder).
use std::{cell::RefCell, collections::HashMap, sync::Arc};

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::b64_if_invalid;
use crate::{
    clock::BootClock,
    event::{
        process::{
            Ancestors, ExecFailure, ExecRecord, HashCell, HashOutcome, ProcessInfo, ProcessJson,
        },
        Task, FLAG_START_APPROX,
    },
    families::process::names::{tty_name, CapNames},
};

/// Bytes rendered as a string, bad UTF-8 replaced with U+FFFD.
pub struct Lossy<'a>(pub &'a [u8]);

impl Serialize for Lossy<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(self.0))
    }
}

/// Serialises `v` once into a raw JSON value.
pub fn raw<T: Serialize + ?Sized>(v: &T) -> Box<RawValue> {
    // Serialising our own plain data cannot fail, and what serde_json writes is valid JSON.
    RawValue::from_string(serde_json::to_string(v).unwrap_or_else(|_| "null".into()))
        .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"))
}

impl ProcessJson {
    pub fn of<'a>(p: &'a ProcessInfo, clock: &BootClock) -> &'a ProcessJson {
        p.json.get_or_init(|| {
            let args: Vec<Lossy<'_>> = p.args.iter().map(|a| Lossy(a)).collect();
            let any_bad = p.args.iter().any(|a| std::str::from_utf8(a).is_err());
            let exe = p.exe.as_deref();
            let cwd = p.cwd.as_deref();
            ProcessJson {
                exe: exe.map(|e| raw(&Lossy(e))),
                exe_b64: opt_b64(exe).map(|b| raw(&b)),
                args: raw(&args),
                args_b64: any_bad.then(|| {
                    use base64::Engine as _;
                    let b: Vec<String> = p
                        .args
                        .iter()
                        .map(|a| base64::engine::general_purpose::STANDARD.encode(a))
                        .collect();
                    raw(&b)
                }),
                cwd: cwd.map(|c| raw(&Lossy(c))),
                cwd_b64: opt_b64(cwd).map(|b| raw(&b)),
                start_time: raw(&clock.rfc3339(p.start_ns)),
                as_parent: Default::default(),
            }
        })
    }
}

pub fn opt_b64(b: Option<&[u8]>) -> Option<String> {
    b.and_then(b64_if_invalid)
}

/// Renderings of values many processes share, made once each: terminal names, and capability
/// sets (root's two are 1.2 KB of names, escaped for every exec otherwise).
#[derive(Default)]
pub struct Shared {
    ttys: RefCell<HashMap<u32, Option<Arc<RawValue>>>>,
    caps: RefCell<HashMap<(u64, u64), Arc<RawValue>>>,
}

/// Distinct capability pairs kept; past it the map starts again (a bound, not an expectation).
const MAX_CAP_SETS: usize = 1024;

impl Shared {
    fn tty(&self, dev: u32) -> Option<Arc<RawValue>> {
        self.ttys
            .borrow_mut()
            .entry(dev)
            .or_insert_with(|| tty_name(dev).map(|n| Arc::from(raw(&n))))
            .clone()
    }

    fn caps(&self, effective: u64, permitted: u64) -> Arc<RawValue> {
        let mut m = self.caps.borrow_mut();
        if m.len() >= MAX_CAP_SETS {
            m.clear();
        }
        m.entry((effective, permitted))
            .or_insert_with(|| {
                Arc::from(raw(&CapsV {
                    effective: CapNames(effective),
                    permitted: CapNames(permitted),
                }))
            })
            .clone()
    }
}

#[derive(Serialize)]
struct CapsV {
    effective: CapNames,
    permitted: CapNames,
}

/// A shared rendering, written as it is.
#[derive(Clone)]
pub struct RawArc(Arc<RawValue>);

impl RawArc {
    /// Renders `v` once.
    pub fn of<T: Serialize + ?Sized>(v: &T) -> RawArc {
        RawArc(Arc::from(raw(v)))
    }
}

impl Serialize for RawArc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[derive(Serialize)]
pub struct NsV {
    pid: u32,
    mnt: u32,
    net: u32,
    user: u32,
    uts: u32,
    ipc: u32,
    cgroup: u32,
}

/// What the kernel read about who acted, at the event.
#[derive(Serialize)]
pub struct IdentityV {
    euid: u32,
    egid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    auid: Option<u32>,
    caps: RawArc,
    #[serde(skip_serializing_if = "Option::is_none")]
    tty: Option<RawArc>,
    ns: NsV,
}

impl IdentityV {
    /// `None` for tasks the kernel did not describe at the event (a flow's owner from /proc).
    pub fn of(t: &Task, shared: &Shared) -> Option<IdentityV> {
        if t.flags & (FLAG_START_APPROX | probe_common::FLAG_NO_PROCESS) != 0 {
            return None;
        }
        let i = &t.id;
        use probe_common::*;
        Some(IdentityV {
            euid: i.euid,
            egid: i.egid,
            auid: i.auid,
            caps: RawArc(shared.caps(i.cap_effective, i.cap_permitted)),
            tty: shared.tty(i.tty).map(RawArc),
            ns: NsV {
                pid: i.ns[NS_PID],
                mnt: i.ns[NS_MNT],
                net: i.ns[NS_NET],
                user: i.ns[NS_USER],
                uts: i.ns[NS_UTS],
                ipc: i.ns[NS_IPC],
                cgroup: i.ns[NS_CGROUP],
            },
        })
    }
}

#[derive(Serialize)]
pub struct Sha256V<'a> {
    sha256: &'a str,
}

/// `hash: {sha256}`, or why there is none: `hash_skipped` (`too_large`, or `pending` when the
/// worker had not finished) or `hash_error`.
#[derive(Serialize, Default)]
pub struct HashFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<Sha256V<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash_skipped: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash_error: Option<&'a str>,
}

impl HashFields<'_> {
    pub fn of(c: Option<&HashCell>) -> HashFields<'_> {
        let Some(c) = c else {
            return HashFields::default();
        };
        match c.get() {
            None => HashFields {
                hash_skipped: Some("pending"),
                ..Default::default()
            },
            Some(HashOutcome::Sha256(h)) => HashFields {
                hash: Some(Sha256V { sha256: h }),
                ..Default::default()
            },
            Some(HashOutcome::Skipped(r)) => HashFields {
                hash_skipped: Some(r),
                ..Default::default()
            },
            Some(HashOutcome::Error(e)) => HashFields {
                hash_error: Some(e),
                ..Default::default()
            },
        }
    }
}

/// The `exec` object: of `process.exec` (the name given to exec, a script's interpreter and
/// own hash, fileless execs) and of `process.exec_failed` (what was asked for).
#[derive(Serialize)]
pub struct ExecV<'a> {
    filename: Lossy<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename_b64: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    filename_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    interpreter: Option<Lossy<'a>>,
    /// A script's path made absolute (when `filename` was relative).
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<Lossy<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<Vec<Lossy<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args_b64: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args_truncated: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fileless: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    memfd_name: Option<Lossy<'a>>,
    #[serde(flatten)]
    hash: HashFields<'a>,
}

impl<'a> ExecV<'a> {
    pub fn exec(x: &'a ExecRecord, p: Option<&'a ProcessInfo>) -> Self {
        let script = p.and_then(|p| p.script.as_ref());
        ExecV {
            filename: Lossy(&x.filename),
            filename_b64: b64_if_invalid(&x.filename),
            filename_truncated: false,
            interpreter: script.map(|s| Lossy(&s.interpreter)),
            path: script
                .filter(|s| s.filename != x.filename)
                .map(|s| Lossy(&s.filename)),
            args: None,
            args_b64: None,
            args_truncated: None,
            fileless: p.is_some_and(|p| p.fileless),
            memfd_name: p.and_then(|p| p.memfd_name.as_deref()).map(Lossy),
            hash: HashFields::of(p.and_then(|p| p.script_hash.as_deref())),
        }
    }

    pub fn failed(f: &'a ExecFailure) -> Self {
        let bad = f.args.iter().any(|a| std::str::from_utf8(a).is_err());
        ExecV {
            filename: Lossy(&f.filename),
            filename_b64: b64_if_invalid(&f.filename),
            filename_truncated: f.filename_truncated,
            interpreter: None,
            path: None,
            args: Some(f.args.iter().map(|a| Lossy(a)).collect()),
            args_b64: bad.then(|| {
                use base64::Engine as _;
                f.args
                    .iter()
                    .map(|a| base64::engine::general_purpose::STANDARD.encode(a))
                    .collect()
            }),
            args_truncated: Some(f.args_truncated),
            fileless: false,
            memfd_name: None,
            hash: HashFields::default(),
        }
    }
}

#[derive(Serialize)]
struct AncestorV<'a> {
    pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<&'a RawValue>,
    args: &'a RawValue,
    entity_id: &'a str,
    start_time: &'a RawValue,
}

/// `process.ancestors`, rendered once per chain.
pub fn ancestors_json<'a>(a: &'a Ancestors, clock: &BootClock) -> &'a RawValue {
    a.json.get_or_init(|| {
        let list: Vec<AncestorV<'_>> = a
            .list
            .iter()
            .map(|p| {
                let j = ProcessJson::of(p, clock);
                AncestorV {
                    pid: p.pid,
                    exe: j.exe.as_deref(),
                    args: &j.args,
                    entity_id: &p.entity_id,
                    start_time: &j.start_time,
                }
            })
            .collect();
        raw(&list)
    })
}
