//! Process table keyed by (pid, start time), so a reused pid never inherits another process's
//! metadata, with one entry per exec image selected by the header's exec id: exe, argv and cwd
//! of an image are those the kernel read at its exec, whatever the process did later. Entries
//! come from exec/fork events, or from /proc (`procfs.rs`) for processes that started before the
//! probe, and leave a while after the process exits (late events of other CPUs still match).
pub mod procfs;

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    sync::Arc,
};

use crate::event::{
    process::{Ancestors, ExecRecord, HashCell, ProcSource, ProcessInfo, Script},
    Body, Event, Task, FLAG_START_APPROX,
};
use procfs::near;

use crate::event::process::entity_id;

type Key = (u32, u64);

/// Images kept per process: a process that execs more often than this loses the oldest.
const IMAGES_MAX: usize = 8;
/// Instances kept per pid (a reused pid while the old one's late events still come).
const SLOTS_MAX: usize = 4;

/// One process instance. `exact` is false for entries read from /proc, whose start time has
/// only clock-tick resolution until a kernel event gives the exact one.
#[derive(Clone, Debug)]
struct Slot {
    start_ns: u64,
    exact: bool,
    /// Oldest first.
    images: Vec<Arc<ProcessInfo>>,
    /// The last ancestor chain handed out for this process, reused while it stays the same.
    ancestors: Option<Arc<Ancestors>>,
}

impl Slot {
    fn new(info: Arc<ProcessInfo>, exact: bool) -> Self {
        Slot {
            start_ns: info.start_ns,
            exact,
            images: vec![info],
            ancestors: None,
        }
    }

    fn is(&self, start_ns: u64, approx: bool, tick: u64) -> bool {
        if self.exact && !approx {
            self.start_ns == start_ns
        } else {
            near(self.start_ns, start_ns, tick)
        }
    }

    /// The image that was current at `ts_ns` (the first one if none began before).
    fn image_at(&self, ts_ns: u64) -> Option<&Arc<ProcessInfo>> {
        self.images
            .iter()
            .rev()
            .find(|i| i.exec_ts_ns <= ts_ns)
            .or_else(|| self.images.first())
    }

    fn push_image(&mut self, info: Arc<ProcessInfo>) {
        self.images.retain(|i| i.exec_id != info.exec_id);
        self.images.push(info);
        if self.images.len() > IMAGES_MAX {
            self.images.remove(0);
        }
    }
}

pub struct ProcessTable {
    host: String,
    proc_root: PathBuf,
    /// Nanoseconds per clock tick (for /proc/<pid>/stat start times).
    tick_ns: u64,
    map: HashMap<u32, Vec<Slot>, foldhash::fast::RandomState>,
    slots: usize,
    /// Exited processes, removed once `linger_ns` has passed.
    graveyard: VecDeque<(u64, Key)>,
    linger_ns: u64,
    /// Upper bound on entries before a sweep against /proc.
    cap: usize,
    /// Most ancestors on an event (`--ancestors`; 0: none).
    ancestors_max: usize,
    /// Hashes executables off the pipeline thread (`None` with `--no-hash`).
    hasher: Option<crate::enrich::hash::Hasher>,
    /// The ancestor walk's list, reused.
    walk: Vec<Arc<ProcessInfo>>,
}

impl ProcessTable {
    pub fn new(host: String, proc_root: PathBuf) -> Self {
        ProcessTable {
            host,
            proc_root,
            tick_ns: crate::clock::tick_ns(),
            map: HashMap::default(),
            slots: 0,
            graveyard: VecDeque::new(),
            linger_ns: 5_000_000_000,
            cap: 65_536,
            ancestors_max: 5,
            hasher: None,
            walk: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots
    }

    pub fn is_empty(&self) -> bool {
        self.slots == 0
    }

    /// Entries kept before a sweep drops those whose process is gone (`limits.process_table`).
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap.max(1);
    }

    /// Most ancestors each event carries (`--ancestors`).
    pub fn set_ancestors(&mut self, n: usize) {
        self.ancestors_max = n;
    }

    /// Hash the executables of new images with `h`.
    pub fn set_hasher(&mut self, h: crate::enrich::hash::Hasher) {
        self.hasher = Some(h);
    }

    pub fn hasher(&self) -> Option<&crate::enrich::hash::Hasher> {
        self.hasher.as_ref()
    }

    /// Attaches `process`, `parent` and `ancestors` to the event and updates the table.
    pub fn enrich(&mut self, ev: &mut Event) {
        let Some(task) = ev.task.as_ref() else { return };
        if task.flags & probe_common::FLAG_NO_PROCESS != 0 {
            return;
        }
        let key = (task.pid, task.start_ns);
        let process = match &ev.body {
            Body::Exec(x) => {
                let info = Arc::new(self.after_exec(task, x));
                self.put_image(info.clone());
                info
            }
            Body::Fork {
                child_pid,
                child_start_ns,
                thread: false,
                ..
            } => {
                let parent = self.image_of(task);
                // The child runs the parent's image (fork copies the exec id) until it execs.
                let child = ProcessInfo {
                    pid: *child_pid,
                    ppid: task.pid,
                    start_ns: *child_start_ns,
                    parent_start_ns: task.start_ns,
                    entity_id: entity_id(&self.host, *child_pid, *child_start_ns),
                    exec_id: Some(task.exec_id),
                    exec_ts_ns: ev.ts_ns,
                    script: None,
                    ..(*parent).clone()
                };
                self.put_image(Arc::new(child));
                parent
            }
            Body::Exit(_) => {
                let info = self.image_of(task);
                self.graveyard.push_back((ev.ts_ns, key));
                info
            }
            _ => self.image_of(task),
        };
        let approx_start = (task.flags & FLAG_START_APPROX != 0)
            .then_some(process.start_ns)
            .filter(|&s| s != task.start_ns);
        ev.process = Some(process);
        if let (Some(s), Some(t)) = (approx_start, ev.task.as_mut()) {
            t.start_ns = s;
        }
        let Some(task) = ev.task.as_ref() else { return };
        let ts = ev.ts_ns;
        if task.flags & FLAG_START_APPROX != 0 && task.parent_start_ns == 0 {
            // No exact parent start time: take the parent the table has, never replace it.
            ev.parent = self
                .map
                .get(&task.ppid)
                .and_then(|v| v.last())
                .and_then(|s| s.image_at(ts).cloned());
        } else if task.ppid != 0 {
            ev.parent = Some(self.process_at(task.ppid, task.parent_start_ns, ts));
        }
        if self.ancestors_max > 0 {
            if let Some(p) = ev.parent.clone() {
                ev.ancestors = self.ancestors(key, p, ts);
            }
        }
        self.bury(ev.ts_ns);
    }

    /// The chain above `parent` (parent first), reused from the last event of `key` when it
    /// is made of the same images.
    fn ancestors(&mut self, key: Key, parent: Arc<ProcessInfo>, ts: u64) -> Option<Arc<Ancestors>> {
        // The common case, an unchanged chain, is checked by reference: cloning each link to
        // compare it was two atomic operations per ancestor and event.
        if let Some(a) = self
            .find(key.0, key.1, false)
            .and_then(|s| s.ancestors.as_ref())
        {
            if self.chain_is(&a.list, &parent, ts) {
                return Some(a.clone());
            }
        }
        // Walked into a list kept across events.
        let mut list = std::mem::take(&mut self.walk);
        list.clear();
        list.push(parent);
        while list.len() < self.ancestors_max {
            let Some(img) = self.link_above(&list, ts).cloned() else {
                break;
            };
            list.push(img);
        }
        let Some(slot) = self.slot_mut(key.0, key.1, false) else {
            self.walk = list;
            return None;
        };
        let a = Arc::new(Ancestors {
            list,
            json: Default::default(),
        });
        slot.ancestors = Some(a.clone());
        Some(a)
    }

    /// The image a chain walk adds above the last of `chain` at `ts`; `None` where the walk
    /// ends: at init or a process without a parent, a parent not in the table, or a loop (pid
    /// reuse seen through tick-resolution start times).
    fn link_above(&self, chain: &[Arc<ProcessInfo>], ts: u64) -> Option<&Arc<ProcessInfo>> {
        let last = chain.last()?;
        if last.ppid == 0 || last.pid <= 1 {
            return None;
        }
        let img = self
            .find(last.ppid, last.parent_start_ns, true)?
            .image_at(ts)?;
        (!chain.iter().any(|a| a.pid == img.pid)).then_some(img)
    }

    /// Whether the walk of [`Self::ancestors`] from `parent` at `ts` gives exactly `list`.
    fn chain_is(&self, list: &[Arc<ProcessInfo>], parent: &Arc<ProcessInfo>, ts: u64) -> bool {
        if list.first().is_none_or(|f| !Arc::ptr_eq(f, parent)) {
            return false;
        }
        let mut n = 1;
        while n < self.ancestors_max {
            match (self.link_above(&list[..n], ts), list.get(n)) {
                (None, None) => return true,
                (Some(img), Some(want)) if Arc::ptr_eq(img, want) => n += 1,
                _ => return false,
            }
        }
        n == list.len()
    }

    fn find(&self, pid: u32, start_ns: u64, approx: bool) -> Option<&Slot> {
        let tick = self.tick_ns;
        self.map
            .get(&pid)?
            .iter()
            .rev()
            .find(|s| s.is(start_ns, approx, tick))
    }

    fn slot_mut(&mut self, pid: u32, start_ns: u64, approx: bool) -> Option<&mut Slot> {
        let tick = self.tick_ns;
        self.map
            .get_mut(&pid)?
            .iter_mut()
            .rev()
            .find(|s| s.is(start_ns, approx, tick))
    }

    fn bury(&mut self, now_ns: u64) {
        while let Some(&(t, key)) = self.graveyard.front() {
            if now_ns.saturating_sub(t) < self.linger_ns {
                break;
            }
            self.graveyard.pop_front();
            if let Some(v) = self.map.get_mut(&key.0) {
                let before = v.len();
                v.retain(|s| s.start_ns != key.1);
                self.slots -= before - v.len();
                if v.is_empty() {
                    self.map.remove(&key.0);
                }
            }
        }
        if self.slots > self.cap {
            self.sweep();
        }
    }

    /// Drops entries whose process is gone (exits we did not see, e.g. lost events).
    fn sweep(&mut self) {
        let root = self.proc_root.clone();
        let tick = self.tick_ns;
        let mut slots = 0;
        self.map.retain(|&pid, v| {
            let st = procfs::start_ns(&root, pid, tick);
            v.retain(|s| st.is_some_and(|st| near(st, s.start_ns, tick)));
            slots += v.len();
            !v.is_empty()
        });
        self.slots = slots;
    }

    fn after_exec(&self, task: &Task, x: &ExecRecord) -> ProcessInfo {
        let cwd = x.cwd.clone();
        let memfd_name = x
            .exe_pseudo
            .then(|| x.exe.strip_prefix(b"memfd:").map(<[u8]>::to_vec))
            .flatten();
        let exe = if x.exe_pseudo {
            // As /proc/<pid>/exe names such a file.
            Some([b"/".as_slice(), &x.exe].concat())
        } else if x.exe.is_empty() {
            absolute(&x.interp, cwd.as_deref()).or_else(|| Some(x.interp.clone()))
        } else {
            Some(x.exe.clone())
        };
        let script = (x.interp != x.filename).then(|| Script {
            filename: absolute(&x.filename, cwd.as_deref()).unwrap_or_else(|| x.filename.clone()),
            interpreter: x.interp.clone(),
        });
        let mut info = ProcessInfo {
            exec_id: Some(task.exec_id),
            exec_ts_ns: task.ts_ns,
            source: ProcSource::Kernel,
            exe,
            exe_truncated: x.exe_truncated,
            cwd,
            cwd_truncated: x.cwd_truncated,
            cwd_deleted: x.cwd_deleted,
            args: x.args.clone(),
            args_truncated: x.args_truncated,
            filename: Some(x.filename.clone()),
            script,
            fileless: x.nlink0 || memfd_name.is_some(),
            memfd_name,
            exe_inode: x.inode,
            ..self.known(task)
        };
        if let Some(h) = &self.hasher {
            let (exe, script) = h.request(&info, task);
            info.hash = exe;
            info.script_hash = script;
        }
        info
    }

    /// What the kernel's header alone tells about the acting process.
    fn known(&self, task: &Task) -> ProcessInfo {
        ProcessInfo {
            pid: task.pid,
            ppid: task.ppid,
            start_ns: task.start_ns,
            parent_start_ns: task.parent_start_ns,
            entity_id: entity_id(&self.host, task.pid, task.start_ns),
            comm: task.comm.clone(),
            exec_id: Some(task.exec_id),
            exec_ts_ns: task.ts_ns,
            ..Default::default()
        }
    }

    /// Adds an image to its process's slot (a new slot for a new instance).
    fn put_image(&mut self, info: Arc<ProcessInfo>) {
        let (pid, start) = (info.pid, info.start_ns);
        if let Some(slot) = self.slot_mut(pid, start, false) {
            slot.push_image(info);
            return;
        }
        self.put_slot(Slot::new(info, true));
    }

    fn put_slot(&mut self, slot: Slot) {
        let v = self.map.entry(slot.images[0].pid).or_default();
        v.push(slot);
        self.slots += 1;
        if v.len() > SLOTS_MAX {
            v.remove(0);
            self.slots -= 1;
        }
    }

    /// The latest image of process (pid, start): for a process another one acts on (a ptrace
    /// tracee, a signal's receiver), whose exec id the kernel did not send.
    pub fn latest_image(&mut self, task: &Task) -> Arc<ProcessInfo> {
        if let Some(i) = self
            .slot_mut(task.pid, task.start_ns, false)
            .and_then(|s| s.images.last().cloned())
        {
            return i;
        }
        self.image_of(task)
    }

    /// The process `pid` names now (a pid another process passed, with no start time to check
    /// it against): the table's newest instance, else one read from /proc.
    pub fn find_pid(&mut self, pid: u32) -> Option<Arc<ProcessInfo>> {
        if let Some(i) = self
            .map
            .get(&pid)
            .and_then(|v| v.last())
            .and_then(|s| s.images.last().cloned())
        {
            return Some(i);
        }
        let info = procfs::read(&self.proc_root, &self.host, pid, None, None, self.tick_ns)?;
        let info = Arc::new(self.with_hash(info));
        self.put_slot(Slot::new(info.clone(), false));
        Some(info)
    }

    /// A /proc image with the hash of its exe asked for.
    fn with_hash(&self, mut info: ProcessInfo) -> ProcessInfo {
        if let Some(h) = &self.hasher {
            info.hash = h.request_procfs(&info);
        }
        info
    }

    /// Loads every running process from /proc, so processes that started before the probe
    /// are enriched even when they exit before we hear of them again.
    pub fn snapshot(&mut self) {
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            return;
        };
        let mut found = Vec::new();
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(info) = procfs::read(
                &self.proc_root,
                &self.host,
                pid,
                None,
                Some(0),
                self.tick_ns,
            ) {
                found.push(info);
            }
        }
        let starts: HashMap<u32, u64> = found.iter().map(|i| (i.pid, i.start_ns)).collect();
        for mut info in found {
            info.parent_start_ns = starts.get(&info.ppid).copied().unwrap_or(0);
            let info = self.with_hash(info);
            self.put_slot(Slot::new(Arc::new(info), false));
        }
    }

    /// The image of the task's process that acted: the one of its exec id; a /proc image not
    /// yet matched to a kernel event takes that exec id. A process the table does not know is
    /// read from /proc when the pid still names it (marked so), else only the header is known.
    /// Entries from the start-up snapshot get the kernel's exact start time on first use.
    pub fn image_of(&mut self, task: &Task) -> Arc<ProcessInfo> {
        let approx = task.flags & FLAG_START_APPROX != 0;
        let host = self.host.clone();
        if let Some(slot) = self.slot_mut(task.pid, task.start_ns, approx) {
            if !slot.exact && !approx {
                // The kernel's exact start time: the entity id is made from it.
                slot.exact = true;
                slot.start_ns = task.start_ns;
                for img in slot.images.iter_mut() {
                    let mut i = (**img).clone();
                    i.start_ns = task.start_ns;
                    i.entity_id = entity_id(&host, task.pid, task.start_ns);
                    *img = Arc::new(i);
                }
                slot.ancestors = None;
            }
            if approx {
                // From /proc (a flow's owner): no exec id, the latest image.
                if let Some(i) = slot.images.last() {
                    return i.clone();
                }
            }
            if let Some(i) = slot.images.iter().find(|i| i.exec_id == Some(task.exec_id)) {
                return i.clone();
            }
            if let Some(pos) = slot.images.iter().position(|i| i.exec_id.is_none()) {
                let mut i = (*slot.images[pos]).clone();
                i.exec_id = Some(task.exec_id);
                let i = Arc::new(i);
                slot.images[pos] = i.clone();
                return i;
            }
        }
        let info = procfs::read(
            &self.proc_root,
            &self.host,
            task.pid,
            Some(task.start_ns),
            None,
            self.tick_ns,
        )
        .map(|mut i| {
            i.exec_id = (!approx).then_some(task.exec_id);
            i.parent_start_ns = task.parent_start_ns;
            self.with_hash(i)
        })
        .unwrap_or_else(|| {
            PROC_MISSES.inc();
            self.known(task)
        });
        let info = Arc::new(info);
        match self.slot_mut(task.pid, task.start_ns, approx) {
            Some(slot) => slot.push_image(info.clone()),
            None => self.put_slot(Slot::new(info.clone(), !approx)),
        }
        info
    }

    /// The image of process (pid, start) that was current at `ts_ns`; loaded from /proc the
    /// way [`Self::image_of`] does when the table does not know the process.
    fn process_at(&mut self, pid: u32, start_ns: u64, ts_ns: u64) -> Arc<ProcessInfo> {
        if let Some(i) = self
            .find(pid, start_ns, false)
            .and_then(|s| s.image_at(ts_ns))
        {
            return i.clone();
        }
        let info = procfs::read(
            &self.proc_root,
            &self.host,
            pid,
            Some(start_ns),
            None,
            self.tick_ns,
        )
        .map(|i| self.with_hash(i))
        .unwrap_or_else(|| {
            PROC_MISSES.inc();
            ProcessInfo {
                pid,
                start_ns,
                entity_id: entity_id(&self.host, pid, start_ns),
                ..Default::default()
            }
        });
        let info = Arc::new(info);
        self.put_slot(Slot::new(info.clone(), true));
        info
    }
}

/// Processes whose /proc entry was gone or unreadable when first needed (`/metrics`).
static PROC_MISSES: std::sync::LazyLock<prometheus_client::metrics::counter::Counter> =
    std::sync::LazyLock::new(|| crate::service::prom::enrich_failure("procfs"));

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

/// A hash slot for a new image: the hasher fills it.
pub fn new_cell() -> Arc<HashCell> {
    Arc::new(HashCell::default())
}

#[cfg(test)]
mod tests;
