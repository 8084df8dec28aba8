//! Response actions done in the kernel: the exec deny check that `sched_process_exec` runs
//! (SIGKILL before the new image runs a single instruction), and the TC program that isolates
//! a network namespace by dropping, on the host side of its interface, every packet both ways
//! except those to or from an allow-listed peer.
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::generated::bpf_send_signal,
    macros::{classifier, map},
    maps::{Array, HashMap},
    programs::TcContext,
};
use probe_common::{
    DenyKey, IsolateAllow, DENY_EXEC_MAX, EXEC_DENIED, EXEC_DENY_FAILED, ISOLATE_ALLOW_MAX,
    ISOLATE_IFACES_MAX,
};

/// Denied executables by (device, inode); userspace fills it from paths and learned hashes.
#[map]
pub static DENY_EXEC: HashMap<DenyKey, u32> = HashMap::with_max_entries(DENY_EXEC_MAX, 0);

/// Interfaces under isolation (ifindex -> 1).
#[map]
pub static ISOLATE_IFACES: HashMap<u32, u32> = HashMap::with_max_entries(ISOLATE_IFACES_MAX, 0);

/// Peers that stay reachable from an isolated namespace.
#[map]
pub static ISOLATE_ALLOW: Array<IsolateAllow> = Array::with_max_entries(ISOLATE_ALLOW_MAX, 0);

const SIGKILL: u32 = 9;

/// `EXEC_DENIED` (or `EXEC_DENY_FAILED`) when the exec'd file `(dev, ino)` is denied; the
/// task has then been sent SIGKILL, which it takes on its way back to user space.
#[inline(always)]
pub fn check_exec(dev: u32, ino: u64) -> u32 {
    if ino == 0 {
        return 0;
    }
    let key = DenyKey { dev, _pad0: 0, ino };
    // SAFETY: a plain lookup; the value is not kept.
    if unsafe { DENY_EXEC.get(key) }.is_none() {
        return 0;
    }
    // SAFETY: a helper call without pointers.
    if unsafe { bpf_send_signal(SIGKILL) } == 0 {
        EXEC_DENIED
    } else {
        EXEC_DENY_FAILED
    }
}

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Attached at the host-side interface's ingress: packets coming out of the namespace.
#[classifier]
pub fn tprobe_isolate_in(ctx: TcContext) -> i32 {
    verdict(&ctx, false)
}

/// Attached at the host-side interface's egress: packets going into the namespace.
#[classifier]
pub fn tprobe_isolate_out(ctx: TcContext) -> i32 {
    verdict(&ctx, true)
}

#[inline(always)]
fn verdict(ctx: &TcContext, to_ns: bool) -> i32 {
    // SAFETY: the context pointer is the kernel's sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: a plain lookup.
    if unsafe { ISOLATE_IFACES.get(ifindex) }.is_none() {
        return TC_ACT_OK;
    }
    match try_allowed(ctx, to_ns) {
        Some(true) => TC_ACT_OK,
        _ => TC_ACT_SHOT,
    }
}

/// Whether the packet goes to (or comes from) an allowed peer. ARP passes, or no allowed
/// peer could be reached; IPv6 and everything else is dropped.
#[inline(always)]
fn try_allowed(ctx: &TcContext, to_ns: bool) -> Option<bool> {
    let proto = u16::from_be(ctx.load::<u16>(12).ok()?);
    if proto == ETH_P_ARP {
        return Some(true);
    }
    if proto != ETH_P_IP {
        return Some(false);
    }
    let vihl: u8 = ctx.load(ETH_HLEN).ok()?;
    let ihl = ((vihl & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Some(false);
    }
    let l4: u8 = ctx.load(ETH_HLEN + 9).ok()?;
    // The peer is the destination of what leaves the namespace, the source of what enters.
    let (ip_off, port_off) = if to_ns { (12, 0) } else { (16, 2) };
    let peer: u32 = ctx.load(ETH_HLEN + ip_off).ok()?;
    let port = if l4 == IPPROTO_TCP || l4 == IPPROTO_UDP {
        u16::from_be(ctx.load::<u16>(ETH_HLEN + (ihl & 0x3c) + port_off).ok()?)
    } else {
        0
    };
    for i in 0..ISOLATE_ALLOW_MAX {
        let Some(a) = ISOLATE_ALLOW.get(i) else {
            break;
        };
        if a.used == 0 {
            break;
        }
        let prefix = a.prefix & 63;
        let mask: u32 = if prefix == 0 {
            0
        } else if prefix >= 32 {
            u32::MAX
        } else {
            u32::MAX << (32 - prefix)
        };
        let same_net = (u32::from_be(peer) & mask) == (u32::from_be(a.addr) & mask);
        if same_net && (a.port == 0 || (port != 0 && a.port == port)) {
            return Some(true);
        }
    }
    Some(false)
}
