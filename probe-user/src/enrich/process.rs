//! Process table keyed by (pid, start time), so a reused pid never inherits another process's
//! metadata. Entries come from exec/fork events, or from /proc for processes that started before
//! the probe, and leave a while after the process exits (late events of other CPUs still match).
use std::{
    collections::{HashMap, VecDeque},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    event::{
        process::{ProcessInfo, Script},
        Body, Event, Task,
    },
    families::process::decode::split_args,
};

/// Stable id of a process instance: FNV-1a 64 over host name, pid and start time (ns since boot),
/// hex encoded. Documented in docs/process.md so consumers can recompute it.
pub fn entity_id(host: &str, pid: u32, start_ns: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(host.as_bytes());
    eat(&[0]);
    eat(&pid.to_le_bytes());
    eat(&start_ns.to_le_bytes());
    format!("{h:016x}")
}

type Key = (u32, u64);

/// One live pid's entry. `exact` is false for entries read from /proc, whose start time has
/// only clock-tick resolution until a kernel event gives the exact one.
#[derive(Clone, Debug)]
struct Slot {
    info: Arc<ProcessInfo>,
    exact: bool,
}

pub struct ProcessTable {
    host: String,
    proc_root: PathBuf,
    /// Nanoseconds per clock tick (for /proc/<pid>/stat start times).
    tick_ns: u64,
    map: HashMap<u32, Slot>,
    /// Exited processes, removed once `linger_ns` has passed.
    graveyard: VecDeque<(u64, Key)>,
    linger_ns: u64,
    /// Upper bound on entries before a sweep against /proc.
    cap: usize,
}

impl ProcessTable {
    pub fn new(host: String, proc_root: PathBuf) -> Self {
        ProcessTable {
            host,
            proc_root,
            tick_ns: crate::clock::tick_ns(),
            map: HashMap::new(),
            graveyard: VecDeque::new(),
            linger_ns: 5_000_000_000,
            cap: 65_536,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Entries kept before a sweep drops those whose process is gone (`limits.process_table`).
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap.max(1);
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Attaches `process` and `parent` to the event and updates the table.
    pub fn enrich(&mut self, ev: &mut Event) {
        let Some(task) = ev.task.as_ref() else { return };
        if task.flags & probe_common::FLAG_NO_PROCESS != 0 {
            return;
        }
        let key = (task.pid, task.start_ns);
        let process = match &ev.body {
            Body::Exec {
                filename,
                interp,
                args,
                args_truncated,
            } => {
                let info = Arc::new(self.after_exec(task, filename, interp, args, *args_truncated));
                self.put(info.clone(), true);
                info
            }
            Body::Fork {
                child_pid,
                child_start_ns,
                thread: false,
                ..
            } => {
                let parent = self.get_or_load(task);
                let child = ProcessInfo {
                    pid: *child_pid,
                    ppid: task.pid,
                    start_ns: *child_start_ns,
                    entity_id: entity_id(&self.host, *child_pid, *child_start_ns),
                    script: None,
                    ..(*parent).clone()
                };
                self.put(Arc::new(child), true);
                parent
            }
            Body::Exit(_) => {
                let info = self.get_or_load(task);
                self.graveyard.push_back((ev.ts_ns, key));
                info
            }
            _ => self.get_or_load(task),
        };
        let approx_start = (task.flags & crate::event::FLAG_START_APPROX != 0)
            .then_some(process.start_ns)
            .filter(|&s| s != task.start_ns);
        ev.process = Some(process);
        if let (Some(s), Some(t)) = (approx_start, ev.task.as_mut()) {
            t.start_ns = s;
        }
        let Some(task) = ev.task.as_ref() else { return };
        if task.flags & crate::event::FLAG_START_APPROX != 0 && task.parent_start_ns == 0 {
            // No exact parent start time: take the parent the table has, never replace it.
            ev.parent = self.map.get(&task.ppid).map(|s| s.info.clone());
        } else if task.ppid != 0 {
            // Field by field: cloning the task would copy its comm only to drop it.
            let ptask = Task {
                kind: task.kind,
                flags: task.flags,
                ts_ns: task.ts_ns,
                pid: task.ppid,
                tid: task.tid,
                ppid: 0,
                uid: task.uid,
                gid: task.gid,
                cgroup_id: task.cgroup_id,
                start_ns: task.parent_start_ns,
                parent_start_ns: 0,
                comm: Vec::new(),
            };
            ev.parent = Some(self.get_or_load(&ptask));
        }
        self.bury(ev.ts_ns);
    }

    fn bury(&mut self, now_ns: u64) {
        while let Some(&(t, key)) = self.graveyard.front() {
            if now_ns.saturating_sub(t) < self.linger_ns {
                break;
            }
            self.graveyard.pop_front();
            if self
                .map
                .get(&key.0)
                .is_some_and(|s| s.info.start_ns == key.1)
            {
                self.map.remove(&key.0);
            }
        }
        if self.map.len() > self.cap {
            self.sweep();
        }
    }

    /// Drops entries whose process is gone (exits we did not see, e.g. lost events).
    fn sweep(&mut self) {
        let root = self.proc_root.clone();
        let tick = self.tick_ns;
        self.map.retain(|&pid, s| {
            proc_start_ns(&root, pid, tick).is_some_and(|st| near(st, s.info.start_ns, tick))
        });
    }

    fn after_exec(
        &self,
        task: &Task,
        filename: &[u8],
        interp: &[u8],
        args: &[Vec<u8>],
        args_truncated: bool,
    ) -> ProcessInfo {
        let dir = self.proc_dir(task.pid);
        let alive = self.same_process(task.pid, task.start_ns);
        // exec keeps the cwd: a short-lived process that is already gone still has the one it
        // inherited at fork.
        let before = self.lookup(task.pid, task.start_ns);
        let cwd = alive
            .then(|| link(&dir.join("cwd")))
            .flatten()
            .or_else(|| before.and_then(|b| b.cwd.clone()));
        // /proc/<pid>/exe is resolved and right inside containers; the kernel's path is the
        // fallback for processes already gone.
        let exe = alive
            .then(|| link(&dir.join("exe")))
            .flatten()
            .or_else(|| absolute(interp, cwd.as_deref()).or_else(|| Some(interp.to_vec())));
        let script = (interp != filename).then(|| Script {
            filename: absolute(filename, cwd.as_deref()).unwrap_or_else(|| filename.to_vec()),
            interpreter: interp.to_vec(),
        });
        ProcessInfo {
            exe,
            cwd,
            args: args.to_vec(),
            args_truncated,
            script,
            ..self.known(task)
        }
    }

    /// What the kernel's header alone tells about the acting process.
    fn known(&self, task: &Task) -> ProcessInfo {
        ProcessInfo {
            pid: task.pid,
            ppid: task.ppid,
            start_ns: task.start_ns,
            entity_id: entity_id(&self.host, task.pid, task.start_ns),
            comm: task.comm.clone(),
            ..Default::default()
        }
    }

    fn proc_dir(&self, pid: u32) -> PathBuf {
        self.proc_root.join(pid.to_string())
    }

    fn same_process(&self, pid: u32, start_ns: u64) -> bool {
        proc_start_ns(&self.proc_root, pid, self.tick_ns)
            .is_some_and(|s| near(s, start_ns, self.tick_ns))
    }

    fn put(&mut self, info: Arc<ProcessInfo>, exact: bool) {
        self.map.insert(info.pid, Slot { info, exact });
    }

    /// The entry for this process instance, if the table has one.
    fn lookup(&self, pid: u32, start_ns: u64) -> Option<&Arc<ProcessInfo>> {
        let s = self.map.get(&pid)?;
        let same = if s.exact {
            s.info.start_ns == start_ns
        } else {
            near(s.info.start_ns, start_ns, self.tick_ns)
        };
        same.then_some(&s.info)
    }

    /// Loads every running process from /proc, so processes that started before the probe
    /// are enriched even when they exit before we hear of them again.
    pub fn snapshot(&mut self) {
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            return;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(info) = self.read_proc(pid, None) {
                self.put(Arc::new(info), false);
            }
        }
    }

    /// Reads /proc/<pid>; with `start_ns`, only when the pid still names that process.
    fn read_proc(&self, pid: u32, start_ns: Option<u64>) -> Option<ProcessInfo> {
        let dir = self.proc_dir(pid);
        let stat = procfs::process::Process::new_with_root(dir.clone())
            .ok()?
            .stat()
            .ok()?;
        let proc_start = stat.starttime * self.tick_ns;
        if start_ns.is_some_and(|s| !near(proc_start, s, self.tick_ns)) {
            return None;
        }
        let start = start_ns.unwrap_or(proc_start);
        let mut info = ProcessInfo {
            pid,
            ppid: stat.ppid.max(0) as u32,
            start_ns: start,
            entity_id: entity_id(&self.host, pid, start),
            comm: stat.comm.into_bytes(),
            exe: link(&dir.join("exe")),
            cwd: link(&dir.join("cwd")),
            ..Default::default()
        };
        if let Ok(raw) = std::fs::read(dir.join("cmdline")) {
            let (args, cut) = split_args(&raw);
            info.args = args;
            info.args_truncated = cut;
        }
        Some(info)
    }

    /// The entry of whatever process `pid` names now (a pid another process passed, with no
    /// start time to check it against): the table's, else one read from /proc.
    pub fn find_pid(&mut self, pid: u32) -> Option<Arc<ProcessInfo>> {
        if let Some(s) = self.map.get(&pid) {
            return Some(s.info.clone());
        }
        let info = Arc::new(self.read_proc(pid, None)?);
        self.put(info.clone(), false);
        Some(info)
    }

    /// The cached entry, or one read from /proc when the pid still names the same process.
    /// Entries from the start-up snapshot get the kernel's exact start time on first use.
    pub fn get_or_load(&mut self, task: &Task) -> Arc<ProcessInfo> {
        let approx = task.flags & crate::event::FLAG_START_APPROX != 0;
        if let Some(slot) = self.map.get(&task.pid) {
            // A start time read from /proc matches the entry of that process, exact or not.
            if approx && near(slot.info.start_ns, task.start_ns, self.tick_ns) {
                return slot.info.clone();
            }
            if slot.exact && slot.info.start_ns == task.start_ns {
                return slot.info.clone();
            }
            if !slot.exact && near(slot.info.start_ns, task.start_ns, self.tick_ns) {
                let mut info = (*slot.info).clone();
                info.start_ns = task.start_ns;
                info.entity_id = entity_id(&self.host, task.pid, task.start_ns);
                let info = Arc::new(info);
                self.put(info.clone(), true);
                return info;
            }
        }
        let info = self
            .read_proc(task.pid, Some(task.start_ns))
            .unwrap_or_else(|| {
                PROC_MISSES.inc();
                self.known(task)
            });
        let info = Arc::new(info);
        self.put(info.clone(), !approx);
        info
    }
}

/// Processes whose /proc entry was gone or unreadable when first needed (`/metrics`).
static PROC_MISSES: std::sync::LazyLock<prometheus_client::metrics::counter::Counter> =
    std::sync::LazyLock::new(|| crate::service::prom::enrich_failure("procfs"));

fn near(a: u64, b: u64, tick: u64) -> bool {
    a.abs_diff(b) < tick
}

/// Start time of `pid` from /proc/<pid>/stat, in ns since boot (tick resolution).
fn proc_start_ns(root: &Path, pid: u32, tick_ns: u64) -> Option<u64> {
    let stat = procfs::process::Process::new_with_root(root.join(pid.to_string()))
        .ok()?
        .stat()
        .ok()?;
    Some(stat.starttime * tick_ns)
}

fn link(p: &Path) -> Option<Vec<u8>> {
    std::fs::read_link(p)
        .ok()
        .map(|l| l.as_os_str().as_bytes().to_vec())
}

/// `p` made absolute against `cwd` (lexically; `None` when relative and cwd is unknown).
pub fn absolute(p: &[u8], cwd: Option<&[u8]>) -> Option<Vec<u8>> {
    if p.first() == Some(&b'/') {
        return Some(p.to_vec());
    }
    let cwd = cwd?;
    let mut out = cwd.to_vec();
    let rel = p.strip_prefix(b"./").unwrap_or(p);
    if out.last() != Some(&b'/') {
        out.push(b'/');
    }
    out.extend_from_slice(rel);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_differ_by_start_time_and_are_stable() {
        let a = entity_id("node1", 100, 5);
        assert_eq!(a, entity_id("node1", 100, 5));
        assert_ne!(a, entity_id("node1", 100, 6));
        assert_ne!(a, entity_id("node2", 100, 5));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(absolute(b"/bin/x", None).unwrap(), b"/bin/x");
        assert_eq!(
            absolute(b"./run.sh", Some(b"/tmp")).unwrap(),
            b"/tmp/run.sh"
        );
        assert_eq!(absolute(b"a", Some(b"/")).unwrap(), b"/a");
        assert_eq!(absolute(b"a", None), None);
    }

    #[test]
    fn own_process_loads_from_proc_and_pid_reuse_does_not_match() {
        let pid = std::process::id();
        let mut t = ProcessTable::new("h".into(), "/proc".into());
        let start = proc_start_ns(Path::new("/proc"), pid, t.tick_ns).unwrap();
        let task = Task {
            kind: probe_common::EventKind::ProcessExit,
            flags: 0,
            ts_ns: 0,
            pid,
            tid: pid,
            ppid: 0,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            start_ns: start,
            parent_start_ns: 0,
            comm: Vec::new(),
        };
        let me = t.get_or_load(&task);
        assert!(me.exe.is_some());
        assert!(!me.args.is_empty());
        assert!(!me.comm.is_empty());
        // Same pid, another start time: a different process, nothing borrowed from /proc.
        let other = t.get_or_load(&Task {
            start_ns: start + 10_000_000_000,
            ..task.clone()
        });
        assert!(other.exe.is_none() && other.args.is_empty());
        assert_ne!(other.entity_id, me.entity_id);
        // A snapshot entry (tick resolution) is matched and upgraded to the exact start time.
        let mut t = ProcessTable::new("h".into(), "/proc".into());
        t.snapshot();
        assert!(t.len() > 1);
        let exact = start + 1234;
        let me2 = t.get_or_load(&Task {
            start_ns: exact,
            ..task.clone()
        });
        assert_eq!(me2.start_ns, exact);
        assert_eq!(me2.entity_id, entity_id("h", pid, exact));
        assert!(!me2.args.is_empty());
    }
}
