//! The flow tracker thread: turns kernel flow records and scans of the flow map (active and idle
//! timeouts, as NetFlow/IPFIX exporters do) into `flow.update` / `flow.end` events joined to the
//! process owning the socket, and counts flows lost to LRU eviction.
use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{mpsc as std_mpsc, Arc},
    time::{Duration, Instant},
};

use probe_common::{EventKind, FlowKey, XDP_FLOW_INSERTS, XDP_FLOW_KERNEL_DELETES};
use tokio::sync::mpsc;

use super::owners::{FlowOwners, Owner, SocketScanner, IPPROTO_TCP, IPPROTO_UDP};
use crate::{
    clock::BootClock,
    event::{
        flow::{ip_of, FlowRecord},
        net::FiveTuple,
        Body, Event, Task, FLAG_START_APPROX,
    },
    families::flow::{iface::ifname, XdpConfig, XdpMaps},
    service::metrics::Stats,
};

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
    Owner(FiveTuple, Arc<Owner>),
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
        stats: Arc<Stats>,
    ) -> std::io::Result<Tracker> {
        let (tx, rx) = std_mpsc::channel();
        let state = State {
            maps,
            scan_every: cfg.scan_interval(),
            cfg,
            out,
            stats,
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
    /// Counts the events queued for the pipeline, as the drain does.
    stats: Arc<Stats>,
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
            let n = out.len();
            self.stats.queued(n);
            if self.out.blocking_send(out).is_err() {
                self.stats.unqueued(n);
            }
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
                exec_id: 0,
                id: Default::default(),
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
                    src_domain: None,
                    dst_domain: None,
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
                    src_domain: None,
                    dst_domain: None,
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
    use std::net::Ipv6Addr;

    use probe_common::{EventHeader, FlowEvent, FlowStats, FLOW_END_FIN};

    use super::*;
    use crate::{encode::Encoder as _, kernel::decode::decode};

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
}
