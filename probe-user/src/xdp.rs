//! XDP flow telemetry, userspace side: attach `tprobe_xdp` to the interfaces asked for, then a
//! tracker thread turns kernel flow records and scans of the flow map (active and idle
//! timeouts, as NetFlow/IPFIX exporters do) into `flow.update` / `flow.end` events joined to the
//! process owning the socket, and counts flows lost to LRU eviction.
use std::{
    collections::{HashMap, HashSet},
    ffi::CString,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{mpsc as std_mpsc, Arc},
    time::{Duration, Instant},
};

use aya::{
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray},
    programs::{Xdp, XdpMode},
};
use probe_common::{
    EventKind, FlowEvent, FlowKey, FlowStats, FLOW_END_FIN, FLOW_END_RST, MAP_FLOWS, MAP_XDP_STATS,
    XDP_FLOW_INSERTS, XDP_FLOW_KERNEL_DELETES,
};
use tokio::sync::mpsc;

use crate::{
    clock::BootClock,
    enrich::flows::{FlowOwners, Owner, SocketScanner, IPPROTO_TCP, IPPROTO_UDP},
    event::{Body, Event, Task, FLAG_START_APPROX},
    loader::{HookReport, Probe},
};

/// Name of the XDP program in the eBPF object.
pub const PROGRAM: &str = "tprobe_xdp";
/// Kinds the XDP hook serves (for `tprobe events`).
pub const KINDS: &[EventKind] = &[EventKind::FlowUpdate, EventKind::FlowEnd];

/// `--xdp-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Native (driver) mode when the driver supports it, else generic.
    Auto,
    /// Generic XDP in the kernel network stack: works on every interface.
    Skb,
    /// Native XDP in the driver: fails on interfaces whose driver lacks it.
    Native,
}

impl Mode {
    fn aya(self) -> XdpMode {
        match self {
            Mode::Auto => XdpMode::Default,
            Mode::Skb => XdpMode::Skb,
            Mode::Native => XdpMode::Driver,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Skb => "skb",
            Mode::Native => "native",
        }
    }
}

/// What `--xdp-*` and `--flow-*` ask for, validated.
#[derive(Clone, Debug)]
pub struct XdpConfig {
    pub ifaces: Vec<String>,
    pub mode: Mode,
    /// Replace an XDP program already attached to an interface (e.g. left by a crashed run).
    pub replace: bool,
    pub active_timeout: Duration,
    pub idle_timeout: Duration,
    pub table_size: u32,
}

impl XdpConfig {
    /// How often the flow map is scanned: often enough that a timeout fires within a quarter
    /// of its length, at most once a second.
    pub fn scan_interval(&self) -> Duration {
        (self.idle_timeout.min(self.active_timeout) / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("--xdp-iface {0}: no such network interface")]
    NoSuchInterface(String),
    #[error("--xdp-iface {iface}: {mode} XDP is not supported on this interface ({detail}); try --xdp-mode skb or auto")]
    ModeUnsupported {
        iface: String,
        mode: &'static str,
        detail: String,
    },
    #[error("--xdp-iface {iface}: an XDP program is already attached ({what}); tprobe leaves it alone unless started with --xdp-replace, and never replaces one a running process holds")]
    Occupied { iface: String, what: String },
    #[error("--xdp-iface {iface}: could not replace the XDP program already attached: {detail}")]
    ReplaceFailed { iface: String, detail: String },
    #[error("XDP program {PROGRAM}: {0}")]
    Program(String),
    #[error("eBPF map {0}: {1}")]
    Map(&'static str, String),
}

/// Index of a named interface (0 when there is none).
pub fn ifindex(name: &str) -> u32 {
    CString::new(name)
        .map(|c| unsafe { libc::if_nametoindex(c.as_ptr()) })
        .unwrap_or(0)
}

fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    Some(
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// An XDP program found on an interface before we attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occupant {
    pub id: Option<u32>,
    pub name: Option<String>,
    /// Held by an XDP link (a running process, or a pinned link): it cannot be replaced.
    pub linked: bool,
}

impl Occupant {
    /// Parses the `prog/xdp id N name NAME tag ...` line of `ip -d link show`.
    pub fn parse(ip_link: &str) -> Option<Occupant> {
        let line = ip_link.lines().find(|l| l.contains("prog/xdp"))?.trim();
        let mut it = line.split_whitespace().skip(1);
        let (mut id, mut name) = (None, None);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            match k {
                "id" => id = v.parse().ok(),
                "name" => name = Some(v.to_owned()),
                _ => {}
            }
        }
        Some(Occupant {
            id,
            name,
            linked: false,
        })
    }

    fn ours(&self) -> bool {
        self.name.as_deref() == Some(PROGRAM)
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "program id {}, name {}",
            self.id.map_or("?".into(), |i| i.to_string()),
            self.name.as_deref().unwrap_or("?")
        );
        s.push_str(match (self.linked, self.ours()) {
            (true, true) => ", held by another running tprobe; stop it first",
            (true, false) => ", held by a running process through an XDP link; stop it first",
            (false, true) => {
                ", left behind by an earlier tprobe run that could not detach it (killed on a \
                 kernel without XDP links)"
            }
            (false, false) => ", attached by another tool",
        });
        s
    }
}

/// The XDP program already on `iface`, as `ip -d link` shows it; `None` when there is none
/// (or `ip` is missing: the attach then fails with a plain "busy").
pub fn attached_program(iface: &str) -> Option<Occupant> {
    let out = std::process::Command::new("ip")
        .args(["-d", "link", "show", "dev", iface])
        .output()
        .ok()?;
    let mut o = Occupant::parse(&String::from_utf8_lossy(&out.stdout))?;
    o.linked = o.id.is_some_and(|id| {
        aya::programs::loaded_links().flatten().any(|l| {
            l.program_id() == id && l.link_type().ok() == Some(aya::programs::links::LinkType::Xdp)
        })
    });
    Some(o)
}

/// Removes a netlink-attached XDP program (the kind a crashed run can leave behind; XDP links,
/// which tprobe uses, go away with their process).
fn remove_program(iface: &str) -> Result<(), String> {
    for flavor in ["xdpgeneric", "xdpdrv"] {
        let out = std::process::Command::new("ip")
            .args(["link", "set", "dev", iface, flavor, "off"])
            .output()
            .map_err(|e| format!("running ip: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
    }
    match attached_program(iface) {
        Some(p) => Err(format!("still attached: {}", p.describe())),
        None => Ok(()),
    }
}

/// Maps the XDP tracker reads.
pub struct XdpMaps {
    flows: BpfHashMap<MapData, FlowKey, FlowStats>,
    stats: PerCpuArray<MapData, u64>,
}

/// Loads `tprobe_xdp` and attaches it to every interface of `cfg`; reports each attachment in
/// the probe's hook list. The links detach when the probe's programs are dropped, and the kernel
/// detaches them itself if the process dies.
pub fn attach(probe: &mut Probe, cfg: &XdpConfig) -> Result<XdpMaps, XdpError> {
    let ebpf = probe
        .ebpf_mut()
        .ok_or_else(|| XdpError::Program("probe already detached".into()))?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| XdpError::Program("missing from the object".into()))?
        .try_into()
        .map_err(|e| XdpError::Program(format!("{e}")))?;
    prog.load()
        .map_err(|e| XdpError::Program(format!("verifier/load: {e:?}")))?;
    let mut reports = Vec::new();
    for iface in &cfg.ifaces {
        if ifindex(iface) == 0 {
            return Err(XdpError::NoSuchInterface(iface.clone()));
        }
        if let Some(o) = attached_program(iface) {
            let what = o.describe();
            if !cfg.replace || o.linked {
                return Err(XdpError::Occupied {
                    iface: iface.clone(),
                    what,
                });
            }
            log::warn!("{iface}: replacing the XDP program already attached ({what})");
            remove_program(iface).map_err(|detail| XdpError::ReplaceFailed {
                iface: iface.clone(),
                detail,
            })?;
        }
        prog.attach(iface, cfg.mode.aya())
            .map_err(|e| attach_error(iface, cfg.mode, e))?;
        reports.push(HookReport {
            hook: format!("xdp/{iface} (mode {})", cfg.mode.name()),
            program: PROGRAM,
            attached: true,
            reason: None,
        });
    }
    let flows = ebpf
        .take_map(MAP_FLOWS)
        .ok_or_else(|| XdpError::Map(MAP_FLOWS, "missing".into()))?
        .try_into()
        .map_err(|e| XdpError::Map(MAP_FLOWS, format!("{e}")))?;
    let stats = ebpf
        .take_map(MAP_XDP_STATS)
        .ok_or_else(|| XdpError::Map(MAP_XDP_STATS, "missing".into()))?
        .try_into()
        .map_err(|e| XdpError::Map(MAP_XDP_STATS, format!("{e}")))?;
    probe.hooks.extend(reports);
    Ok(XdpMaps { flows, stats })
}

fn attach_error(iface: &str, mode: Mode, e: aya::programs::ProgramError) -> XdpError {
    use aya::programs::ProgramError;
    let errno = match &e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    };
    let text = format!("{e:?}");
    if let ProgramError::UnknownInterface { .. } = e {
        return XdpError::NoSuchInterface(iface.to_owned());
    }
    let detail = match &e {
        ProgramError::SyscallError(s) => format!("{}: {}", s.call, s.io_error),
        _ => e.to_string(),
    };
    if errno == Some(libc::EOPNOTSUPP) || text.contains("not supported") {
        return XdpError::ModeUnsupported {
            iface: iface.to_owned(),
            mode: mode.name(),
            detail,
        };
    }
    if matches!(errno, Some(libc::EBUSY) | Some(libc::EEXIST)) {
        return XdpError::Occupied {
            iface: iface.to_owned(),
            what: format!("attach refused: {detail}"),
        };
    }
    XdpError::Program(format!("attach to {iface}: {text}"))
}

/// One flow record on its way through the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub kind: EventKind,
    pub key: FlowKey,
    pub stats: FlowStats,
    /// Why the record was made: `fin`, `rst`, `idle_timeout`, `active_timeout`, `probe_stop`.
    pub reason: &'static str,
    pub iface: Option<Arc<str>>,
    /// Packets and bytes since this flow's previous record.
    pub delta_packets: u64,
    pub delta_bytes: u64,
    /// Which end the owning process is (`src` sent the packets), when one was found.
    pub owner_side: Option<&'static str>,
}

impl FlowRecord {
    pub fn from_kernel(kind: EventKind, ev: &FlowEvent) -> Self {
        FlowRecord {
            kind,
            key: ev.key,
            stats: ev.stats,
            reason: match ev.reason {
                FLOW_END_FIN => "fin",
                FLOW_END_RST => "rst",
                _ => "",
            },
            iface: None,
            delta_packets: ev.stats.packets,
            delta_bytes: ev.stats.bytes,
            owner_side: None,
        }
    }

    pub fn src(&self) -> SocketAddr {
        SocketAddr::new(ip_of(&self.key.src, self.key.family), self.key.src_port)
    }

    pub fn dst(&self) -> SocketAddr {
        SocketAddr::new(ip_of(&self.key.dst, self.key.family), self.key.dst_port)
    }
}

pub fn ip_of(b: &[u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*b))
    }
}

impl Event {
    /// A flow event without a process (the tracker adds one when it finds the owner).
    pub fn flow(rec: FlowRecord) -> Self {
        Event {
            ts_ns: rec.stats.last_seen_ns,
            task: None,
            body: Body::Flow(Box::new(rec)),
            process: None,
            parent: None,
            user: None,
            container: None,
        }
    }
}

/// Moves flow records out of a drained batch into the tracker.
/// Socket events tell the tracker who owns a 5-tuple: exact, and still known after the
/// socket is gone (a short connection's flow often ends after its process closed it).
pub fn route(tracker: Option<&Tracker>, batch: &mut Vec<Event>) {
    batch.retain(|ev| {
        if let (Some(t), Body::Net(n), Some(task)) = (tracker, &ev.body, &ev.task) {
            if let Some(ft) = n.five_tuple() {
                let owner = Owner {
                    pid: task.pid,
                    ppid: task.ppid,
                    uid: task.uid,
                    gid: task.gid,
                    start_ns: task.start_ns,
                    comm: task.comm.clone(),
                    cgroup_id: task.cgroup_id,
                };
                let _ = t.tx.send(Msg::Owner(ft, Arc::new(owner)));
            }
        }
        if !matches!(ev.body, Body::Flow(_)) {
            return true;
        }
        if let Some(t) = tracker {
            let _ = t.tx.send(Msg::Record(Box::new(ev.clone())));
        }
        false
    });
}

enum Msg {
    Record(Box<Event>),
    /// A process was seen using this 5-tuple (from a net.* event).
    Owner(crate::net::FiveTuple, Arc<Owner>),
    Stop,
}

/// Handle on the tracker thread.
pub struct Tracker {
    tx: std_mpsc::Sender<Msg>,
    join: std::thread::JoinHandle<serde_json::Value>,
}

impl Tracker {
    pub fn spawn(
        maps: XdpMaps,
        cfg: XdpConfig,
        out: mpsc::Sender<Vec<Event>>,
    ) -> std::io::Result<Tracker> {
        let (tx, rx) = std_mpsc::channel();
        let state = State {
            maps,
            scan_every: cfg.scan_interval(),
            cfg,
            out,
            owners: FlowOwners::default(),
            scanner: SocketScanner::new("/proc".into()),
            ifnames: HashMap::new(),
            flows: HashMap::new(),
            user_deletes: 0,
            evicted: 0,
            ends: 0,
            updates: 0,
            owner_found: 0,
            rescan_wanted: false,
        };
        let join = std::thread::Builder::new()
            .name("tprobe-flows".into())
            .spawn(move || state.run(rx))?;
        Ok(Tracker { tx, join })
    }

    /// Flushes every live flow as `flow.end` and returns the counters for `probe.stop`.
    pub fn finish(self) -> serde_json::Value {
        let _ = self.tx.send(Msg::Stop);
        self.join.join().unwrap_or(serde_json::Value::Null)
    }
}

/// What the tracker remembers of a live flow.
struct Known {
    owner: Option<(Arc<Owner>, &'static str)>,
    /// When we learnt of it, for owner retries.
    seen: Instant,
    /// Counts in the last record sent, for deltas and the active timeout.
    sent_packets: u64,
    sent_bytes: u64,
    sent_at_ns: u64,
}

struct State {
    maps: XdpMaps,
    cfg: XdpConfig,
    scan_every: Duration,
    out: mpsc::Sender<Vec<Event>>,
    owners: FlowOwners,
    scanner: SocketScanner,
    ifnames: HashMap<u32, Option<Arc<str>>>,
    flows: HashMap<FlowKey, Known>,
    user_deletes: u64,
    evicted: u64,
    ends: u64,
    updates: u64,
    owner_found: u64,
    rescan_wanted: bool,
}

/// Longest time after its first packet that a flow's owner is still looked for.
const OWNER_RETRY: Duration = Duration::from_secs(5);
/// Least time between two /proc socket scans (longer when scans are slow, see `may_scan`).
const RESCAN_MIN: Duration = Duration::from_millis(50);

impl State {
    fn run(mut self, rx: std_mpsc::Receiver<Msg>) -> serde_json::Value {
        let mut next_scan = Instant::now() + self.scan_every;
        loop {
            let wait = next_scan.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Msg::Record(ev)) => {
                    let mut out = Vec::new();
                    self.record(ev, &mut out);
                    // Take whatever else is queued before looking for owners once.
                    while let Ok(m) = rx.try_recv() {
                        match m {
                            Msg::Record(ev) => self.record(ev, &mut out),
                            Msg::Owner(t, o) => {
                                self.owners.record(t.protocol, t.local, t.remote, o)
                            }
                            Msg::Stop => {
                                self.resolve_owners();
                                self.send(out);
                                return self.stop();
                            }
                        }
                    }
                    self.resolve_owners();
                    self.send(out);
                }
                Ok(Msg::Owner(t, o)) => self.owners.record(t.protocol, t.local, t.remote, o),
                Ok(Msg::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    return self.stop();
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    // Retry owners of young flows still without one.
                    self.rescan_wanted |= self
                        .flows
                        .values()
                        .any(|k| k.owner.is_none() && k.seen.elapsed() < OWNER_RETRY)
                        && self.owner_relevant();
                    self.resolve_owners();
                    let out = self.scan(false);
                    self.send(out);
                    next_scan = Instant::now() + self.scan_every;
                }
            }
        }
    }

    /// Whether any young owner-less flow is TCP or UDP (the only ones with sockets to find).
    fn owner_relevant(&self) -> bool {
        self.flows.iter().any(|(key, k)| {
            k.owner.is_none()
                && k.seen.elapsed() < OWNER_RETRY
                && matches!(key.proto, IPPROTO_TCP | IPPROTO_UDP)
        })
    }

    fn send(&self, out: Vec<Event>) {
        if !out.is_empty() {
            let _ = self.out.blocking_send(out);
        }
    }

    fn iface(&mut self, index: u32) -> Option<Arc<str>> {
        self.ifnames
            .entry(index)
            .or_insert_with(|| ifname(index).map(Arc::from))
            .clone()
    }

    fn lookup_owner(&self, key: &FlowKey) -> Option<(Arc<Owner>, &'static str)> {
        if key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP {
            return None;
        }
        let src = SocketAddr::new(ip_of(&key.src, key.family), key.src_port);
        let dst = SocketAddr::new(ip_of(&key.dst, key.family), key.dst_port);
        self.owners
            .lookup(key.proto, src, dst)
            .map(|(o, side)| (o, side.name()))
    }

    fn record(&mut self, ev: Box<Event>, out: &mut Vec<Event>) {
        let Event { ts_ns, body, .. } = *ev;
        let Body::Flow(rec) = body else { return };
        match rec.kind {
            EventKind::FlowNew => {
                let owner = self.lookup_owner(&rec.key);
                if owner.is_none() && matches!(rec.key.proto, IPPROTO_TCP | IPPROTO_UDP) {
                    self.rescan_wanted = true;
                }
                self.flows.insert(
                    rec.key,
                    Known {
                        owner,
                        seen: Instant::now(),
                        sent_packets: 0,
                        sent_bytes: 0,
                        sent_at_ns: rec.stats.first_seen_ns,
                    },
                );
            }
            EventKind::FlowEnd => {
                let mut rec = *rec;
                // The kernel removed the flow at FIN/RST: report it once, with the owner found
                // at its start (the socket may be gone by now).
                let known = self.flows.remove(&rec.key);
                let owner = known
                    .as_ref()
                    .and_then(|k| k.owner.clone())
                    .or_else(|| self.lookup_owner(&rec.key));
                if let Some(k) = &known {
                    rec.delta_packets = rec.stats.packets.saturating_sub(k.sent_packets);
                    rec.delta_bytes = rec.stats.bytes.saturating_sub(k.sent_bytes);
                }
                out.push(self.event(rec, owner, ts_ns));
            }
            _ => {}
        }
    }

    /// Scans /proc for flows whose owner is still unknown (rate-limited).
    fn resolve_owners(&mut self) {
        if !self.rescan_wanted {
            return;
        }
        if !self.scanner.may_scan(RESCAN_MIN) {
            return;
        }
        self.rescan_wanted = false;
        self.scanner.scan(&mut self.owners);
        let keys: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, k)| k.owner.is_none() && k.seen.elapsed() < OWNER_RETRY)
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            let owner = self.lookup_owner(&key);
            if let Some(k) = self.flows.get_mut(&key) {
                k.owner = owner;
            }
        }
    }

    fn event(
        &mut self,
        mut rec: FlowRecord,
        owner: Option<(Arc<Owner>, &'static str)>,
        ts_ns: u64,
    ) -> Event {
        rec.iface = self.iface(rec.key.ifindex);
        rec.owner_side = owner.as_ref().map(|(_, s)| *s);
        if rec.kind == EventKind::FlowEnd {
            self.ends += 1;
        } else {
            self.updates += 1;
        }
        let task = owner.map(|(o, _)| {
            self.owner_found += 1;
            Task {
                kind: rec.kind,
                flags: FLAG_START_APPROX,
                ts_ns,
                pid: o.pid,
                tid: o.pid,
                ppid: o.ppid,
                uid: o.uid,
                gid: o.gid,
                cgroup_id: o.cgroup_id,
                start_ns: o.start_ns,
                parent_start_ns: 0,
                comm: o.comm.clone(),
            }
        });
        let mut ev = Event::flow(rec);
        ev.ts_ns = ts_ns;
        ev.task = task;
        ev
    }

    fn counter(&self, idx: u32) -> u64 {
        self.maps
            .stats
            .get(&idx, 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0)
    }

    /// One pass over the flow map: idle flows end, long ones get an update; LRU evictions are
    /// inserted - removed - live (counters read before the pass, so it never over-counts).
    fn scan(&mut self, stopping: bool) -> Vec<Event> {
        let inserts = self.counter(XDP_FLOW_INSERTS);
        let user_deletes = self.user_deletes;
        let mut keys: HashSet<FlowKey> = HashSet::new();
        for k in self.maps.flows.keys().flatten() {
            keys.insert(k);
        }
        let kernel_deletes = self.counter(XDP_FLOW_KERNEL_DELETES);
        let live = keys.len() as u64;
        let present = keys.clone();
        let now = BootClock::now_boot_ns();
        let idle = self.cfg.idle_timeout.as_nanos() as u64;
        let active = self.cfg.active_timeout.as_nanos() as u64;
        let mut out = Vec::new();
        for key in keys {
            let Ok(st) = self.maps.flows.get(&key, 0) else {
                continue;
            };
            let idle_out = now.saturating_sub(st.last_seen_ns) >= idle;
            if stopping || idle_out {
                if self.maps.flows.remove(&key).is_err() {
                    // Gone meanwhile (FIN/RST record or eviction): reported elsewhere.
                    continue;
                }
                self.user_deletes += 1;
                let known = self.flows.remove(&key);
                let owner = known
                    .as_ref()
                    .and_then(|k| k.owner.clone())
                    .or_else(|| self.lookup_owner(&key));
                let mut rec = FlowRecord {
                    kind: EventKind::FlowEnd,
                    key,
                    stats: st,
                    reason: if idle_out {
                        "idle_timeout"
                    } else {
                        "probe_stop"
                    },
                    iface: None,
                    delta_packets: st.packets,
                    delta_bytes: st.bytes,
                    owner_side: None,
                };
                if let Some(k) = &known {
                    rec.delta_packets = st.packets.saturating_sub(k.sent_packets);
                    rec.delta_bytes = st.bytes.saturating_sub(k.sent_bytes);
                }
                let ts = if idle_out { st.last_seen_ns } else { now };
                out.push(self.event(rec, owner, ts));
                continue;
            }
            let known = self.flows.entry(key).or_insert_with(|| Known {
                owner: None,
                seen: Instant::now(),
                sent_packets: 0,
                sent_bytes: 0,
                sent_at_ns: st.first_seen_ns,
            });
            if now.saturating_sub(known.sent_at_ns) >= active {
                let rec = FlowRecord {
                    kind: EventKind::FlowUpdate,
                    key,
                    stats: st,
                    reason: "active_timeout",
                    iface: None,
                    delta_packets: st.packets.saturating_sub(known.sent_packets),
                    delta_bytes: st.bytes.saturating_sub(known.sent_bytes),
                    owner_side: None,
                };
                known.sent_packets = st.packets;
                known.sent_bytes = st.bytes;
                known.sent_at_ns = now;
                let owner = known.owner.clone();
                let owner = owner.or_else(|| self.lookup_owner(&key));
                out.push(self.event(rec, owner, now));
            }
        }
        // Flows we track that left the map without a record were evicted.
        let evicted = inserts.saturating_sub(kernel_deletes + user_deletes + live);
        if evicted > self.evicted {
            out.push(Event::loss(
                now,
                "flow_table",
                "flow".into(),
                evicted - self.evicted,
                now,
            ));
            self.evicted = evicted;
        }
        // Forget flows that left the map without a record (evicted).
        self.flows.retain(|k, _| present.contains(k));
        self.owners.prune(Duration::from_secs(600));
        out
    }

    fn stop(mut self) -> serde_json::Value {
        let out = self.scan(true);
        self.send(out);
        let names: &[(&str, u32)] = &[
            ("packets", probe_common::XDP_PACKETS),
            ("non_ip", probe_common::XDP_NON_IP),
            ("truncated_ethernet", probe_common::XDP_TRUNC_ETH),
            ("vlan_too_deep", probe_common::XDP_VLAN_TOO_DEEP),
            ("truncated_ipv4", probe_common::XDP_TRUNC_IPV4),
            ("bad_ihl", probe_common::XDP_BAD_IHL),
            ("bad_ipv4_length", probe_common::XDP_BAD_IPV4_LEN),
            ("ipv4_fragments", probe_common::XDP_IPV4_FRAGMENTS),
            ("truncated_ipv6", probe_common::XDP_TRUNC_IPV6),
            ("ipv6_ext_too_deep", probe_common::XDP_IPV6_EXT_TOO_DEEP),
            ("ipv6_fragments", probe_common::XDP_IPV6_FRAGMENTS),
            ("bad_ipv6_length", probe_common::XDP_BAD_IPV6_LEN),
            ("truncated_l4", probe_common::XDP_TRUNC_L4),
            ("bad_l4", probe_common::XDP_BAD_L4),
        ];
        let packets: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .map(|(n, i)| ((*n).to_owned(), self.counter(*i).into()))
            .collect();
        serde_json::json!({
            "packets": packets,
            "flows": {
                "created": self.counter(XDP_FLOW_INSERTS),
                "insert_failed": self.counter(probe_common::XDP_FLOW_INSERT_FAILED),
                "ended_by_kernel": self.counter(XDP_FLOW_KERNEL_DELETES),
                "ended_by_scan": self.user_deletes,
                "evicted": self.evicted,
                "end_records": self.ends,
                "update_records": self.updates,
                "with_owner": self.owner_found,
                "socket_scans": self.scanner.scans,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use probe_common::EventHeader;

    use super::*;
    use crate::{decode::decode, encode::Encoder as _};

    fn record(kind: EventKind, proto: u8, family: u8) -> FlowEvent {
        let mut header = EventHeader::zeroed();
        header.kind = kind as u32;
        header.ts_ns = 5;
        let mut key = FlowKey {
            src: [0; 16],
            dst: [0; 16],
            src_port: 40000,
            dst_port: 443,
            ifindex: 1,
            family,
            proto,
            direction: 0,
            _pad0: 0,
        };
        if family == 4 {
            key.src[..4].copy_from_slice(&[10, 0, 0, 2]);
            key.dst[..4].copy_from_slice(&[10, 0, 0, 1]);
        } else {
            key.src = Ipv6Addr::LOCALHOST.octets();
            key.dst[0] = 0xfd;
        }
        FlowEvent {
            header,
            key,
            reason: FLOW_END_FIN,
            stats: FlowStats {
                first_seen_ns: 1,
                last_seen_ns: 5,
                packets: 3,
                bytes: 180,
                payload_bytes: 60,
                tcp_flags: 0x13,
                flags: 0,
            },
        }
    }

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a repr(C) wire struct without padding.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn flow_records_decode_and_short_ones_are_errors() {
        let ev = record(EventKind::FlowEnd, 6, 4);
        let raw = bytes_of(&ev);
        let d = decode(&raw).unwrap();
        assert_eq!(d.kind_name(), "flow.end");
        assert_eq!(d.data_kind(), Some(EventKind::FlowEnd));
        assert!(d.task.is_none());
        let Body::Flow(f) = &d.body else { panic!() };
        assert_eq!(f.reason, "fin");
        assert_eq!(f.stats, ev.stats);
        assert_eq!(f.src(), "10.0.0.2:40000".parse().unwrap());
        assert_eq!(f.dst(), "10.0.0.1:443".parse().unwrap());
        for n in 0..raw.len() {
            assert!(decode(&raw[..n]).is_err(), "prefix of {n} bytes");
        }
        let v6 = decode(&bytes_of(&record(EventKind::FlowNew, 17, 6))).unwrap();
        let Body::Flow(f) = &v6.body else { panic!() };
        assert_eq!(f.src(), "[::1]:40000".parse().unwrap());
    }

    fn json(ev: &Event) -> serde_json::Value {
        let n = crate::encode::native::Native::new("h".into(), BootClock::measure());
        let mut out = Vec::new();
        n.encode(ev, 1, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn flow_json_has_ports_flags_or_icmp_fields() {
        let mut rec =
            FlowRecord::from_kernel(EventKind::FlowEnd, &record(EventKind::FlowEnd, 6, 4));
        rec.iface = Some("eth0".into());
        let v = json(&Event::flow(rec));
        let f = &v["flow"];
        assert_eq!(v["kind"], "flow.end");
        assert!(v.get("process").is_none());
        assert_eq!(f["iface"], "eth0");
        assert_eq!(f["transport"], "tcp");
        assert_eq!(
            f["src"],
            serde_json::json!({"ip": "10.0.0.2", "port": 40000})
        );
        assert_eq!(f["tcp_flags"], serde_json::json!(["FIN", "SYN", "ACK"]));
        assert_eq!(
            (f["packets"].as_u64(), f["bytes"].as_u64()),
            (Some(3), Some(180))
        );
        assert!(f["first_seen"].as_str().unwrap().ends_with('Z'));
        assert!(f.get("icmp").is_none());

        let mut ev = record(EventKind::FlowEnd, 1, 4);
        ev.key.src_port = 77; // echo id
        ev.key.dst_port = 8 << 8; // echo request
        let v = json(&Event::flow(FlowRecord::from_kernel(
            EventKind::FlowEnd,
            &ev,
        )));
        let f = &v["flow"];
        assert_eq!(f["transport"], "icmp");
        assert!(f["src"].get("port").is_none());
        assert_eq!(
            f["icmp"],
            serde_json::json!({"type": 8, "code": 0, "id": 77})
        );
        assert_eq!(f["tcp_flags"], serde_json::json!([]));
    }

    #[test]
    fn occupants_from_ip_link() {
        let text = "6: x@if5: <UP> mtu 1500 xdpgeneric qdisc noqueue\n    prog/xdp id 565 name tprobe_xdp tag 7e72 jited\n";
        let o = Occupant::parse(text).unwrap();
        assert_eq!(o.id, Some(565));
        assert!(o.ours());
        assert!(o.describe().contains("earlier tprobe run"));
        let linked = Occupant {
            linked: true,
            ..o.clone()
        };
        assert!(linked.describe().contains("running tprobe"));
        assert!(Occupant::parse("6: x: <UP> mtu 1500\n").is_none());
    }

    #[test]
    fn scan_interval_follows_the_shortest_timeout() {
        let cfg = |idle: u64, active: u64| XdpConfig {
            ifaces: vec![],
            mode: Mode::Auto,
            replace: false,
            active_timeout: Duration::from_secs(active),
            idle_timeout: Duration::from_secs(idle),
            table_size: 1,
        };
        assert_eq!(cfg(15, 60).scan_interval(), Duration::from_secs(1));
        assert_eq!(cfg(2, 60).scan_interval(), Duration::from_millis(500));
    }
}
