//! Which process owns a flow: an owner table keyed by the normalized 5-tuple (both directions of
//! a connection share one key), filled from socket events (`record`) or, here, from the procfs
//! socket tables of every network namespace joined with `/proc/<pid>/fd` socket inodes.
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// The process behind a socket. `start_ns` has clock-tick resolution when it comes from /proc.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub start_ns: u64,
    pub comm: Vec<u8>,
    pub cgroup_id: u64,
}

/// Which end of the flow the owner's socket is: `Src` sent the packets, `Dst` received them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Src,
    Dst,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Src => "src",
            Side::Dst => "dst",
        }
    }
}

/// A transport 5-tuple with its endpoints in a fixed order, so `a -> b` and `b -> a` are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: u8,
    pub a: SocketAddr,
    pub b: SocketAddr,
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) become IPv4.
pub fn canonical(s: SocketAddr) -> SocketAddr {
    SocketAddr::new(s.ip().to_canonical(), s.port())
}

impl Tuple {
    pub fn new(proto: u8, x: SocketAddr, y: SocketAddr) -> Self {
        let (x, y) = (canonical(x), canonical(y));
        let (a, b) = if (x.ip(), x.port()) <= (y.ip(), y.port()) {
            (x, y)
        } else {
            (y, x)
        };
        Tuple { proto, a, b }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    local: SocketAddr,
    owner: Arc<Owner>,
    seen: Instant,
}

/// Owners of connected sockets by tuple, and of bound-only sockets (listeners, unconnected UDP)
/// by protocol and local port.
#[derive(Default)]
pub struct FlowOwners {
    exact: HashMap<Tuple, Vec<Entry>>,
    bound: HashMap<(u8, u16), Vec<Entry>>,
}

fn upsert(v: &mut Vec<Entry>, e: Entry) {
    match v.iter_mut().find(|x| x.local == e.local) {
        Some(x) => *x = e,
        None => v.push(e),
    }
}

impl FlowOwners {
    /// Records that `owner` has a socket `local -> remote` (remote unspecified:port 0 for a
    /// socket that is only bound).
    pub fn record(&mut self, proto: u8, local: SocketAddr, remote: SocketAddr, owner: Arc<Owner>) {
        let local = canonical(local);
        let e = Entry {
            local,
            owner,
            seen: Instant::now(),
        };
        if remote.ip().is_unspecified() && remote.port() == 0 {
            upsert(self.bound.entry((proto, local.port())).or_default(), e);
        } else {
            upsert(
                self.exact
                    .entry(Tuple::new(proto, local, remote))
                    .or_default(),
                e,
            );
        }
    }

    /// The owner of the flow `src -> dst`: a connected socket first (the sender's end
    /// preferred), then a socket bound to the source port, then one bound to the destination.
    pub fn lookup(
        &self,
        proto: u8,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Option<(Arc<Owner>, Side)> {
        let (src, dst) = (canonical(src), canonical(dst));
        if let Some(v) = self.exact.get(&Tuple::new(proto, src, dst)) {
            if let Some(e) = v.iter().find(|e| e.local == src) {
                return Some((e.owner.clone(), Side::Src));
            }
            if let Some(e) = v.iter().find(|e| e.local == dst) {
                return Some((e.owner.clone(), Side::Dst));
            }
        }
        let bound = |a: SocketAddr| {
            self.bound.get(&(proto, a.port())).and_then(|v| {
                v.iter()
                    .find(|e| e.local.ip() == a.ip())
                    .or_else(|| v.iter().find(|e| e.local.ip().is_unspecified()))
                    .map(|e| e.owner.clone())
            })
        };
        if let Some(o) = bound(src) {
            return Some((o, Side::Src));
        }
        bound(dst).map(|o| (o, Side::Dst))
    }

    /// Forgets entries not seen for `age`.
    pub fn prune(&mut self, age: Duration) {
        let now = Instant::now();
        self.exact.retain(|_, v| {
            v.retain(|e| now.duration_since(e.seen) < age);
            !v.is_empty()
        });
        self.bound.retain(|_, v| {
            v.retain(|e| now.duration_since(e.seen) < age);
            !v.is_empty()
        });
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.bound.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Fills a [`FlowOwners`] from /proc: every process's socket inodes, then the TCP/UDP tables of
/// each network namespace (read through one process in it), so sockets in containers and test
/// namespaces are found too.
pub struct SocketScanner {
    proc_root: PathBuf,
    tick_ns: u64,
    pub scans: u64,
    pub last: Option<Instant>,
    /// How long the last scan took.
    pub last_cost: Duration,
}

impl SocketScanner {
    pub fn new(proc_root: PathBuf) -> Self {
        SocketScanner {
            proc_root,
            tick_ns: crate::clock::tick_ns(),
            scans: 0,
            last: None,
            last_cost: Duration::ZERO,
        }
    }

    fn owner(&self, pid: u32) -> Option<Owner> {
        let p =
            procfs::process::Process::new_with_root(self.proc_root.join(pid.to_string())).ok()?;
        let stat = p.stat().ok()?;
        let status = p.status().ok();
        Some(Owner {
            pid,
            ppid: stat.ppid.max(0) as u32,
            uid: status.as_ref().map_or(0, |s| s.ruid),
            gid: status.as_ref().map_or(0, |s| s.rgid),
            start_ns: stat.starttime * self.tick_ns,
            comm: stat.comm.into_bytes(),
            cgroup_id: cgroup_id(&self.proc_root, pid).unwrap_or(0),
        })
    }

    /// One pass over /proc; returns the number of sockets recorded.
    pub fn scan(&mut self, owners: &mut FlowOwners) -> usize {
        let t0 = Instant::now();
        let n = self.scan_inner(owners);
        self.scans += 1;
        self.last = Some(Instant::now());
        self.last_cost = t0.elapsed();
        n
    }

    /// Whether a scan may run now: at least `min` after the last one, and no more than a tenth
    /// of the time (a host full of sockets scans less often), but at least every 250 ms so a
    /// short connection's owner is still found.
    pub fn may_scan(&self, min: Duration) -> bool {
        let gap = min
            .max(self.last_cost * 9)
            .min(Duration::from_millis(250).max(min));
        self.last.is_none_or(|t| t.elapsed() >= gap)
    }

    fn scan_inner(&mut self, owners: &mut FlowOwners) -> usize {
        let me = std::process::id();
        let mut inode_pid: HashMap<u64, u32> = HashMap::new();
        let mut netns: HashMap<Vec<u8>, u32> = HashMap::new();
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            return 0;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(p) = procfs::process::Process::new_with_root(e.path()) else {
                continue;
            };
            let mut any = false;
            if let Ok(fds) = p.fd() {
                for fd in fds.flatten() {
                    if let procfs::process::FDTarget::Socket(ino) = fd.target {
                        inode_pid.entry(ino).or_insert(pid);
                        any = true;
                    }
                }
            }
            if any {
                if let Ok(ns) = std::fs::read_link(e.path().join("ns/net")) {
                    use std::os::unix::ffi::OsStrExt as _;
                    netns
                        .entry(ns.as_os_str().as_bytes().to_vec())
                        .or_insert(pid);
                }
            }
        }
        let mut cache: HashMap<u32, Option<Arc<Owner>>> = HashMap::new();
        let mut n = 0;
        for pid in netns.into_values() {
            let Ok(p) =
                procfs::process::Process::new_with_root(self.proc_root.join(pid.to_string()))
            else {
                continue;
            };
            let mut socks: Vec<(u8, SocketAddr, SocketAddr, u64)> = Vec::new();
            for t in [p.tcp(), p.tcp6()].into_iter().flatten() {
                socks.extend(
                    t.into_iter()
                        .map(|e| (IPPROTO_TCP, e.local_address, e.remote_address, e.inode)),
                );
            }
            for t in [p.udp(), p.udp6()].into_iter().flatten() {
                socks.extend(
                    t.into_iter()
                        .map(|e| (IPPROTO_UDP, e.local_address, e.remote_address, e.inode)),
                );
            }
            for (proto, local, remote, ino) in socks {
                let Some(&owner_pid) = inode_pid.get(&ino) else {
                    continue;
                };
                let owner = cache
                    .entry(owner_pid)
                    .or_insert_with(|| self.owner(owner_pid).map(Arc::new))
                    .clone();
                if let Some(o) = owner {
                    owners.record(proto, local, remote, o);
                    n += 1;
                }
            }
        }
        n
    }
}

/// cgroup v2 id (the inode of the cgroup directory) of `pid`, as `bpf_get_current_cgroup_id`.
fn cgroup_id(proc_root: &std::path::Path, pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let rel = path.trim_start_matches('/');
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(|root| std::path::Path::new(root).join(rel))
        .find_map(|p| {
            let m = std::fs::metadata(&p).ok()?;
            // Only a cgroup2 directory has cgroup.controllers.
            p.join("cgroup.controllers").exists().then_some(m.ino())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn owner(pid: u32) -> Arc<Owner> {
        Arc::new(Owner {
            pid,
            ..Default::default()
        })
    }

    #[test]
    fn tuples_are_direction_free_and_v4_mapped_is_v4() {
        let a = Tuple::new(6, sa("10.0.0.1:1000"), sa("10.0.0.2:80"));
        let b = Tuple::new(6, sa("10.0.0.2:80"), sa("10.0.0.1:1000"));
        assert_eq!(a, b);
        let c = Tuple::new(6, sa("[::ffff:10.0.0.1]:1000"), sa("10.0.0.2:80"));
        assert_eq!(a, c);
        assert_ne!(a, Tuple::new(17, sa("10.0.0.1:1000"), sa("10.0.0.2:80")));
    }

    #[test]
    fn lookup_prefers_the_sender_then_bound_sockets() {
        let mut t = FlowOwners::default();
        // Both ends on this host (e.g. two namespaces): client 1, server 2.
        t.record(6, sa("10.0.0.1:1000"), sa("10.0.0.2:80"), owner(1));
        t.record(6, sa("10.0.0.2:80"), sa("10.0.0.1:1000"), owner(2));
        let (o, s) = t.lookup(6, sa("10.0.0.1:1000"), sa("10.0.0.2:80")).unwrap();
        assert_eq!((o.pid, s), (1, Side::Src));
        let (o, s) = t.lookup(6, sa("10.0.0.2:80"), sa("10.0.0.1:1000")).unwrap();
        assert_eq!((o.pid, s), (2, Side::Src));
        // Only the receiver is local.
        let mut t = FlowOwners::default();
        t.record(6, sa("10.0.0.2:80"), sa("10.0.0.1:1000"), owner(2));
        let (o, s) = t.lookup(6, sa("10.0.0.1:1000"), sa("10.0.0.2:80")).unwrap();
        assert_eq!((o.pid, s), (2, Side::Dst));
        // Unconnected UDP: matched by port, a wildcard address matches any.
        t.record(17, sa("0.0.0.0:5353"), sa("0.0.0.0:0"), owner(3));
        let (o, s) = t
            .lookup(17, sa("10.0.0.9:40000"), sa("10.0.0.2:5353"))
            .unwrap();
        assert_eq!((o.pid, s), (3, Side::Dst));
        assert!(t
            .lookup(17, sa("10.0.0.9:40000"), sa("10.0.0.2:5354"))
            .is_none());
        assert!(t
            .lookup(6, sa("10.0.0.9:40000"), sa("10.0.0.2:5353"))
            .is_none());
        t.prune(Duration::ZERO);
        assert!(t.is_empty());
    }

    #[test]
    fn scanner_finds_a_local_tcp_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, _) = l.accept().unwrap();
        // The scanner skips its own process; look through a child's eyes instead: the table
        // is keyed by tuple, so check what it records for a fake /proc is not needed here.
        let mut owners = FlowOwners::default();
        let mut sc = SocketScanner::new("/proc".into());
        sc.scan(&mut owners);
        assert_eq!(sc.scans, 1);
        // Our own sockets are skipped on purpose (the probe never reports itself).
        assert!(owners
            .lookup(6, c.local_addr().unwrap(), l.local_addr().unwrap())
            .is_none());
    }
}
