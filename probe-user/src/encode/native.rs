//! The native JSON-lines format of `shared/schema.md` (`schema: "tprobe/1"`).
use std::sync::OnceLock;

use probe_common::EventKind;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::{
    b64_if_invalid,
    process::{opt_b64, raw, Lossy},
    Encoder,
};
use crate::{
    clock::BootClock,
    event::{
        process::{ProcessInfo, ProcessJson},
        Body, Event,
    },
    families::file::names::flag_names,
};

pub const SCHEMA: &str = "tprobe/1";

pub struct Native {
    host: String,
    clock: BootClock,
    shared: super::process::Shared,
    procs: super::cache::ProcessCache,
}

impl Native {
    pub fn new(host: String, clock: BootClock) -> Self {
        Native {
            host,
            clock,
            shared: Default::default(),
            procs: Default::default(),
        }
    }

    /// Epoch seconds of a boot-clock time (what correlation windows count in).
    pub fn epoch_secs(&self, boot_ns: u64) -> i64 {
        (self.clock.wall_ns(boot_ns) / 1_000_000_000) as i64
    }
}

/// The analyze stage reads fields its fast path does not cover from the native record.
impl crate::analyze::view::Render for Native {
    fn render(&self, ev: &Event) -> serde_json::Value {
        let mut buf = Vec::new();
        self.encode(ev, 0, &mut buf);
        serde_json::from_slice(&buf).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct Host<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct ProcessV<'a> {
    pid: u32,
    tid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    comm: Lossy<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe_b64: Option<&'a RawValue>,
    args: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    args_b64: Option<&'a RawValue>,
    args_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd_b64: Option<&'a RawValue>,
    start_time: StartTime<'a>,
    entity_id: &'a str,
    cgroup_id: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    exe_truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cwd_truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cwd_deleted: bool,
    /// `procfs` for an image read from /proc (absent: the kernel's).
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'static str>,
    #[serde(flatten)]
    id: Option<super::process::IdentityV>,
    #[serde(flatten)]
    hash: super::process::HashFields<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ancestors: Option<&'a RawValue>,
}

/// `start_time`: the process's cached rendering, or one made for this event when the task's
/// start time is more exact than the table's (an entry read from /proc).
enum StartTime<'a> {
    Cached(&'a RawValue),
    Fresh(String),
}

impl Serialize for StartTime<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StartTime::Cached(r) => r.serialize(s),
            StartTime::Fresh(t) => s.serialize_str(t),
        }
    }
}

#[derive(Serialize)]
struct ParentV<'a> {
    pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm: Option<Lossy<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe_b64: Option<&'a RawValue>,
    args: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    args_b64: Option<&'a RawValue>,
    entity_id: &'a str,
}

#[derive(Serialize)]
struct ChildV {
    pid: u32,
    tid: u32,
    entity_id: String,
    thread: bool,
}

#[derive(Serialize)]
struct CpuV {
    user_ms: u64,
    system_ms: u64,
}

#[derive(Serialize)]
struct ExitV {
    code: Option<i32>,
    signal: Option<i32>,
    core_dumped: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<CpuV>,
}

#[derive(Serialize)]
struct LossV<'a> {
    source: &'a str,
    kind: &'a str,
    count: u64,
    since: String,
}

/// `file` of the `file.*` kinds.
#[derive(Serialize)]
struct FileV<'a> {
    path: Lossy<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_b64: Option<String>,
    path_truncated: bool,
    /// False when a relative or fd-based path could not be made absolute.
    path_resolved: bool,
    /// For a relative or fd-based path: where its directory came from (`kernel`, `proc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_from: Option<&'static str>,
    syscall: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<crate::families::file::names::FlagNames>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_path: Option<Lossy<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_path_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_path_truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_path_resolved: Option<bool>,
}

fn file_v(f: &crate::event::file::FileRecord) -> FileV<'_> {
    let unset = |v: u32| (v != u32::MAX).then_some(v);
    let flag_names = flag_names(f);
    let target = f.target.as_deref();
    FileV {
        path: Lossy(&f.path),
        path_b64: b64_if_invalid(&f.path),
        path_truncated: f.path_truncated || f.path_unreadable,
        path_resolved: f.path_resolved,
        resolved_from: f.resolved_from,
        syscall: f.syscall.name(),
        flags: (f.is_open() || !flag_names.is_empty()).then_some(flag_names),
        // Octal with a leading 0 as schema.md shows it: "0644", "04755".
        mode: f.mode_text(),
        uid: f.is_chown().then(|| unset(f.uid)).flatten(),
        gid: f.is_chown().then(|| unset(f.gid)).flatten(),
        fd: f.by_fd.then_some(f.dirfd),
        length: f.is_truncate().then_some(f.length),
        target_path: target.map(Lossy),
        target_path_b64: opt_b64(target),
        target_path_truncated: target.map(|_| f.target_truncated),
        target_path_resolved: target.map(|_| f.target_resolved),
    }
}

fn result_v(f: &crate::event::file::FileRecord) -> super::ResultV {
    let r = super::ResultV::from_ret(f.ret);
    if f.ret >= 0 && f.is_open() {
        return super::ResultV {
            fd: Some(f.ret),
            ..r
        };
    }
    r
}

#[derive(Serialize)]
struct Line<'a> {
    ts: crate::clock::Stamp,
    kind: &'static str,
    seq: u64,
    host: Host<'a>,
    schema: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<super::cache::Cached<ProcessV<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<super::process::ExecV<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    child: Option<ChildV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit: Option<ExitV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loss: Option<LossV<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    net: Option<super::net::NetV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<super::net::DnsV<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<super::ResultV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<super::flow::FlowV<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<&'a crate::event::container::ContainerInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FileV<'a>>,
    /// `file.utime`: the times set.
    #[serde(skip_serializing_if = "Option::is_none")]
    times: Option<super::security::TimesV>,
    /// `file.utime`: the times pointer could not be read (`times` is then absent).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    times_unreadable: bool,
    #[serde(flatten)]
    security: Option<super::security::SecurityV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<super::alert::AlertV<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a crate::event::response::Response>,
}

impl Native {
    fn process<'a>(&self, ev: &'a Event) -> Option<ProcessV<'a>> {
        let t = ev.task.as_ref()?;
        if t.flags & probe_common::FLAG_NO_PROCESS != 0 {
            return None;
        }
        let empty = EMPTY_ARGS.get_or_init(|| raw(&[0u8; 0]));
        let p: Option<&'a ProcessInfo> = ev.process.as_deref();
        let j = p.map(|p| ProcessJson::of(p, &self.clock));
        let start_time = match (p, j) {
            (Some(p), Some(j)) if p.start_ns == t.start_ns => StartTime::Cached(&j.start_time),
            _ => StartTime::Fresh(self.clock.rfc3339(t.start_ns)),
        };
        Some(ProcessV {
            pid: t.pid,
            tid: t.tid,
            ppid: t.ppid,
            uid: t.uid,
            gid: t.gid,
            user: ev.user.as_deref(),
            comm: Lossy(&t.comm),
            comm_b64: b64_if_invalid(&t.comm),
            exe: j.and_then(|j| j.exe.as_deref()),
            exe_b64: j.and_then(|j| j.exe_b64.as_deref()),
            args: j.map(|j| &*j.args).unwrap_or(empty),
            args_b64: j.and_then(|j| j.args_b64.as_deref()),
            args_truncated: p.is_some_and(|p| p.args_truncated),
            cwd: j.and_then(|j| j.cwd.as_deref()),
            cwd_b64: j.and_then(|j| j.cwd_b64.as_deref()),
            start_time,
            entity_id: p.map(|p| p.entity_id.as_str()).unwrap_or(""),
            cgroup_id: t.cgroup_id,
            exe_truncated: p.is_some_and(|p| p.exe_truncated),
            cwd_truncated: p.is_some_and(|p| p.cwd_truncated),
            cwd_deleted: p.is_some_and(|p| p.cwd_deleted),
            source: p
                .filter(|p| p.source == crate::event::process::ProcSource::Procfs)
                .map(|_| "procfs"),
            id: super::process::IdentityV::of(t, &self.shared),
            hash: super::process::HashFields::of(p.and_then(|p| p.hash.as_deref())),
            ancestors: ev
                .ancestors
                .as_deref()
                .map(|a| super::process::ancestors_json(a, &self.clock)),
        })
    }
}

/// `[]`, for events whose process is unknown.
static EMPTY_ARGS: OnceLock<Box<RawValue>> = OnceLock::new();

impl Encoder for Native {
    fn encode(&self, ev: &Event, seq: u64, out: &mut Vec<u8>) {
        let parent = ev.parent.as_deref().map(|p| {
            let j = ProcessJson::of(p, &self.clock);
            &**j.as_parent.get_or_init(|| {
                raw(&ParentV {
                    pid: p.pid,
                    comm: (!p.comm.is_empty()).then_some(Lossy(&p.comm)),
                    exe: j.exe.as_deref(),
                    exe_b64: j.exe_b64.as_deref(),
                    args: &j.args,
                    args_b64: j.args_b64.as_deref(),
                    entity_id: &p.entity_id,
                })
            })
        });
        let mut line = Line {
            ts: self.clock.stamp(ev.ts_ns),
            kind: ev.kind_name(),
            seq,
            host: Host { name: &self.host },
            schema: super::native::SCHEMA,
            process: self.procs.get(ev, || self.process(ev)),
            parent,
            exec: None,
            child: None,
            exit: None,
            probe: None,
            loss: None,
            net: None,
            dns: None,
            result: None,
            flow: None,
            container: ev.container.as_deref(),
            file: None,
            times: None,
            times_unreadable: false,
            security: None,
            alert: None,
            response: None,
        };
        self.fill(&mut line, ev, &ev.body);
        // Writing into a Vec cannot fail and every field serialises infallibly.
        let _ = serde_json::to_writer(&mut *out, &line);
        out.push(b'\n');
    }
}

impl Native {
    /// The kind's own objects of `body` (for an alert: its own, then the matched event's).
    /// `event::objects` lists them per body class for the analyze stage: keep the two in step
    /// (a debug assertion in the analyze stage and its tests check it).
    fn fill<'a>(&self, line: &mut Line<'a>, ev: &'a Event, body: &'a Body) {
        match body {
            Body::Exec(x) => {
                line.exec = Some(super::process::ExecV::exec(x, ev.process.as_deref()));
            }
            Body::ExecFailed(f) => {
                line.exec = Some(super::process::ExecV::failed(f));
                line.result = Some(super::ResultV::from_ret(f.ret));
            }
            Body::Fork {
                child_pid,
                child_tid,
                child_start_ns,
                thread,
            } => {
                line.child = Some(ChildV {
                    pid: *child_pid,
                    tid: *child_tid,
                    entity_id: crate::event::process::entity_id(
                        &self.host,
                        *child_pid,
                        *child_start_ns,
                    ),
                    thread: *thread,
                });
            }
            Body::Exit(s) => {
                line.exit = Some(ExitV {
                    code: s.code,
                    signal: s.signal,
                    core_dumped: s.core_dumped,
                    cpu: s.cpu.map(|c| CpuV {
                        user_ms: c.user_ms,
                        system_ms: c.system_ms,
                    }),
                });
            }
            Body::File(f) => {
                line.file = Some(file_v(f));
                line.result = Some(result_v(f));
                line.times = f.times.as_ref().and_then(super::security::times_v);
                line.times_unreadable =
                    matches!(f.times, Some(crate::event::file::FileTimes::Unreadable));
            }
            Body::Security(r) => {
                let tid = ev.task.as_ref().map_or(0, |t| t.tid);
                let kind = ev
                    .task
                    .as_ref()
                    .map_or(EventKind::ProcessSetuid, |t| t.kind);
                let (v, result) = super::security::security_v(kind, r, tid, &self.host);
                line.security = Some(v);
                line.result = result;
            }
            Body::Probe { info, .. } => line.probe = Some(info),
            Body::Net(n) => {
                line.net = Some(super::net::NetV::new(n));
                line.dns = super::net::DnsV::new(n);
                line.result = n.ret.map(super::ResultV::from_ret);
            }
            Body::Flow(f) => line.flow = Some(super::flow::FlowV::new(f, &self.clock)),
            Body::Reload { info } => line.probe = Some(info),
            Body::Loss {
                source,
                kind,
                count,
                since_ns,
            } => {
                line.loss = Some(LossV {
                    source,
                    kind,
                    count: *count,
                    since: self.clock.rfc3339(*since_ns),
                });
            }
            Body::Response(r) => line.response = Some(r),
            Body::Alert(a) => {
                line.alert = Some(super::alert::AlertV::new(a));
                if let Some(m) = a.matched.as_deref() {
                    self.fill(line, ev, m);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::event::{Task, FLAG_START_APPROX};

    fn exec_event(args: Vec<Vec<u8>>, exe: &[u8]) -> Event {
        let task = Task {
            kind: probe_common::EventKind::ProcessExec,
            flags: 0,
            ts_ns: 1,
            pid: 10,
            tid: 10,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 7,
            start_ns: 1,
            parent_start_ns: 0,
            comm: b"a\nb".to_vec(),
            exec_id: 0,
            id: Default::default(),
        };
        let info = ProcessInfo {
            pid: 10,
            exe: Some(exe.to_vec()),
            args: args.clone(),
            entity_id: "e".into(),
            ..Default::default()
        };
        Event {
            ts_ns: 1,
            task: Some(task),
            body: Body::Exec(Box::new(crate::event::process::ExecRecord {
                filename: exe.to_vec(),
                interp: exe.to_vec(),
                exe: exe.to_vec(),
                args,
                ..Default::default()
            })),
            process: Some(Arc::new(info)),
            parent: None,
            ancestors: None,
            user: None,
            container: None,
        }
    }

    fn encode(ev: &Event) -> serde_json::Value {
        let n = Native::new("h".into(), BootClock::measure());
        let mut out = Vec::new();
        n.encode(ev, 3, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(
            out.iter().filter(|&&b| b == b'\n').count(),
            1,
            "one line per event"
        );
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn odd_bytes_are_lossy_with_exact_base64() {
        let v = encode(&exec_event(
            vec![b"x".to_vec(), vec![0xff, b'a'], vec![], b"l1\nl2".to_vec()],
            b"/tmp/\xe9t\xe9",
        ));
        assert_eq!(v["seq"], 3);
        assert_eq!(v["kind"], "process.exec");
        assert_eq!(v["schema"], "tprobe/1");
        let p = &v["process"];
        assert_eq!(
            p["args"],
            serde_json::json!(["x", "\u{fffd}a", "", "l1\nl2"])
        );
        assert_eq!(
            p["args_b64"],
            serde_json::json!(["eA==", "/2E=", "", "bDEKbDI="])
        );
        assert_eq!(p["exe"], "/tmp/\u{fffd}t\u{fffd}");
        assert_eq!(p["exe_b64"], "L3RtcC/pdOk=");
        assert_eq!(p["comm"], "a\nb");
        assert!(p.get("comm_b64").is_none());
        assert_eq!(p["cgroup_id"], 7);
    }

    /// The per-thread `process` cache never shows a stale object: one encoder fed a thread's
    /// events as its context changes writes what a fresh encoder writes for each.
    #[test]
    fn cached_process_objects_follow_every_change() {
        let long = Native::new("h".into(), BootClock::measure());
        let mut ev = exec_event(vec![b"a".to_vec()], b"/bin/a");
        ev.body = Body::Fork {
            child_pid: 11,
            child_tid: 11,
            child_start_ns: 2,
            thread: false,
        };
        let hash = crate::enrich::process::new_cell();
        type Step = Box<dyn Fn(&mut Event)>;
        let mut steps: Vec<Step> = vec![
            Box::new(|_| {}),
            Box::new(|e| e.task.as_mut().unwrap().id.euid = 1000),
            Box::new(|e| e.task.as_mut().unwrap().id.cap_effective = 1 << 21),
            Box::new(|e| e.task.as_mut().unwrap().comm = b"renamed".to_vec()),
            Box::new(|e| e.user = Some("root".into())),
            Box::new(|e| e.task.as_mut().unwrap().flags |= FLAG_START_APPROX),
        ];
        let h = hash.clone();
        steps.push(Box::new(move |e| {
            let mut p = (**e.process.as_ref().unwrap()).clone();
            p.hash = Some(h.clone());
            e.process = Some(Arc::new(p));
        }));
        let h = hash.clone();
        steps.push(Box::new(move |_| {
            h.set(crate::event::process::HashOutcome::Sha256("ab".into()))
        }));
        steps.push(Box::new(|e| {
            let mut p = (**e.process.as_ref().unwrap()).clone();
            p.args = vec![b"b".to_vec()];
            e.process = Some(Arc::new(p));
        }));
        for step in &steps {
            step(&mut ev);
            // Twice: the second is the cached rendering.
            for _ in 0..3 {
                let mut got = Vec::new();
                long.encode(&ev, 1, &mut got);
                let mut want = Vec::new();
                Native::new("h".into(), long.clock).encode(&ev, 1, &mut want);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want)
                );
            }
        }
        let mut out = Vec::new();
        long.encode(&ev, 1, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        // The last steps set an approximate start: the kernel identity is not shown then.
        assert!(v["process"].get("euid").is_none());
        assert_eq!(v["process"]["comm"], "renamed");
        assert_eq!(v["process"]["hash"]["sha256"], "ab");
        assert_eq!(v["process"]["args"], serde_json::json!(["b"]));
    }

    #[test]
    fn valid_utf8_has_no_b64_sibling() {
        let v = encode(&exec_event(
            vec![b"ok".to_vec(), "é".as_bytes().to_vec()],
            b"/bin/ok",
        ));
        assert!(v["process"].get("args_b64").is_none());
        assert!(v["process"].get("exe_b64").is_none());
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }
}
