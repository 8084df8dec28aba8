//! The one userspace event type: decode fills it, enrich completes it, analyze, filter and
//! encode read it. With it, the types every stage shares. A leaf: it imports no stage.
use std::sync::Arc;

use probe_common::EventKind;

pub mod alert;
pub mod container;
pub mod file;
pub mod flow;
pub mod net;
pub mod objects;
pub mod process;
pub mod response;
pub mod security;

use container::ContainerInfo;
use flow::FlowRecord;
use process::ProcessInfo;

/// `Task::flags` (userspace only): `start_ns` has clock-tick resolution (from /proc, e.g. the
/// owner of a flow's socket); the process table matches it to the exact entry it has.
pub const FLAG_START_APPROX: u32 = 1 << 31;

/// Who the acting task was at the event, as the kernel read it (decoded
/// [`probe_common::HeaderIdentity`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub euid: u32,
    pub egid: u32,
    /// Login uid; `None` when unset.
    pub auid: Option<u32>,
    /// Controlling terminal as a kernel `dev_t` (`major << 20 | minor`); 0: none.
    pub tty: u32,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    /// Namespace inode numbers in `probe_common::NS_*` order (0: unknown).
    pub ns: [u32; probe_common::NS_COUNT],
}

/// What the kernel told us about the acting task (decoded [`probe_common::EventHeader`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub kind: EventKind,
    pub flags: u32,
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub start_ns: u64,
    pub parent_start_ns: u64,
    pub comm: Vec<u8>,
    /// Low bits of `self_exec_id`: which exec image of the process acted.
    pub exec_id: u32,
    pub id: Identity,
}

/// CPU time of a whole process, from its task counters at exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTime {
    pub user_ms: u64,
    pub system_ms: u64,
}

impl CpuTime {
    /// Splits the precise runtime in the ratio of the tick-sampled user and system times, as
    /// the kernel does for `/proc/<pid>/stat` (all user when neither was sampled).
    pub fn from_ns(utime: u64, stime: u64, runtime: u64) -> Self {
        let total = utime.saturating_add(stime);
        let (user, system) = if runtime == 0 {
            (utime, stime)
        } else if total == 0 {
            (runtime, 0)
        } else {
            let user = (runtime as u128 * utime as u128 / total as u128) as u64;
            (user, runtime - user)
        };
        CpuTime {
            user_ms: user / 1_000_000,
            system_ms: system / 1_000_000,
        }
    }
}

/// How a process ended, from the wait-status encoding of `task_struct.exit_code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code for a normal exit; `None` when a signal killed the process.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub core_dumped: bool,
    /// CPU time of the whole process (absent for thread exits).
    pub cpu: Option<CpuTime>,
}

impl ExitStatus {
    pub fn from_wait_status(raw: u32) -> Self {
        let sig = (raw & 0x7f) as i32;
        if sig == 0 {
            ExitStatus {
                code: Some(((raw >> 8) & 0xff) as i32),
                signal: None,
                core_dumped: false,
                cpu: None,
            }
        } else {
            ExitStatus {
                code: None,
                signal: Some(sig),
                core_dumped: raw & 0x80 != 0,
                cpu: None,
            }
        }
    }
}

/// Kind-specific data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `process.exec`: what the kernel read at the exec.
    Exec(Box<process::ExecRecord>),
    /// `process.exec_failed`: an execve/execveat that returned an error.
    ExecFailed(Box<process::ExecFailure>),
    Fork {
        child_pid: u32,
        child_tid: u32,
        child_start_ns: u64,
        thread: bool,
    },
    Exit(ExitStatus),
    /// `file.*`: one file syscall with its result.
    File(Box<file::FileRecord>),
    /// `probe.start` / `probe.stop`: a JSON object built by the run loop.
    Probe {
        stop: bool,
        info: serde_json::Value,
    },
    /// `net.*`: addresses, result, DNS question.
    Net(Box<net::NetBody>),
    /// `flow.update` / `flow.end` (and the internal `flow.new`) from XDP.
    Flow(Box<FlowRecord>),
    /// Security events: privilege changes, tampering, modules, BPF, mounts, namespaces,
    /// memfds, sockets in odd places (`families::security`).
    Security(Box<security::SecRecord>),
    /// `probe.reload`: the config was reloaded (SIGHUP); `info` says what changed.
    Reload {
        info: serde_json::Value,
    },
    /// `alert`: a detection made by the analyze stage.
    Alert(Box<Alert>),
    /// `response.<action>`: an action of the respond stage (done, refused, failed, dry run).
    Response(Box<response::Response>),
    /// `probe.loss`.
    Loss {
        source: &'static str,
        kind: String,
        count: u64,
        since_ns: u64,
    },
}

/// `alert`: one detection, by a Sigma rule, an IoC list or a learned baseline. It stands alone:
/// the matched event's process, parent, container and own objects travel with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub source: alert::AlertSource,
    pub rule: Arc<alert::RuleInfo>,
    /// `kind` of the matched event (the last one, for a correlation).
    pub matched_kind: &'static str,
    /// `seq` of the matched event; `None` when it was analysed but not emitted.
    pub matched_seq: Option<u64>,
    /// The matched event's own objects (`file`, `net`, `exec`, ...).
    pub matched: Option<Box<Body>>,
    /// Correlations: the group-by values and the seqs of the contributing events (capped).
    pub group: Vec<(String, String)>,
    pub contributing: Vec<u64>,
    pub ioc: Option<alert::IocHit>,
    /// Baseline alerts: the workload and the value its profile lacks.
    pub baseline: Option<alert::BaselineHit>,
}

/// One event flowing through the pipeline.
#[derive(Clone, Debug)]
pub struct Event {
    /// Event time as boot-clock nanoseconds (converted to wall time by the encoder).
    pub ts_ns: u64,
    /// Absent for events without process context (`probe.*`).
    pub task: Option<Task>,
    pub body: Body,
    pub process: Option<Arc<ProcessInfo>>,
    pub parent: Option<Arc<ProcessInfo>>,
    /// The parent's own ancestors, parent first (`--ancestors`).
    pub ancestors: Option<Arc<process::Ancestors>>,
    /// Name of `task.uid`, when resolvable.
    pub user: Option<Arc<str>>,
    /// The container the task runs in; `None` on the host.
    pub container: Option<Arc<ContainerInfo>>,
}

impl Event {
    /// The `kind` string of the schema.
    pub fn kind_name(&self) -> &'static str {
        match &self.body {
            Body::Probe { stop: false, .. } => "probe.start",
            Body::Probe { stop: true, .. } => "probe.stop",
            Body::Loss { .. } => "probe.loss",
            Body::Flow(f) => f.kind.name(),
            Body::Reload { .. } => "probe.reload",
            Body::Alert(_) => "alert",
            Body::Response(r) => r.action.kind(),
            _ => self
                .task
                .as_ref()
                .map(|t| t.kind.name())
                .unwrap_or("unknown"),
        }
    }

    /// The kernel-side kind of a data event (`None` for `probe.*`). Flow events have no task
    /// when no owning process was found.
    pub fn data_kind(&self) -> Option<EventKind> {
        match &self.body {
            Body::Flow(f) => Some(f.kind),
            Body::Response(_) => None,
            _ => self.task.as_ref().map(|t| t.kind),
        }
    }

    /// `probe.loss`: `count` events of `kind` lost at `source` since `since_ns`.
    pub fn loss(ts_ns: u64, source: &'static str, kind: String, count: u64, since_ns: u64) -> Self {
        Event::probe(
            ts_ns,
            Body::Loss {
                source,
                kind,
                count,
                since_ns,
            },
        )
    }

    /// A flow event without a process (the tracker adds one when it finds the owner).
    pub fn flow(rec: FlowRecord) -> Self {
        Event {
            ts_ns: rec.stats.last_seen_ns,
            task: None,
            body: Body::Flow(Box::new(rec)),
            process: None,
            parent: None,
            ancestors: None,
            user: None,
            container: None,
        }
    }

    pub fn probe(ts_ns: u64, body: Body) -> Self {
        Event {
            ts_ns,
            task: None,
            body,
            process: None,
            parent: None,
            ancestors: None,
            user: None,
            container: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status() {
        assert_eq!(
            ExitStatus::from_wait_status(7 << 8),
            ExitStatus {
                code: Some(7),
                signal: None,
                core_dumped: false,
                cpu: None,
            }
        );
        assert_eq!(
            ExitStatus::from_wait_status(9),
            ExitStatus {
                code: None,
                signal: Some(9),
                core_dumped: false,
                cpu: None,
            }
        );
        assert_eq!(
            ExitStatus::from_wait_status(0x80 | 11),
            ExitStatus {
                code: None,
                signal: Some(11),
                core_dumped: true,
                cpu: None,
            }
        );
    }

    #[test]
    fn cpu_time_splits_the_runtime() {
        let c = CpuTime::from_ns(3_000_000, 1_000_000, 8_000_000);
        assert_eq!((c.user_ms, c.system_ms), (6, 2));
        let c = CpuTime::from_ns(0, 0, 5_000_000);
        assert_eq!((c.user_ms, c.system_ms), (5, 0));
    }
}
