//! Container enrichment: cgroup id -> cgroup path -> container id and runtime (`cgroup.rs`) ->
//! metadata from the runtime's API (CRI `runtime.v1`, then containerd's own API).
//!
//! Lookups run on a small tokio runtime of their own and fill a cache keyed by cgroup id; the
//! pipeline only reads the cache and never waits on a runtime except through the bounded hold
//! queue of [`ContainerStage`]. Entries go when their cgroup is gone (checked every sweep).
use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    sync::{atomic::Ordering::Relaxed, Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

pub mod cgroup;
pub mod cgroupfs;
pub mod config;
pub mod docker;
pub mod runtime;
pub mod stats;

use crate::event::{
    container::{ContainerInfo, PodInfo},
    Event,
};
use cgroup::CgroupMatch;
use cgroupfs::CgroupFs;
use config::ContainerConfig;
use runtime::{Clients, Outcome};
use stats::ContainerStats;

/// What the path alone tells (the answer when no runtime API knows the container).
fn info_from_cgroup(m: &CgroupMatch) -> ContainerInfo {
    ContainerInfo {
        id: m.id.clone(),
        runtime: m.runtime.map(|r| r.name().to_owned()),
        pod: m.pod_uid.as_ref().map(|uid| PodInfo {
            uid: Some(uid.clone()),
            ..Default::default()
        }),
        source: "cgroup",
        ..Default::default()
    }
}

#[derive(Clone, Debug)]
enum State {
    /// Not a container (or a path we could not read): no `container` field.
    Host,
    /// A runtime lookup is running; the cgroup-only answer is ready meanwhile (`None` for a
    /// path that only the runtime can confirm as a container).
    Pending(Option<Arc<ContainerInfo>>),
    Ready(Arc<ContainerInfo>),
}

struct Entry {
    state: State,
    matched: Option<CgroupMatch>,
    /// Ask the runtime again after this (negative caching).
    retry_at: Option<Instant>,
    last_used: Instant,
    /// Known through a cgroup2 file handle: its absence can be checked.
    by_handle: bool,
}

/// What the pipeline learns about one cgroup id.
#[derive(Clone, Debug)]
pub enum Lookup {
    Host,
    Pending(Option<Arc<ContainerInfo>>),
    Ready(Arc<ContainerInfo>),
}

/// The shared cache and the lookups behind it.
pub struct Resolver {
    cache: Mutex<HashMap<u64, Entry>>,
    clients: Clients,
    cgroupfs: Option<CgroupFs>,
    proc_root: PathBuf,
    negative_ttl: Duration,
    pub stats: ContainerStats,
    /// Woken when a lookup finishes (the pipeline re-checks its hold queue).
    pub done: Notify,
    handle: tokio::runtime::Handle,
}

/// Entries of cgroups we cannot check through a handle go after this long unused.
const IDLE_TTL: Duration = Duration::from_secs(600);

impl Resolver {
    /// Starts the lookup runtime on its own thread and the periodic sweep.
    pub fn start(cfg: &ContainerConfig) -> std::io::Result<Arc<Resolver>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tprobe-containers")
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        // The runtime lives as long as the process: its worker serves every lookup.
        std::mem::forget(rt);
        let r = Arc::new(Resolver {
            cache: Mutex::new(HashMap::new()),
            clients: Clients::new(cfg),
            cgroupfs: CgroupFs::find(),
            proc_root: "/proc".into(),
            negative_ttl: cfg.negative_ttl,
            stats: ContainerStats::default(),
            done: Notify::new(),
            handle,
        });
        if r.cgroupfs.is_none() {
            log::info!("no cgroup2 mount: container lookups use /proc/<pid>/cgroup");
        }
        let weak = Arc::downgrade(&r);
        let every = cfg.sweep_interval;
        r.handle.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(r) = weak.upgrade() else { break };
                r.sweep();
            }
        });
        Ok(r)
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Container path match of a cgroup id (file handle first, then `/proc/<pid>/cgroup`).
    fn find(&self, cgroup_id: u64, pid: u32) -> (Option<Option<CgroupMatch>>, bool) {
        if let Some(fs) = &self.cgroupfs {
            if let Some(p) = fs.path(cgroup_id) {
                return (Some(cgroup::parse_path(&p)), true);
            }
        }
        let file = self.proc_root.join(pid.to_string()).join("cgroup");
        match std::fs::read_to_string(file) {
            Ok(s) => (Some(cgroup::parse_proc_cgroup(&s)), false),
            Err(_) => (None, false),
        }
    }

    /// Cache answer for an event, starting a lookup on a miss or when a negative answer expired.
    pub fn lookup(self: &Arc<Self>, cgroup_id: u64, pid: u32, now: Instant) -> Lookup {
        let mut cache = self.cache.lock().unwrap();
        if let Some(e) = cache.get_mut(&cgroup_id) {
            e.last_used = now;
            if e.retry_at.is_some_and(|t| now >= t) {
                if let Some(m) = e.matched.clone() {
                    e.retry_at = None;
                    self.spawn_lookup(cgroup_id, m);
                }
            }
            return match &e.state {
                State::Host => Lookup::Host,
                State::Pending(i) => Lookup::Pending(i.clone()),
                State::Ready(i) => Lookup::Ready(i.clone()),
            };
        }
        drop(cache);
        // Path resolution is a syscall or a /proc read, not a runtime call.
        let (found, by_handle) = self.find(cgroup_id, pid);
        let (state, matched) = match found {
            None => {
                self.stats.path_unknown.fetch_add(1, Relaxed);
                (State::Host, None)
            }
            Some(None) => (State::Host, None),
            Some(Some(m)) => {
                let fallback = (!m.needs_confirmation).then(|| Arc::new(info_from_cgroup(&m)));
                (State::Pending(fallback), Some(m))
            }
        };
        let out = match &state {
            State::Host => Lookup::Host,
            State::Pending(i) => Lookup::Pending(i.clone()),
            State::Ready(i) => Lookup::Ready(i.clone()),
        };
        let m = matched.clone();
        self.cache.lock().unwrap().insert(
            cgroup_id,
            Entry {
                state,
                matched,
                retry_at: None,
                last_used: now,
                by_handle,
            },
        );
        // After the insert: the lookup task updates the entry it finds.
        if let Some(m) = m {
            self.spawn_lookup(cgroup_id, m);
        }
        out
    }

    /// Cache answer without starting anything (for events already held).
    pub fn peek(&self, cgroup_id: u64) -> Lookup {
        match self.cache.lock().unwrap().get(&cgroup_id).map(|e| &e.state) {
            Some(State::Ready(i)) => Lookup::Ready(i.clone()),
            Some(State::Pending(i)) => Lookup::Pending(i.clone()),
            _ => Lookup::Host,
        }
    }

    fn spawn_lookup(self: &Arc<Self>, cgroup_id: u64, m: CgroupMatch) {
        self.stats.lookups.fetch_add(1, Relaxed);
        let r = self.clone();
        self.handle.spawn(async move {
            let outcome = r.clients.lookup(&m, &r.stats).await;
            let retry = Some(Instant::now() + r.negative_ttl);
            let (state, retry_at) = match outcome {
                Outcome::Found(i) => (State::Ready(Arc::new(*i)), None),
                // A free-form `/<namespace>/<id>` path is a container only if containerd says so.
                _ if m.needs_confirmation => (State::Host, retry),
                _ => (State::Ready(Arc::new(info_from_cgroup(&m))), retry),
            };
            if let Some(e) = r.cache.lock().unwrap().get_mut(&cgroup_id) {
                // A refresh that failed keeps what an earlier lookup found.
                let keep = matches!(e.state, State::Ready(ref i) if i.source != "cgroup")
                    && !matches!(state, State::Ready(ref i) if i.source != "cgroup");
                if !keep {
                    e.state = state;
                }
                e.retry_at = retry_at;
            }
            r.done.notify_one();
        });
    }

    /// Drops entries whose cgroup is gone (and idle ones we cannot check).
    pub fn sweep(&self) {
        let now = Instant::now();
        let ids: Vec<(u64, bool, Instant)> = self
            .cache
            .lock()
            .unwrap()
            .iter()
            .map(|(k, e)| (*k, e.by_handle, e.last_used))
            .collect();
        let gone: Vec<u64> = ids
            .into_iter()
            .filter(|(id, by_handle, used)| match (&self.cgroupfs, by_handle) {
                (Some(fs), true) => !fs.exists(*id),
                _ => now.duration_since(*used) > IDLE_TTL,
            })
            .map(|(id, ..)| id)
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut cache = self.cache.lock().unwrap();
        for id in gone {
            if cache.remove(&id).is_some() {
                self.stats.evicted.fetch_add(1, Relaxed);
            }
        }
    }

    /// Counters and cache contents for `probe.stop`.
    pub fn report(&self) -> serde_json::Value {
        let cache = self.cache.lock().unwrap();
        let mut ids: Vec<&str> = cache
            .values()
            .filter_map(|e| match &e.state {
                State::Ready(i) | State::Pending(Some(i)) => Some(i.id.as_str()),
                State::Pending(None) => None,
                State::Host => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let s = &self.stats;
        serde_json::json!({
            "cache_entries": cache.len(),
            "cached_containers": ids,
            "lookups": s.lookups.load(Relaxed),
            "found_cri": s.found_cri.load(Relaxed),
            "found_containerd": s.found_containerd.load(Relaxed),
            "not_found": s.not_found.load(Relaxed),
            "cri_errors": s.cri_errors.load(Relaxed),
            "containerd_errors": s.containerd_errors.load(Relaxed),
            "found_docker": s.found_docker.load(Relaxed),
            "docker_errors": s.docker_errors.load(Relaxed),
            "path_unknown": s.path_unknown.load(Relaxed),
            "held": s.held.load(Relaxed),
            "emitted_without_metadata": s.emitted_without_metadata.load(Relaxed),
            "hold_overflow": s.hold_overflow.load(Relaxed),
            "evicted": s.evicted.load(Relaxed),
        })
    }
}

/// The pipeline's container step: attaches `container` and holds events whose container's
/// first lookup is in flight, for at most `wait`, releasing them in arrival order.
pub struct ContainerStage {
    pub resolver: Arc<Resolver>,
    wait: Duration,
    capacity: usize,
    /// Events in order; `Some(cgroup id)` while their container is still pending.
    queue: VecDeque<(Event, Option<u64>, Instant)>,
}

impl ContainerStage {
    pub fn new(resolver: Arc<Resolver>, cfg: &ContainerConfig) -> Self {
        ContainerStage {
            resolver,
            wait: cfg.wait,
            capacity: cfg.hold_capacity.max(1),
            queue: VecDeque::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes an enriched event; appends to `out` whatever may go out now, in order.
    pub fn push(&mut self, mut ev: Event, out: &mut Vec<Event>) {
        let now = Instant::now();
        let mut pending = None;
        if let Some(t) = &ev.task {
            match self.resolver.lookup(t.cgroup_id, t.pid, now) {
                Lookup::Host => {}
                Lookup::Ready(i) => ev.container = Some(i),
                Lookup::Pending(i) if self.wait.is_zero() => {
                    self.resolver
                        .stats
                        .emitted_without_metadata
                        .fetch_add(1, Relaxed);
                    ev.container = i;
                }
                Lookup::Pending(_) => pending = Some(t.cgroup_id),
            }
        }
        if pending.is_some() {
            self.resolver.stats.held.fetch_add(1, Relaxed);
        }
        if pending.is_none() && self.queue.is_empty() {
            self.finish(&mut ev, pending, false);
            out.push(ev);
            return;
        }
        self.queue.push_back((ev, pending, now + self.wait));
        if self.queue.len() > self.capacity {
            self.resolver.stats.hold_overflow.fetch_add(1, Relaxed);
            if let Some((mut ev, p, _)) = self.queue.pop_front() {
                self.finish(&mut ev, p, true);
                out.push(ev);
            }
        }
        self.release(false, out);
    }

    /// Fills `container` of an event leaving the queue.
    fn finish(&self, ev: &mut Event, pending: Option<u64>, late: bool) {
        let Some(id) = pending else { return };
        match self.resolver.peek(id) {
            Lookup::Ready(i) => ev.container = Some(i),
            Lookup::Pending(i) => {
                if late {
                    self.resolver
                        .stats
                        .emitted_without_metadata
                        .fetch_add(1, Relaxed);
                }
                ev.container = i;
            }
            Lookup::Host => ev.container = None,
        }
    }

    /// Moves out the head events whose lookup finished or whose time is up (all with `force`).
    pub fn release(&mut self, force: bool, out: &mut Vec<Event>) {
        let now = Instant::now();
        while let Some((_, pending, deadline)) = self.queue.front() {
            let ready = match pending {
                None => true,
                Some(id) => !matches!(self.resolver.peek(*id), Lookup::Pending(_)),
            };
            let late = !ready && (force || now >= *deadline);
            if !ready && !late {
                break;
            }
            let (mut ev, p, _) = self.queue.pop_front().unwrap();
            self.finish(&mut ev, p, late);
            out.push(ev);
        }
    }

    /// When the head event's time is up, if one is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.queue.front().map(|(_, _, d)| *d)
    }
}

/// What the pipeline's receive returned.
pub enum Received {
    /// A batch from the drain (possibly empty: a reload's wake-up).
    Batch(Vec<Event>),
    /// A held event may be due (lookup done or time up); no batch.
    Timer,
    /// The drain side is gone.
    Closed,
}

impl From<Option<Vec<Event>>> for Received {
    fn from(b: Option<Vec<Event>>) -> Self {
        b.map_or(Received::Closed, Received::Batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::container::{config::socket_choice, runtime::pod_labels};

    #[test]
    fn socket_choice_flags() {
        assert_eq!(socket_choice(Some("none"), &["/"]), None);
        assert_eq!(socket_choice(Some(""), &["/"]), None);
        assert_eq!(
            socket_choice(None, &["/nonexistent/x", "/"]),
            Some("/".into())
        );
        assert_eq!(socket_choice(Some("auto"), &["/nonexistent/x"]), None);
        assert_eq!(
            socket_choice(Some("/run/x.sock"), &[]),
            Some("/run/x.sock".into())
        );
    }

    #[test]
    fn cgroup_only_object_says_what_the_path_says() {
        let m = cgroup::parse_path(&format!(
            "/kubepods/besteffort/pod0b5f6c2e-8d4a-4f1b-9c3d-2e7a6b5c4d3e/{}",
            "a".repeat(64)
        ))
        .unwrap();
        let v = serde_json::to_value(info_from_cgroup(&m)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "id": "a".repeat(64),
                "pod": { "uid": "0b5f6c2e-8d4a-4f1b-9c3d-2e7a6b5c4d3e" },
                "source": "cgroup",
            })
        );
    }

    #[test]
    fn pod_labels_drop_kubelet_keys() {
        let l: HashMap<String, String> = [
            ("io.kubernetes.pod.name", "p"),
            ("io.kubernetes.pod.uid", "u"),
            ("app", "web"),
        ]
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
        let out = pod_labels(l);
        assert_eq!(out.len(), 1);
        assert_eq!(out["app"], "web");
    }

    fn entry(state: State) -> Entry {
        Entry {
            state,
            matched: None,
            retry_at: None,
            last_used: Instant::now(),
            by_handle: false,
        }
    }

    fn event(cgroup_id: u64, pid: u32) -> Event {
        let mut ev = Event::probe(
            1,
            crate::event::Body::Exit(crate::event::ExitStatus::from_wait_status(0)),
        );
        ev.task = Some(crate::event::Task {
            kind: probe_common::EventKind::ProcessExit,
            flags: 0,
            ts_ns: 1,
            pid,
            tid: pid,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id,
            start_ns: 1,
            parent_start_ns: 0,
            comm: b"x".to_vec(),
            exec_id: 0,
            id: Default::default(),
        });
        ev
    }

    /// Held events leave in arrival order: a host event behind a pending one waits for it.
    #[test]
    fn hold_queue_keeps_order_and_counts_late_events() {
        let cfg = ContainerConfig {
            wait: Duration::from_secs(60),
            ..Default::default()
        };
        let r = Resolver::start(&cfg).unwrap();
        let info = |src| {
            Arc::new(ContainerInfo {
                id: "c1".into(),
                source: src,
                ..Default::default()
            })
        };
        {
            let mut c = r.cache.lock().unwrap();
            c.insert(42, entry(State::Pending(Some(info("cgroup")))));
            c.insert(43, entry(State::Host));
            c.insert(44, entry(State::Pending(Some(info("cgroup")))));
        }
        let mut stage = ContainerStage::new(r.clone(), &cfg);
        let mut out = Vec::new();
        stage.push(event(43, 1), &mut out);
        assert_eq!(out.len(), 1, "nothing held: straight through");
        out.clear();
        stage.push(event(42, 2), &mut out);
        stage.push(event(43, 3), &mut out);
        assert!(
            out.is_empty(),
            "the host event waits behind the pending one"
        );
        r.cache.lock().unwrap().get_mut(&42).unwrap().state = State::Ready(info("cri"));
        stage.release(false, &mut out);
        let pids: Vec<u32> = out.iter().map(|e| e.task.as_ref().unwrap().pid).collect();
        assert_eq!(pids, [2, 3]);
        assert_eq!(out[0].container.as_ref().unwrap().source, "cri");
        assert!(out[1].container.is_none());
        out.clear();
        // Time up (forced here): the cgroup-only object goes out, counted.
        stage.push(event(44, 4), &mut out);
        assert!(out.is_empty());
        stage.release(true, &mut out);
        assert_eq!(out[0].container.as_ref().unwrap().source, "cgroup");
        assert_eq!(r.stats.emitted_without_metadata.load(Relaxed), 1);
        assert_eq!(r.stats.held.load(Relaxed), 2);
        assert!(stage.is_empty());
    }

    /// A cgroup id that names a real cgroup2 directory resolves to its path.
    #[test]
    fn own_cgroup_resolves_through_a_file_handle() {
        let Some(fs) = CgroupFs::find() else { return };
        let Some(rel) = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|s| cgroup::v2_path(&s).map(str::to_owned))
        else {
            return;
        };
        use std::os::unix::fs::MetadataExt as _;
        let dir = fs.mount.join(rel.trim_start_matches('/'));
        let Ok(md) = std::fs::metadata(&dir) else {
            return;
        };
        match fs.path(md.ino()) {
            Some(p) => assert_eq!(p.trim_end_matches('/'), rel.trim_end_matches('/')),
            // Without CAP_DAC_READ_SEARCH (not root) handles are refused: /proc is the fallback.
            None => assert!(!nix::unistd::Uid::effective().is_root()),
        }
        assert!(fs.exists(md.ino()) || !nix::unistd::Uid::effective().is_root());
    }
}
