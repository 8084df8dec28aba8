//! Process table keyed by (pid, start time), so a reused pid never inherits another process's
//! metadata. Entries come from exec/fork events, or from /proc for processes that started before
//! the probe, and leave a while after the process exits (late events of other CPUs still match).
use std::{
    collections::{HashMap, VecDeque},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::event::{Body, Event, Task};

/// What we know about one process instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub start_ns: u64,
    pub entity_id: String,
    pub comm: Vec<u8>,
    pub exe: Option<Vec<u8>>,
    pub cwd: Option<Vec<u8>>,
    pub args: Vec<Vec<u8>>,
    pub args_truncated: bool,
    /// Set for exec events of scripts: the file that was executed when it is not `exe`.
    pub exec_filename: Option<Vec<u8>>,
}

/// Stable id of a process instance: FNV-1a 64 over host name, pid and start time (ns since boot),
/// hex encoded. Documented in the README so consumers can recompute it.
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

pub struct ProcessTable {
    host: String,
    proc_root: PathBuf,
    /// Nanoseconds per clock tick (for /proc/<pid>/stat start times).
    tick_ns: u64,
    map: HashMap<Key, Arc<ProcessInfo>>,
    /// Exited processes, removed once `linger_ns` has passed.
    graveyard: VecDeque<(u64, Key)>,
    linger_ns: u64,
    /// Upper bound on entries before a sweep against /proc.
    cap: usize,
}

impl ProcessTable {
    pub fn new(host: String, proc_root: PathBuf) -> Self {
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|&v| v > 0)
            .unwrap_or(100) as u64;
        ProcessTable {
            host,
            proc_root,
            tick_ns: 1_000_000_000 / hz,
            map: HashMap::new(),
            graveyard: VecDeque::new(),
            linger_ns: 5_000_000_000,
            cap: 65_536,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Attaches `process` and `parent` to the event and updates the table.
    pub fn enrich(&mut self, ev: &mut Event) {
        let Some(task) = ev.task.as_ref() else { return };
        let key = (task.pid, task.start_ns);
        let process = match &ev.body {
            Body::Exec { filename, args, args_truncated } => {
                let info = Arc::new(self.after_exec(task, filename, args, *args_truncated));
                self.map.insert(key, info.clone());
                info
            }
            Body::Fork { child_pid, child_start_ns, thread: false, .. } => {
                let parent = self.get_or_load(task);
                let child = ProcessInfo {
                    pid: *child_pid,
                    ppid: task.pid,
                    start_ns: *child_start_ns,
                    entity_id: entity_id(&self.host, *child_pid, *child_start_ns),
                    exec_filename: None,
                    ..(*parent).clone()
                };
                self.map.insert((*child_pid, *child_start_ns), Arc::new(child));
                parent
            }
            Body::Exit(_) => {
                let info = self.get_or_load(task);
                self.graveyard.push_back((ev.ts_ns, key));
                info
            }
            _ => self.get_or_load(task),
        };
        ev.process = Some(process);
        if task.ppid != 0 {
            let ptask = Task {
                pid: task.ppid,
                start_ns: task.parent_start_ns,
                ppid: 0,
                comm: Vec::new(),
                ..task.clone()
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
            self.map.remove(&key);
        }
        if self.map.len() > self.cap {
            self.sweep();
        }
    }

    /// Drops entries whose process is gone (exits we did not see, e.g. lost events).
    fn sweep(&mut self) {
        let root = self.proc_root.clone();
        let tick = self.tick_ns;
        self.map
            .retain(|&(pid, start), _| proc_start_ns(&root, pid, tick).is_some_and(|s| near(s, start, tick)));
    }

    fn after_exec(
        &self,
        task: &Task,
        filename: &[u8],
        args: &[Vec<u8>],
        args_truncated: bool,
    ) -> ProcessInfo {
        let dir = self.proc_dir(task.pid);
        let alive = self.same_process(task.pid, task.start_ns);
        // exec keeps the cwd: a short-lived process that is already gone still has the one it
        // inherited at fork.
        let before = self.map.get(&(task.pid, task.start_ns));
        let cwd = alive
            .then(|| link(&dir.join("cwd")))
            .flatten()
            .or_else(|| before.and_then(|b| b.cwd.clone()));
        let from_proc = if alive { link(&dir.join("exe")) } else { None };
        let filename_abs = absolute(filename, cwd.as_deref());
        // Without /proc, resolve symlinks ourselves so `exe` reads the same either way.
        let exe = from_proc
            .clone()
            .or_else(|| filename_abs.as_deref().map(|f| canonical(f).unwrap_or_else(|| f.to_vec())));
        // A script: the kernel ran an interpreter for the file that was named.
        let exec_filename = match (&from_proc, &filename_abs) {
            (Some(e), Some(f)) if e != f && canonical(f).as_deref() != Some(e.as_slice()) => {
                Some(f.clone())
            }
            _ => None,
        };
        ProcessInfo {
            pid: task.pid,
            ppid: task.ppid,
            start_ns: task.start_ns,
            entity_id: entity_id(&self.host, task.pid, task.start_ns),
            comm: task.comm.clone(),
            exe,
            cwd,
            args: args.to_vec(),
            args_truncated,
            exec_filename,
        }
    }

    fn proc_dir(&self, pid: u32) -> PathBuf {
        self.proc_root.join(pid.to_string())
    }

    fn same_process(&self, pid: u32, start_ns: u64) -> bool {
        proc_start_ns(&self.proc_root, pid, self.tick_ns)
            .is_some_and(|s| near(s, start_ns, self.tick_ns))
    }

    /// The cached entry, or one read from /proc when the pid still names the same process.
    pub fn get_or_load(&mut self, task: &Task) -> Arc<ProcessInfo> {
        let key = (task.pid, task.start_ns);
        if let Some(p) = self.map.get(&key) {
            return p.clone();
        }
        let mut info = ProcessInfo {
            pid: task.pid,
            ppid: task.ppid,
            start_ns: task.start_ns,
            entity_id: entity_id(&self.host, task.pid, task.start_ns),
            comm: task.comm.clone(),
            ..Default::default()
        };
        if self.same_process(task.pid, task.start_ns) {
            let dir = self.proc_dir(task.pid);
            info.exe = link(&dir.join("exe"));
            info.cwd = link(&dir.join("cwd"));
            if let Ok(raw) = std::fs::read(dir.join("cmdline")) {
                let (args, cut) = crate::decode::split_args(&raw);
                info.args = args;
                info.args_truncated = cut;
            }
            if info.comm.is_empty() {
                if let Ok(c) = std::fs::read(dir.join("comm")) {
                    info.comm = c.strip_suffix(b"\n").unwrap_or(&c).to_vec();
                }
            }
        }
        let info = Arc::new(info);
        self.map.insert(key, info.clone());
        info
    }
}

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

fn canonical(p: &[u8]) -> Option<Vec<u8>> {
    std::fs::canonicalize(std::ffi::OsStr::from_bytes(p))
        .ok()
        .map(|c| c.as_os_str().as_bytes().to_vec())
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
        assert_eq!(absolute(b"./run.sh", Some(b"/tmp")).unwrap(), b"/tmp/run.sh");
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
        let other = t.get_or_load(&Task { start_ns: start + 10_000_000_000, ..task });
        assert!(other.exe.is_none() && other.args.is_empty());
        assert_ne!(other.entity_id, me.entity_id);
    }
}
