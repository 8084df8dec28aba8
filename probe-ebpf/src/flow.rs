//! XDP flow telemetry: parse each received frame (Ethernet, up to two VLAN tags, IPv4 with
//! options and fragments, IPv6 with a bounded extension chain, TCP/UDP/ICMP/ICMPv6) and count it
//! into a per-flow entry of an LRU hash. The program only observes: it always returns XDP_PASS.
//! Frames it cannot parse are counted by reason in `XDP_STATS` and never touch a flow.
use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::bpf_ktime_get_boot_ns,
    macros::{map, xdp},
    maps::{LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use probe_common::{
    EventHeader, EventKind, FlowEvent, FlowKey, FlowStats, DIR_INGRESS, FLOW_END_FIN, FLOW_END_RST,
    FLOW_ENTRIES, FLOW_F_FRAGMENT, IPV6_EXT_MAX, XDP_BAD_IHL, XDP_BAD_IPV4_LEN, XDP_BAD_IPV6_LEN,
    XDP_BAD_L4, XDP_FLOW_INSERTS, XDP_FLOW_INSERT_FAILED, XDP_FLOW_KERNEL_DELETES,
    XDP_IPV4_FRAGMENTS, XDP_IPV6_EXT_TOO_DEEP, XDP_IPV6_FRAGMENTS, XDP_NON_IP, XDP_PACKETS,
    XDP_STAT_SLOTS, XDP_TRUNC_ETH, XDP_TRUNC_IPV4, XDP_TRUNC_IPV6, XDP_TRUNC_L4, XDP_VLAN_TOO_DEEP,
};

use crate::common::emit;

/// Live flows; userspace sets the size at load and scans it for timeouts.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowStats> = LruHashMap::with_max_entries(FLOW_ENTRIES, 0);

/// Parser counters (`XDP_*` indexes), per CPU so counting never contends.
#[map]
pub static XDP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(XDP_STAT_SLOTS, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;
const BPF_NOEXIST: u64 = 1;
const EEXIST: i32 = 17;
/// Most bytes of IPv6 extension headers followed; keeps every offset small for the verifier.
const IPV6_EXT_BYTES_MAX: usize = 2048;

#[xdp]
pub fn tprobe_xdp(ctx: XdpContext) -> u32 {
    let _ = try_xdp(&ctx);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn count(idx: u32) {
    if let Some(p) = XDP_STATS.get_ptr_mut(idx) {
        unsafe { *p += 1 };
    }
}

/// Bounds of the frame.
struct Frame {
    start: usize,
    end: usize,
}

impl Frame {
    /// `N` bytes at `off`, when they are inside the frame.
    #[inline(always)]
    fn bytes<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        if self.start + off + N > self.end {
            return None;
        }
        Some(unsafe { *((self.start + off) as *const [u8; N]) })
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.end - self.start
    }
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// What L3 parsing found: where L4 starts and how much of the IP packet is transport data.
struct L3 {
    l4_off: usize,
    /// IP bytes of the packet (header included).
    ip_len: usize,
    /// Bytes after the IP header(s).
    l4_len: usize,
    proto: u8,
    /// Not the first fragment: no transport header in this packet.
    later_fragment: bool,
    fragment: bool,
}

fn try_xdp(ctx: &XdpContext) -> Result<(), u32> {
    let f = Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    count(XDP_PACKETS);
    let Some(eth) = f.bytes::<ETH_HLEN>(0) else {
        return Err(counted(XDP_TRUNC_ETH));
    };
    let mut proto = be16([eth[12], eth[13]]);
    let mut off = ETH_HLEN;
    // Up to two VLAN tags (802.1Q, or 802.1ad outer + 802.1Q inner).
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        let tag = f.bytes::<4>(off).ok_or(XDP_TRUNC_ETH).map_err(counted)?;
        proto = be16([tag[2], tag[3]]);
        off += 4;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            let tag = f.bytes::<4>(off).ok_or(XDP_TRUNC_ETH).map_err(counted)?;
            proto = be16([tag[2], tag[3]]);
            off += 4;
            if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
                return Err(counted(XDP_VLAN_TOO_DEEP));
            }
        }
    }
    let mut key = FlowKey {
        src: [0; 16],
        dst: [0; 16],
        src_port: 0,
        dst_port: 0,
        ifindex: ctx.ingress_ifindex() as u32,
        family: 0,
        proto: 0,
        direction: DIR_INGRESS,
        _pad0: 0,
    };
    let l3 = match proto {
        ETH_P_IP => ipv4(&f, off, &mut key),
        ETH_P_IPV6 => ipv6(&f, off, &mut key),
        _ => Err(XDP_NON_IP),
    }
    .map_err(counted)?;
    key.proto = l3.proto;
    let mut payload = l3.l4_len;
    let mut tcp_flags = 0u8;
    if !l3.later_fragment {
        let l4 = l3.l4_off;
        match l3.proto {
            IPPROTO_TCP => {
                let h = f.bytes::<14>(l4).ok_or(XDP_TRUNC_L4).map_err(counted)?;
                key.src_port = be16([h[0], h[1]]);
                key.dst_port = be16([h[2], h[3]]);
                let doff = ((h[12] >> 4) as usize) * 4;
                if doff < 20 || doff > l3.l4_len {
                    return Err(counted(XDP_BAD_L4));
                }
                tcp_flags = h[13];
                payload = l3.l4_len - doff;
            }
            IPPROTO_UDP => {
                let h = f.bytes::<8>(l4).ok_or(XDP_TRUNC_L4).map_err(counted)?;
                key.src_port = be16([h[0], h[1]]);
                key.dst_port = be16([h[2], h[3]]);
                if l3.l4_len < 8 {
                    return Err(counted(XDP_BAD_L4));
                }
                payload = l3.l4_len - 8;
            }
            IPPROTO_ICMP | IPPROTO_ICMPV6 => {
                let h = f.bytes::<8>(l4).ok_or(XDP_TRUNC_L4).map_err(counted)?;
                let (ty, code) = (h[0], h[1]);
                let echo = if l3.proto == IPPROTO_ICMP {
                    ty == 0 || ty == 8
                } else {
                    ty == 128 || ty == 129
                };
                key.src_port = if echo { be16([h[4], h[5]]) } else { 0 };
                key.dst_port = ((ty as u16) << 8) | code as u16;
                if l3.l4_len < 8 {
                    return Err(counted(XDP_BAD_L4));
                }
                payload = l3.l4_len - 8;
            }
            // Other transports (GRE, ESP, SCTP, ...) are flows without ports.
            _ => {}
        }
    }
    account(&key, &l3, payload as u64, tcp_flags);
    Ok(())
}

/// Counts `idx` and passes it on as the error.
#[inline(always)]
fn counted(idx: u32) -> u32 {
    count(idx);
    idx
}

#[inline(always)]
fn ipv4(f: &Frame, off: usize, key: &mut FlowKey) -> Result<L3, u32> {
    let h = f.bytes::<20>(off).ok_or(XDP_TRUNC_IPV4)?;
    if h[0] >> 4 != 4 {
        return Err(XDP_BAD_IHL);
    }
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(XDP_BAD_IHL);
    }
    // Options must be inside the frame too.
    if off + ihl > f.len() {
        return Err(XDP_TRUNC_IPV4);
    }
    let tot = be16([h[2], h[3]]) as usize;
    if tot < ihl || off + tot > f.len() {
        return Err(XDP_BAD_IPV4_LEN);
    }
    let frag = be16([h[6], h[7]]);
    let more = frag & 0x2000 != 0;
    let frag_off = frag & 0x1fff;
    let fragment = more || frag_off != 0;
    if fragment {
        count(XDP_IPV4_FRAGMENTS);
    }
    key.family = 4;
    key.src[..4].copy_from_slice(&h[12..16]);
    key.dst[..4].copy_from_slice(&h[16..20]);
    Ok(L3 {
        l4_off: off + ihl,
        ip_len: tot,
        l4_len: tot - ihl,
        proto: h[9],
        later_fragment: frag_off != 0,
        fragment,
    })
}

#[inline(always)]
fn ipv6(f: &Frame, off: usize, key: &mut FlowKey) -> Result<L3, u32> {
    let h = f.bytes::<40>(off).ok_or(XDP_TRUNC_IPV6)?;
    if h[0] >> 4 != 6 {
        return Err(XDP_TRUNC_IPV6);
    }
    let plen = be16([h[4], h[5]]) as usize;
    if off + 40 + plen > f.len() {
        return Err(XDP_BAD_IPV6_LEN);
    }
    key.family = 6;
    key.src.copy_from_slice(&h[8..24]);
    key.dst.copy_from_slice(&h[24..40]);
    let mut next = h[6];
    let mut ext = 0usize;
    let mut fragment = false;
    let mut later_fragment = false;
    let mut done = false;
    for _ in 0..IPV6_EXT_MAX {
        match next {
            // Hop-by-hop, routing, destination options, mobility: (len + 1) * 8 bytes.
            0 | 43 | 60 | 135 => {
                let e = f.bytes::<2>(off + 40 + ext).ok_or(XDP_TRUNC_IPV6)?;
                next = e[0];
                ext += (e[1] as usize + 1) * 8;
            }
            // Fragment header: 8 bytes; offset in the upper 13 bits of bytes 2-3.
            44 => {
                let e = f.bytes::<4>(off + 40 + ext).ok_or(XDP_TRUNC_IPV6)?;
                next = e[0];
                fragment = true;
                later_fragment = be16([e[2], e[3]]) & 0xfff8 != 0;
                ext += 8;
            }
            // Authentication header: (len + 2) * 4 bytes.
            51 => {
                let e = f.bytes::<2>(off + 40 + ext).ok_or(XDP_TRUNC_IPV6)?;
                next = e[0];
                ext += (e[1] as usize + 2) * 4;
            }
            _ => {
                done = true;
                break;
            }
        }
        if ext > IPV6_EXT_BYTES_MAX {
            return Err(XDP_IPV6_EXT_TOO_DEEP);
        }
    }
    if !done && matches!(next, 0 | 43 | 44 | 51 | 60 | 135) {
        return Err(XDP_IPV6_EXT_TOO_DEEP);
    }
    if ext > plen {
        return Err(XDP_TRUNC_IPV6);
    }
    if fragment {
        count(XDP_IPV6_FRAGMENTS);
    }
    Ok(L3 {
        l4_off: off + 40 + ext,
        ip_len: 40 + plen,
        l4_len: plen - ext,
        proto: next,
        later_fragment,
        fragment,
    })
}

/// Atomic add (BPF `lock xadd`): several CPUs may update one flow. The BPF target has no
/// compare-and-swap, so `AtomicU64::fetch_add` is not available; the intrinsic is.
#[inline(always)]
fn add(p: *mut u64, n: u64) {
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, n) };
}

#[inline(always)]
fn bump(st: *mut FlowStats, now: u64, bytes: u64, payload: u64, tcp_flags: u8, flags: u32) {
    unsafe {
        add(core::ptr::addr_of_mut!((*st).packets), 1);
        add(core::ptr::addr_of_mut!((*st).bytes), bytes);
        add(core::ptr::addr_of_mut!((*st).payload_bytes), payload);
        (*st).last_seen_ns = now;
        // Plain read-modify-write: flags only ever gain bits, and one flow's packets are
        // almost always handled by one CPU.
        if tcp_flags != 0 {
            (*st).tcp_flags |= tcp_flags as u32;
        }
        if flags != 0 {
            (*st).flags |= flags;
        }
    }
}

#[inline(always)]
fn flow_event(kind: EventKind, key: &FlowKey, reason: u32, stats: FlowStats) -> FlowEvent {
    let mut header = EventHeader::zeroed();
    header.kind = kind as u32;
    header.ts_ns = stats.last_seen_ns;
    FlowEvent {
        header,
        key: *key,
        reason,
        stats,
    }
}

#[inline(always)]
fn account(key: &FlowKey, l3: &L3, payload: u64, tcp_flags: u8) {
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let bytes = l3.ip_len as u64;
    let flags = if l3.fragment { FLOW_F_FRAGMENT } else { 0 };
    let st = match FLOWS.get_ptr_mut(key) {
        Some(st) => {
            bump(st, now, bytes, payload, tcp_flags, flags);
            st
        }
        None => {
            let init = FlowStats {
                first_seen_ns: now,
                last_seen_ns: now,
                packets: 1,
                bytes,
                payload_bytes: payload,
                tcp_flags: tcp_flags as u32,
                flags,
            };
            match FLOWS.insert(key, init, BPF_NOEXIST) {
                Ok(()) => {
                    count(XDP_FLOW_INSERTS);
                    // Tell userspace at once, so it can find the owning socket while it exists.
                    emit(
                        EventKind::FlowNew,
                        &flow_event(EventKind::FlowNew, key, 0, init),
                    );
                    match FLOWS.get_ptr_mut(key) {
                        Some(st) => st,
                        None => return,
                    }
                }
                // Another CPU created it first: add to theirs.
                Err(e) if e == -EEXIST => match FLOWS.get_ptr_mut(key) {
                    Some(st) => {
                        bump(st, now, bytes, payload, tcp_flags, flags);
                        st
                    }
                    None => {
                        count(XDP_FLOW_INSERT_FAILED);
                        return;
                    }
                },
                Err(_) => {
                    count(XDP_FLOW_INSERT_FAILED);
                    return;
                }
            }
        }
    };
    if key.proto == IPPROTO_TCP && tcp_flags & (TCP_FIN | TCP_RST) != 0 {
        let reason = if tcp_flags & TCP_RST != 0 {
            FLOW_END_RST
        } else {
            FLOW_END_FIN
        };
        let stats = unsafe { *st };
        emit(
            EventKind::FlowEnd,
            &flow_event(EventKind::FlowEnd, key, reason, stats),
        );
        if FLOWS.remove(key).is_ok() {
            count(XDP_FLOW_KERNEL_DELETES);
        }
    }
}
