//! Names for addresses: every DNS response the probe sees (`net.dns` with answers) teaches
//! which name each A/AAAA address was resolved from, per container (or the host), for as
//! long as the answer's TTL says; `net.connect`, `net.accept`, `net.send` and `flow.*` of the
//! same container then carry that name on their remote end. Bounded: the oldest entries go
//! first when it is full.
use std::{collections::HashMap, net::IpAddr, sync::Arc};

use probe_common::EventKind;

use crate::event::{Body, Event};

/// Most addresses remembered, over all containers.
pub const DNS_NAMES_MAX: usize = 65_536;
/// An answer is kept at least this long (a client connects right after a TTL-0 answer)...
const TTL_MIN_NS: u64 = 10_000_000_000;
/// ...and at most this long, whatever its TTL.
const TTL_MAX_NS: u64 = 3_600_000_000_000;

/// Where an answer was seen: a container id, or the host.
type Scope = Option<Arc<str>>;

struct Entry {
    name: Arc<str>,
    expires_ns: u64,
}

pub struct DnsNames {
    map: HashMap<(Scope, IpAddr), Entry>,
    cap: usize,
    /// Interned container ids, so each entry shares one.
    scopes: HashMap<String, Arc<str>>,
}

impl Default for DnsNames {
    fn default() -> Self {
        DnsNames::with_capacity(DNS_NAMES_MAX)
    }
}

impl DnsNames {
    pub fn with_capacity(cap: usize) -> Self {
        DnsNames {
            map: HashMap::new(),
            cap: cap.max(1),
            scopes: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn scope(&mut self, ev: &Event) -> Scope {
        let id = &ev.container.as_ref()?.id;
        if let Some(s) = self.scopes.get(id) {
            return Some(s.clone());
        }
        let s: Arc<str> = Arc::from(id.as_str());
        self.scopes.insert(id.clone(), s.clone());
        Some(s)
    }

    /// Learns from a DNS response, or names the remote end of a connection or flow.
    pub fn apply(&mut self, ev: &mut Event) {
        let kind = ev.data_kind();
        let now = ev.ts_ns;
        match kind {
            Some(EventKind::NetDns) => self.learn(ev, now),
            Some(EventKind::NetConnect | EventKind::NetAccept | EventKind::NetSend) => {
                let scope = self.scope(ev);
                if let Body::Net(n) = &mut ev.body {
                    if let Some(r) = n.remote {
                        n.remote_domain = self.lookup(&scope, r.ip(), now);
                    }
                }
            }
            Some(EventKind::FlowUpdate | EventKind::FlowEnd) => {
                let scope = self.scope(ev);
                // Either end: XDP sees received packets, so a resolved server is usually
                // `src`; both ends may be on this host, and the owner found may be either.
                if let Body::Flow(f) = &mut ev.body {
                    let (src, dst) = (f.src().ip(), f.dst().ip());
                    f.src_domain = self.lookup(&scope, src, now);
                    f.dst_domain = self.lookup(&scope, dst, now);
                }
            }
            _ => {}
        }
    }

    fn learn(&mut self, ev: &Event, now: u64) {
        let Body::Net(n) = &ev.body else { return };
        let Some(d) = &n.dns else { return };
        let Some(r) = d.response.as_ref().filter(|r| r.rcode == "NOERROR") else {
            return;
        };
        if r.answers.iter().all(|a| a.ip.is_none()) {
            return;
        }
        let scope = self.scope(ev);
        // The name the process asked for, whatever CNAMEs led to the address.
        let name: Arc<str> = Arc::from(d.query.as_str());
        for a in &r.answers {
            let Some(ip) = a.ip else { continue };
            let ttl = (a.ttl as u64 * 1_000_000_000).clamp(TTL_MIN_NS, TTL_MAX_NS);
            if self.map.len() >= self.cap && !self.map.contains_key(&(scope.clone(), ip)) {
                self.make_room(now);
            }
            self.map.insert(
                (scope.clone(), ip),
                Entry {
                    name: name.clone(),
                    expires_ns: now.saturating_add(ttl),
                },
            );
        }
    }

    fn lookup(&self, scope: &Scope, ip: IpAddr, now: u64) -> Option<Arc<str>> {
        let e = self.map.get(&(scope.clone(), ip))?;
        (e.expires_ns > now).then(|| e.name.clone())
    }

    /// Drops what has expired; when nothing has, the eighth that expires soonest.
    fn make_room(&mut self, now: u64) {
        self.map.retain(|_, e| e.expires_ns > now);
        if self.map.len() < self.cap {
            return;
        }
        let mut exp: Vec<u64> = self.map.values().map(|e| e.expires_ns).collect();
        let k = (self.cap / 8).max(1).min(exp.len() - 1);
        let (_, cut, _) = exp.select_nth_unstable(k);
        let cut = *cut;
        self.map.retain(|_, e| e.expires_ns > cut);
        let used: std::collections::HashSet<Arc<str>> =
            self.map.keys().filter_map(|(s, _)| s.clone()).collect();
        self.scopes.retain(|_, s| used.contains(s));
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::event::{
        container::ContainerInfo,
        net::{Direction, DnsAnswer, DnsQuery, DnsResponse, NetBody},
        Task,
    };

    fn net_event(kind: EventKind, ts: u64, container: Option<&str>, body: NetBody) -> Event {
        Event {
            ts_ns: ts,
            task: Some(Task {
                kind,
                flags: 0,
                ts_ns: ts,
                pid: 1,
                tid: 1,
                ppid: 0,
                uid: 0,
                gid: 0,
                cgroup_id: 0,
                start_ns: 0,
                parent_start_ns: 0,
                comm: Vec::new(),
                exec_id: 0,
                id: Default::default(),
            }),
            body: Body::Net(Box::new(body)),
            process: None,
            parent: None,
            ancestors: None,
            user: None,
            container: container.map(|id| {
                Arc::new(ContainerInfo {
                    id: id.into(),
                    ..Default::default()
                })
            }),
        }
    }

    fn body(remote: Option<&str>) -> NetBody {
        NetBody {
            protocol: 6,
            family: 2,
            sock_type: 1,
            local: None,
            remote: remote.map(|r| r.parse::<SocketAddr>().unwrap()),
            unix: None,
            direction: Some(Direction::Outbound),
            fd: None,
            ret: None,
            backlog: None,
            state: None,
            dns: None,
            remote_domain: None,
        }
    }

    fn answer(name: &str, ip: &str, ttl: u32) -> Event {
        let mut b = body(Some("127.0.0.53:53"));
        b.dns = Some(DnsQuery {
            query: name.into(),
            qtype: "A".into(),
            id: 1,
            response: Some(DnsResponse {
                rcode: "NOERROR".into(),
                answers: vec![DnsAnswer {
                    name: "cdn.test".into(),
                    rtype: "A".into(),
                    data: ip.into(),
                    ttl,
                    ip: Some(ip.parse().unwrap()),
                }],
                answers_truncated: false,
            }),
        });
        net_event(EventKind::NetDns, 1_000, None, b)
    }

    fn connect(to: &str, ts: u64, container: Option<&str>) -> Option<Arc<str>> {
        let mut ev = net_event(EventKind::NetConnect, ts, container, body(Some(to)));
        DNS.with(|d| d.borrow_mut().apply(&mut ev));
        let Body::Net(n) = ev.body else { panic!() };
        n.remote_domain
    }

    thread_local! {
        static DNS: std::cell::RefCell<DnsNames> = std::cell::RefCell::new(DnsNames::with_capacity(4));
    }

    #[test]
    fn names_by_scope_ttl_and_bound() {
        DNS.with(|d| {
            d.borrow_mut()
                .apply(&mut answer("www.evil.test", "10.0.0.1", 60))
        });
        assert_eq!(
            connect("10.0.0.1:443", 2_000, None).as_deref(),
            Some("www.evil.test")
        );
        // Another container did not resolve it; an unknown address has no name.
        assert_eq!(connect("10.0.0.1:443", 2_000, Some("c1")), None);
        assert_eq!(connect("10.0.0.2:443", 2_000, None), None);
        // Past the TTL (60 s) it is forgotten.
        assert_eq!(connect("10.0.0.1:443", 62_000_000_000, None), None);
        // Full: the soonest to expire makes room, the map stays bounded.
        for i in 0..10 {
            DNS.with(|d| {
                d.borrow_mut().apply(&mut answer(
                    &format!("n{i}.test"),
                    &format!("10.1.0.{i}"),
                    100 + i,
                ))
            });
        }
        assert!(DNS.with(|d| d.borrow().len()) <= 4);
        assert_eq!(
            connect("10.1.0.9:80", 3_000, None).as_deref(),
            Some("n9.test")
        );
    }
}
