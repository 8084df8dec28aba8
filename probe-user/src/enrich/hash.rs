//! SHA-256 of executed files, on a worker thread of its own (never on the drain's or the
//! pipeline's path). A file is opened through the process's own root (`/proc/<pid>/root`, or
//! `/proc/<pid>/exe` while the process still runs that image), checked against what the
//! kernel saw at the exec (device, inode, ctime), and hashed once per (device, inode, size,
//! mtime, ctime). A file that is not the one that ran gets a reason, never a wrong hash.
//! [`HashStage`] holds exec events a bounded time for their hash, in order.
use std::{
    collections::{HashMap, VecDeque},
    fs::File,
    io::Read as _,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc, Arc, Mutex,
    },
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;

use crate::{
    event::{
        process::{ExeInode, HashCell, HashOutcome, ProcessInfo},
        Body, Event, Task,
    },
    families::process::HashConfig,
};

/// Jobs queued for the worker before new ones are refused (counted, with a reason).
const QUEUE: usize = 4096;
/// Outcomes kept; the cache starts over when full.
const CACHE_MAX: usize = 16_384;
/// Cells shared by processes read from /proc; the map starts over when full.
const PROCFS_SHARED_MAX: usize = 16_384;

/// Counters for `probe.stop` and `/metrics`.
#[derive(Debug, Default)]
pub struct HashStats {
    pub requests: AtomicU64,
    pub cache_hits: AtomicU64,
    pub hashed: AtomicU64,
    pub bytes: AtomicU64,
    pub skipped: AtomicU64,
    pub errors: AtomicU64,
    pub queue_full: AtomicU64,
    /// Exec events sent before their hash was ready.
    pub exec_without_hash: AtomicU64,
}

impl HashStats {
    pub fn report(&self) -> serde_json::Value {
        let req = self.requests.load(Relaxed);
        let hits = self.cache_hits.load(Relaxed);
        serde_json::json!({
            "requests": req,
            "cache_hits": hits,
            "cache_hit_rate": if req == 0 { 0.0 } else { hits as f64 / req as f64 },
            "hashed": self.hashed.load(Relaxed),
            "bytes": self.bytes.load(Relaxed),
            "skipped": self.skipped.load(Relaxed),
            "errors": self.errors.load(Relaxed),
            "queue_full": self.queue_full.load(Relaxed),
            "exec_without_hash": self.exec_without_hash.load(Relaxed),
        })
    }
}

/// One file to hash for one image.
struct Job {
    cell: Arc<HashCell>,
    pid: u32,
    start_ns: u64,
    ppid: u32,
    mnt_ns: u32,
    /// Absolute path inside the process's root.
    path: Vec<u8>,
    /// The file that ran, as the kernel saw it (`None` for a script's own file).
    inode: Option<ExeInode>,
}

/// (mount namespace link, exe path) of a process read from /proc.
type SharedKey = (Vec<u8>, Vec<u8>);

/// The pipeline's handle on the worker.
#[derive(Clone)]
pub struct Hasher {
    tx: mpsc::SyncSender<Job>,
    pub stats: Arc<HashStats>,
    /// Woken after each job (the hold stage re-checks its head).
    pub done: Arc<Notify>,
    proc_root: PathBuf,
    /// Processes read from /proc that run the same path in the same mount namespace share
    /// one job: at start-up a node's thousands of workers of a few binaries would otherwise
    /// fill the queue, and real execs after them would be refused.
    procfs_shared: Arc<Mutex<HashMap<SharedKey, Arc<HashCell>>>>,
}

impl Hasher {
    /// Starts the worker thread.
    pub fn start(cfg: &HashConfig, proc_root: PathBuf) -> std::io::Result<Hasher> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let stats = Arc::new(HashStats::default());
        let done = Arc::new(Notify::new());
        let mut w = Worker {
            proc_root: proc_root.clone(),
            max_size: cfg.max_size,
            tick_ns: crate::clock::tick_ns(),
            cache: HashMap::new(),
            stats: stats.clone(),
        };
        let d = done.clone();
        std::thread::Builder::new()
            .name("tprobe-hash".into())
            .spawn(move || {
                for job in rx {
                    let out = w.run(&job);
                    job.cell.set(out);
                    d.notify_one();
                }
            })?;
        Ok(Hasher {
            tx,
            stats,
            done,
            proc_root,
            procfs_shared: Default::default(),
        })
    }

    /// Hash cells for a new image's exe and, for a script, the script's own file.
    pub fn request(
        &self,
        info: &ProcessInfo,
        task: &Task,
    ) -> (Option<Arc<HashCell>>, Option<Arc<HashCell>>) {
        let job = |path: &[u8], inode: Option<ExeInode>| {
            self.send(Job {
                cell: Arc::new(HashCell::default()),
                pid: task.pid,
                start_ns: task.start_ns,
                ppid: task.ppid,
                mnt_ns: task.id.ns[probe_common::NS_MNT],
                path: path.to_vec(),
                inode,
            })
        };
        let exe = info.exe.as_deref().map(|e| job(e, info.exe_inode));
        let script = info.script.as_ref().map(|s| job(&s.filename, None));
        (exe, script)
    }

    /// The hash cell of an image read from /proc (a process older than the probe). No kernel
    /// facts to check the file against, and no mount namespace to borrow a root from: it is
    /// read through the process's own root while it runs, else it gets a reason.
    pub fn request_procfs(&self, info: &ProcessInfo) -> Option<Arc<HashCell>> {
        let exe = info.exe.as_deref()?;
        let ns = super::process::procfs::link(&self.proc_root.join(format!("{}/ns/mnt", info.pid)));
        let key = ns.map(|ns| (ns, exe.to_vec()));
        let mut shared = self.procfs_shared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = key.as_ref().and_then(|k| shared.get(k)) {
            self.stats.requests.fetch_add(1, Relaxed);
            return Some(cell.clone());
        }
        let (cell, queued) = self.try_send(Job {
            cell: Arc::new(HashCell::default()),
            pid: info.pid,
            start_ns: info.start_ns,
            ppid: info.ppid,
            mnt_ns: 0,
            path: exe.to_vec(),
            inode: None,
        });
        // A refused job is not shared: the next process asks again.
        if let (Some(k), true) = (key, queued) {
            if shared.len() >= PROCFS_SHARED_MAX {
                shared.clear();
            }
            shared.insert(k, cell.clone());
        }
        Some(cell)
    }

    fn send(&self, j: Job) -> Arc<HashCell> {
        self.try_send(j).0
    }

    /// The job's cell, and whether the worker took the job (else the cell says why not).
    fn try_send(&self, j: Job) -> (Arc<HashCell>, bool) {
        let cell = j.cell.clone();
        self.stats.requests.fetch_add(1, Relaxed);
        if self.tx.try_send(j).is_err() {
            self.stats.queue_full.fetch_add(1, Relaxed);
            self.stats.errors.fetch_add(1, Relaxed);
            cell.set(HashOutcome::Error("queue_full".into()));
            return (cell, false);
        }
        (cell, true)
    }
}

/// Cache key: what changes when the file's content may have.
type Key = (u64, u64, u64, i64, i64, i64, i64);

fn key_of(m: &std::fs::Metadata) -> Key {
    (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

struct Worker {
    proc_root: PathBuf,
    max_size: u64,
    tick_ns: u64,
    cache: HashMap<Key, HashOutcome>,
    stats: Arc<HashStats>,
}

fn err(s: &str) -> HashOutcome {
    HashOutcome::Error(s.to_owned())
}

impl Worker {
    fn run(&mut self, job: &Job) -> HashOutcome {
        let out = self.hash_job(job);
        match &out {
            HashOutcome::Sha256(_) => {}
            HashOutcome::Skipped(_) => {
                self.stats.skipped.fetch_add(1, Relaxed);
            }
            HashOutcome::Error(_) => {
                self.stats.errors.fetch_add(1, Relaxed);
            }
        }
        out
    }

    fn alive(&self, pid: u32, start_ns: u64) -> bool {
        super::process::procfs::start_ns(&self.proc_root, pid, self.tick_ns)
            .is_some_and(|s| super::process::procfs::near(s, start_ns, self.tick_ns))
    }

    fn same_mnt_ns(&self, pid: u32, ns: u32) -> bool {
        let l = super::process::procfs::link(&self.proc_root.join(format!("{pid}/ns/mnt")));
        ns != 0 && l.is_some_and(|l| l == format!("mnt:[{ns}]").as_bytes())
    }

    /// The directory the process sees as `/`: its own while it runs, else that of its parent
    /// or of pid 1 when they share its mount namespace.
    fn root(&self, job: &Job) -> Option<PathBuf> {
        if self.alive(job.pid, job.start_ns) {
            return Some(self.proc_root.join(format!("{}/root", job.pid)));
        }
        [job.ppid, 1]
            .into_iter()
            .filter(|&p| p != 0)
            .find(|&p| self.same_mnt_ns(p, job.mnt_ns))
            .map(|p| self.proc_root.join(format!("{p}/root")))
    }

    fn hash_job(&mut self, job: &Job) -> HashOutcome {
        // While the process still runs the image, its exe link opens the very file (even a
        // deleted one or a memfd).
        if let Some(want) = job.inode.filter(|i| i.ino != 0) {
            if self.alive(job.pid, job.start_ns) {
                let link = self.proc_root.join(format!("{}/exe", job.pid));
                if let Ok(f) = File::open(&link) {
                    if let Ok(m) = f.metadata() {
                        if m.dev() == want.dev && m.ino() == want.ino {
                            return self.hash_file(f, &m, job.inode);
                        }
                    }
                }
            }
        }
        let Some(root) = self.root(job) else {
            return err("root_unavailable");
        };
        let rel = job.path.strip_prefix(b"/").unwrap_or(&job.path);
        let path = root.join(Path::new(std::ffi::OsStr::from_bytes(rel)));
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) => {
                return err(match e.raw_os_error() {
                    Some(libc::ENOENT) | Some(libc::ENOTDIR) => "not_found",
                    Some(libc::EACCES) | Some(libc::EPERM) => "permission_denied",
                    Some(libc::ELOOP) => "replaced",
                    _ => "io_error",
                })
            }
        };
        let Ok(m) = f.metadata() else {
            return err("io_error");
        };
        self.hash_file(f, &m, job.inode)
    }

    fn hash_file(
        &mut self,
        mut f: File,
        m: &std::fs::Metadata,
        want: Option<ExeInode>,
    ) -> HashOutcome {
        if !m.is_file() {
            return err("not_regular");
        }
        if let Some(w) = want.filter(|w| w.ino != 0) {
            if w.dev != m.dev() || w.ino != m.ino() {
                return err("replaced");
            }
            if w.ctime
                .is_some_and(|(s, n)| s != m.ctime() || n as i64 != m.ctime_nsec())
            {
                return err("modified");
            }
        }
        if m.size() > self.max_size {
            return HashOutcome::Skipped("too_large");
        }
        let key = key_of(m);
        if let Some(h) = self.cache.get(&key) {
            self.stats.cache_hits.fetch_add(1, Relaxed);
            return h.clone();
        }
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    h.update(&buf[..n]);
                    total += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return err("io_error"),
            }
            if total > self.max_size {
                return HashOutcome::Skipped("too_large");
            }
        }
        self.stats.bytes.fetch_add(total, Relaxed);
        // Written to while it was read: the digest is of no one version.
        if f.metadata().map(|a| key_of(&a)).ok() != Some(key) {
            return err("changed_during_hash");
        }
        self.stats.hashed.fetch_add(1, Relaxed);
        let out = HashOutcome::Sha256(hex(&h.finalize()));
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(key, out.clone());
        out
    }
}

use std::os::unix::fs::OpenOptionsExt as _;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether an event must wait for a hash: an exec whose image's hashes are not in yet.
fn waits(ev: &Event) -> bool {
    if !matches!(ev.body, Body::Exec(_)) {
        return false;
    }
    let Some(p) = ev.process.as_deref() else {
        return false;
    };
    let pending = |c: &Option<Arc<HashCell>>| c.as_ref().is_some_and(|c| c.get().is_none());
    pending(&p.hash) || pending(&p.script_hash)
}

/// Holds exec events for their hash, at most `wait`, releasing every event in arrival order.
pub struct HashStage {
    wait: Duration,
    stats: Arc<HashStats>,
    pub done: Arc<Notify>,
    queue: VecDeque<(Event, Instant)>,
}

impl HashStage {
    pub fn new(h: &Hasher, wait: Duration) -> Self {
        HashStage {
            wait,
            stats: h.stats.clone(),
            done: h.done.clone(),
            queue: VecDeque::new(),
        }
    }

    pub fn push(&mut self, ev: Event, out: &mut Vec<Event>) {
        if self.queue.is_empty() && (!waits(&ev) || self.wait.is_zero()) {
            if waits(&ev) {
                self.stats.exec_without_hash.fetch_add(1, Relaxed);
            }
            out.push(ev);
            return;
        }
        self.queue.push_back((ev, Instant::now() + self.wait));
        self.release(false, out);
    }

    /// Moves out the head events whose hash is in or whose time is up (all with `force`).
    pub fn release(&mut self, force: bool, out: &mut Vec<Event>) {
        let now = Instant::now();
        while let Some((ev, deadline)) = self.queue.front() {
            let pending = waits(ev);
            if pending && !force && now < *deadline {
                break;
            }
            if pending {
                self.stats.exec_without_hash.fetch_add(1, Relaxed);
            }
            if let Some((ev, _)) = self.queue.pop_front() {
                out.push(ev);
            }
        }
    }

    /// When the head event's time is up, if one is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.queue.front().map(|(_, d)| *d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_a_file_once_and_refuses_a_replaced_one() {
        let dir = std::env::temp_dir().join(format!("tprobe-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"abc").unwrap();
        let stats = Arc::new(HashStats::default());
        let mut w = Worker {
            proc_root: "/proc".into(),
            max_size: 2,
            tick_ns: 10_000_000,
            cache: HashMap::new(),
            stats: stats.clone(),
        };
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(
            w.hash_file(File::open(&p).unwrap(), &m, None),
            HashOutcome::Skipped("too_large")
        );
        w.max_size = 100;
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        for _ in 0..2 {
            assert_eq!(
                w.hash_file(File::open(&p).unwrap(), &m, None),
                HashOutcome::Sha256(sha.into())
            );
        }
        assert_eq!(stats.cache_hits.load(Relaxed), 1);
        let other = ExeInode {
            dev: m.dev(),
            ino: m.ino() + 1,
            size: 3,
            ctime: None,
        };
        assert_eq!(
            w.hash_file(File::open(&p).unwrap(), &m, Some(other)),
            err("replaced")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Real processes older than the probe: the same binary in the same mount namespace is one
    /// job, so a node's start-up snapshot cannot fill the queue with copies.
    #[test]
    fn processes_from_proc_running_one_binary_share_one_job() {
        let h = Hasher::start(&HashConfig::default(), "/proc".into()).unwrap();
        let mut kids: Vec<_> = (0..3)
            .map(|_| {
                std::process::Command::new("/bin/sleep")
                    .arg("5")
                    .spawn()
                    .unwrap()
            })
            .collect();
        let tick = crate::clock::tick_ns();
        let cells: Vec<_> = kids
            .iter()
            .map(|k| {
                let info = crate::enrich::process::procfs::read(
                    Path::new("/proc"),
                    "h",
                    k.id(),
                    None,
                    None,
                    tick,
                )
                .unwrap();
                h.request_procfs(&info).unwrap()
            })
            .collect();
        assert!(cells.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
        let deadline = Instant::now() + Duration::from_secs(10);
        while cells[0].get().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            matches!(cells[0].get(), Some(HashOutcome::Sha256(_))),
            "{:?}",
            cells[0].get()
        );
        assert_eq!(h.stats.requests.load(Relaxed), 3);
        assert_eq!(
            h.stats.hashed.load(Relaxed) + h.stats.cache_hits.load(Relaxed),
            1,
            "one job for the three"
        );
        for k in &mut kids {
            let _ = k.kill();
            let _ = k.wait();
        }
    }
}
