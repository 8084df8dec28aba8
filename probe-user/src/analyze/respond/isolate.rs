//! `isolate`: the network namespace of the target reaches the host through a veth pair; a TC
//! (clsact) program on the host-side end drops every packet both ways except ARP and those
//! to or from the allow list. The programs live in an instance of the object of their own,
//! so the stage can attach and detach them from its thread. A process in the host's network
//! namespace cannot be isolated this way and is refused; so is a namespace without a veth.
use std::{collections::HashMap, path::Path};

use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData},
    programs::{tc, SchedClassifier, TcAttachType},
    Ebpf, EbpfLoader,
};
use probe_common::{IsolateAllow, MAP_ISOLATE_ALLOW, MAP_ISOLATE_IFACES};

use super::{
    actions::{Failure, Procs},
    config::Allowed,
};

const PROG_IN: &str = "tprobe_isolate_in";
const PROG_OUT: &str = "tprobe_isolate_out";

#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    #[error("loading the isolate programs: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the isolate program {0}: {1}")]
    Program(&'static str, String),
    #[error("the isolate map {0}: {1}")]
    Map(&'static str, String),
}

/// The host-side end of a namespace's veth pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub ifindex: u32,
}

/// Why a target cannot be isolated: refused (nothing is done) or a failure.
pub enum Refusal {
    Refused(String),
    Failed(Failure),
}

pub struct Isolator {
    ebpf: Ebpf,
    ifaces: BpfHashMap<MapData, u32, u32>,
    links: HashMap<u32, Vec<(&'static str, tc::SchedClassifierLinkId)>>,
}

impl Isolator {
    /// Loads the two programs (so a verifier refusal shows at start) and writes the allow list.
    pub fn load(allow: &[Allowed]) -> Result<Isolator, IsolateError> {
        let mut ebpf = EbpfLoader::new()
            .allow_unsupported_maps()
            // This instance only filters packets: the maps of the other programs stay tiny.
            .map_max_entries(probe_common::MAP_EVENTS, 4096)
            .map_max_entries(probe_common::MAP_FLOWS, 1)
            .load(crate::kernel::load::PROBE_OBJ)?;
        for name in [PROG_IN, PROG_OUT] {
            let p: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or_else(|| IsolateError::Program(name, "missing from the object".into()))?
                .try_into()
                .map_err(|e| IsolateError::Program(name, format!("{e}")))?;
            p.load()
                .map_err(|e| IsolateError::Program(name, format!("{e}")))?;
        }
        let mut arr: Array<MapData, IsolateAllow> = ebpf
            .take_map(MAP_ISOLATE_ALLOW)
            .ok_or_else(|| IsolateError::Map(MAP_ISOLATE_ALLOW, "missing".into()))?
            .try_into()
            .map_err(|e| IsolateError::Map(MAP_ISOLATE_ALLOW, format!("{e}")))?;
        for (i, a) in allow.iter().enumerate() {
            let v = IsolateAllow {
                addr: u32::from(a.net).to_be(),
                prefix: a.prefix as u32,
                port: a.port,
                _pad0: 0,
                used: 1,
            };
            arr.set(i as u32, v, 0)
                .map_err(|e| IsolateError::Map(MAP_ISOLATE_ALLOW, format!("{e}")))?;
        }
        let ifaces = ebpf
            .take_map(MAP_ISOLATE_IFACES)
            .ok_or_else(|| IsolateError::Map(MAP_ISOLATE_IFACES, "missing".into()))?
            .try_into()
            .map_err(|e| IsolateError::Map(MAP_ISOLATE_IFACES, format!("{e}")))?;
        Ok(Isolator {
            ebpf,
            ifaces,
            links: HashMap::new(),
        })
    }

    /// Drops the link's traffic: the iface goes into the map first, so the programs drop
    /// from the first packet they see.
    pub fn isolate(&mut self, link: &Link) -> Result<(), Failure> {
        let fail = |what: &str, e: String| Failure::new(libc::EIO, format!("{what}: {e}"));
        self.ifaces
            .insert(link.ifindex, 1, 0)
            .map_err(|e| fail("the isolate map", e.to_string()))?;
        // Already there (another tool, or an earlier isolation): fine.
        let _ = tc::qdisc_add_clsact(&link.name);
        let mut ids = Vec::new();
        for (name, at) in [
            (PROG_IN, TcAttachType::Ingress),
            (PROG_OUT, TcAttachType::Egress),
        ] {
            let attached = self
                .ebpf
                .program_mut(name)
                .ok_or_else(|| fail(name, "missing".into()))
                .and_then(|p| {
                    let p: &mut SchedClassifier =
                        p.try_into().map_err(|e| fail(name, format!("{e}")))?;
                    p.attach(&link.name, at)
                        .map_err(|e| fail(&format!("attaching to {}", link.name), e.to_string()))
                });
            match attached {
                Ok(id) => ids.push((name, id)),
                Err(f) => {
                    // Never half-done: what was attached goes again.
                    self.links.insert(link.ifindex, ids);
                    let _ = self.release(link);
                    return Err(f);
                }
            }
        }
        self.links.insert(link.ifindex, ids);
        Ok(())
    }

    pub fn release(&mut self, link: &Link) -> Result<(), Failure> {
        for (name, id) in self.links.remove(&link.ifindex).unwrap_or_default() {
            if let Some(p) = self.ebpf.program_mut(name) {
                if let Ok(p) = <&mut SchedClassifier>::try_from(p) {
                    let _ = p.detach(id);
                }
            }
        }
        match self.ifaces.remove(&link.ifindex) {
            Ok(()) => Ok(()),
            Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(Failure::new(libc::EIO, format!("the isolate map: {e}"))),
        }
    }
}

fn ns_inode(p: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(p).ok().map(|m| m.ino())
}

/// `SIOCETHTOOL` requests: the driver's name and its statistics (veth's first one is the
/// peer's ifindex).
mod ethtool {
    pub const SIOCETHTOOL: libc::c_ulong = 0x8946;
    pub const GDRVINFO: u32 = 0x3;
    pub const GSTATS: u32 = 0x1d;

    #[repr(C)]
    pub struct DrvInfo {
        pub cmd: u32,
        pub driver: [u8; 32],
        pub version: [u8; 32],
        pub fw_version: [u8; 32],
        pub bus_info: [u8; 32],
        pub erom_version: [u8; 32],
        pub reserved2: [u8; 12],
        pub n_priv_flags: u32,
        pub n_stats: u32,
        pub testinfo_len: u32,
        pub eedump_len: u32,
        pub regdump_len: u32,
    }

    #[repr(C)]
    pub struct IfReq {
        pub name: [u8; 16],
        pub data: *mut libc::c_void,
        pub _pad: [u8; 16],
    }

    /// One `SIOCETHTOOL` on interface `name` with `data` as the request.
    pub fn call(sock: i32, name: &str, data: *mut libc::c_void) -> bool {
        let mut req = IfReq {
            name: [0; 16],
            data,
            _pad: [0; 16],
        };
        let n = name.len().min(15);
        req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        // SAFETY: a socket fd and an ifreq whose data points at the request it names.
        unsafe { libc::ioctl(sock, SIOCETHTOOL as _, &mut req as *mut IfReq) == 0 }
    }

    /// The peer ifindex of veth `name`, `None` for another driver.
    pub fn veth_peer(sock: i32, name: &str) -> Option<u32> {
        // SAFETY: plain data; zero is a valid value of every field.
        let mut info: DrvInfo = unsafe { std::mem::zeroed() };
        info.cmd = GDRVINFO;
        if !call(sock, name, &mut info as *mut DrvInfo as *mut libc::c_void) {
            return None;
        }
        let driver = info.driver.split(|&b| b == 0).next().unwrap_or(&[]);
        if driver != b"veth" || info.n_stats == 0 || info.n_stats > 4096 {
            return None;
        }
        // The kernel writes all n_stats values: the buffer holds that many.
        let mut buf = vec![0u64; 1 + info.n_stats as usize];
        buf[0] = GSTATS as u64 | ((info.n_stats as u64) << 32);
        if !call(sock, name, buf.as_mut_ptr() as *mut libc::c_void) {
            return None;
        }
        u32::try_from(buf[1]).ok()
    }
}

/// The interfaces of the network namespace at `ns` that are veths, with their peer's ifindex,
/// read from a thread that joins the namespace (and ends with it).
fn veths_in(ns: &Path) -> Result<Vec<(u32, u32)>, Failure> {
    let f = std::fs::File::open(ns).map_err(|e| {
        Failure::new(
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("{}: {e}", ns.display()),
        )
    })?;
    let t = std::thread::spawn(move || -> Result<Vec<(u32, u32)>, Failure> {
        use std::os::fd::AsRawFd as _;
        // SAFETY: setns on this thread only; it ends right after.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Failure::new(
                e.raw_os_error().unwrap_or(libc::EIO),
                format!("setns: {e}"),
            ));
        }
        // SAFETY: a plain socket call; the fd is closed below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Failure::new(
                e.raw_os_error().unwrap_or(libc::EIO),
                format!("socket: {e}"),
            ));
        }
        let mut out = Vec::new();
        // SAFETY: the list is walked up to its zero entry, then freed once.
        unsafe {
            let list = libc::if_nameindex();
            if !list.is_null() {
                let mut at = list;
                while (*at).if_index != 0 && !(*at).if_name.is_null() {
                    let name = std::ffi::CStr::from_ptr((*at).if_name)
                        .to_string_lossy()
                        .into_owned();
                    if let Some(peer) = ethtool::veth_peer(sock, &name) {
                        out.push(((*at).if_index, peer));
                    }
                    at = at.add(1);
                }
                libc::if_freenameindex(list);
            }
            libc::close(sock);
        }
        Ok(out)
    });
    t.join()
        .unwrap_or_else(|_| Err(Failure::new(libc::EIO, "the namespace thread panicked")))
}

/// The host-side veth of `pid`'s network namespace.
pub fn host_side(procs: &Procs, pid: u32) -> Result<Link, Refusal> {
    let ns = procs.root.join(format!("{pid}/ns/net"));
    let (theirs, ours) = (ns_inode(&ns), ns_inode(Path::new("/proc/self/ns/net")));
    match (theirs, ours) {
        (None, _) => return Err(Refusal::Failed(Failure::gone())),
        (Some(a), Some(b)) if a == b => {
            return Err(Refusal::Refused(
                "the target uses the host's network namespace (host network): isolating it would cut off the host; refused".into(),
            ))
        }
        _ => {}
    }
    let veths = veths_in(&ns).map_err(Refusal::Failed)?;
    for (inner, peer) in veths {
        let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
        // SAFETY: a buffer of IF_NAMESIZE, as the call needs.
        let p = unsafe { libc::if_indextoname(peer, buf.as_mut_ptr()) };
        if p.is_null() {
            continue;
        }
        // SAFETY: if_indextoname wrote a NUL-terminated name.
        let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        // The host interface with that index must point back at the namespace's end.
        let iflink = std::fs::read_to_string(format!("/sys/class/net/{name}/iflink"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if iflink == Some(inner) {
            return Ok(Link {
                name,
                ifindex: peer,
            });
        }
    }
    Err(Refusal::Refused(
        "the target's network namespace has no veth link to the host namespace; refused".into(),
    ))
}
