//! Wire types of the XDP flow telemetry (kinds 40-49): the flow map's key and counters, the
//! parser's counter slots, and the `flow.*` records.
use crate::EventHeader;

/// LRU hash of live flows: [`FlowKey`] -> [`FlowStats`].
pub const MAP_FLOWS: &str = "FLOWS";
/// Per-CPU `u64` packet counters of the XDP parser, indexed by `XDP_*`.
pub const MAP_XDP_STATS: &str = "XDP_STATS";
/// Default number of flows the kernel keeps (the least recently used one is evicted beyond it).
pub const FLOW_ENTRIES: u32 = 65536;

/// `XDP_STATS` indexes. Packets the parser looked at.
pub const XDP_PACKETS: u32 = 0;
/// Not IPv4/IPv6 (ARP, LLDP, ...): passed, no flow.
pub const XDP_NON_IP: u32 = 1;
/// Frame shorter than an Ethernet header (or its VLAN tags).
pub const XDP_TRUNC_ETH: u32 = 2;
/// More than two VLAN tags.
pub const XDP_VLAN_TOO_DEEP: u32 = 3;
/// IPv4 header (20 bytes, or `ihl * 4` with options) cut short.
pub const XDP_TRUNC_IPV4: u32 = 4;
/// IPv4 `ihl` below 5, or the version nibble disagrees with the ethertype.
pub const XDP_BAD_IHL: u32 = 5;
/// IPv4 `tot_len` smaller than the header or larger than the frame.
pub const XDP_BAD_IPV4_LEN: u32 = 6;
/// IPv4 fragments (counted; also accounted to a flow).
pub const XDP_IPV4_FRAGMENTS: u32 = 7;
/// IPv6 fixed header or an extension header cut short.
pub const XDP_TRUNC_IPV6: u32 = 8;
/// IPv6 extension chain longer than `IPV6_EXT_MAX`.
pub const XDP_IPV6_EXT_TOO_DEEP: u32 = 9;
/// IPv6 fragments (fragment extension header seen).
pub const XDP_IPV6_FRAGMENTS: u32 = 10;
/// TCP/UDP/ICMP header cut short.
pub const XDP_TRUNC_L4: u32 = 11;
/// TCP data offset below 5 or past the IP payload; or UDP length below 8.
pub const XDP_BAD_L4: u32 = 12;
/// IPv6 payload length larger than the frame.
pub const XDP_BAD_IPV6_LEN: u32 = 13;
/// Flows created in the LRU map (successful `BPF_NOEXIST` inserts).
pub const XDP_FLOW_INSERTS: u32 = 14;
/// Flow inserts that failed (other than a concurrent insert of the same key).
pub const XDP_FLOW_INSERT_FAILED: u32 = 15;
/// Flows removed by the kernel at TCP FIN/RST.
pub const XDP_FLOW_KERNEL_DELETES: u32 = 16;
/// Number of `XDP_STATS` slots.
pub const XDP_STAT_SLOTS: u32 = 24;

/// Longest IPv6 extension-header chain the parser follows.
pub const IPV6_EXT_MAX: u32 = 6;

/// `FlowKey::direction`: received on the interface (XDP sees ingress only).
pub const DIR_INGRESS: u8 = 0;

/// `FlowStats::flags`: a fragment was accounted to this flow (ports may be missing from some).
pub const FLOW_F_FRAGMENT: u32 = 1 << 0;
/// `FlowEvent::reason`: TCP FIN seen.
pub const FLOW_END_FIN: u32 = 1;
/// `FlowEvent::reason`: TCP RST seen.
pub const FLOW_END_RST: u32 = 2;

/// One direction of one flow. Addresses are 16 bytes (IPv4 in the first 4, rest zero), ports in
/// host byte order. For ICMP/ICMPv6 `src_port` is the echo identifier (0 for other messages)
/// and `dst_port` is `type << 8 | code`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub ifindex: u32,
    /// 4 or 6.
    pub family: u8,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub proto: u8,
    /// `DIR_*`.
    pub direction: u8,
    pub _pad0: u8,
}

/// Counters of one flow. Updated with atomics by every CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowStats {
    /// `bpf_ktime_get_boot_ns()` of the first and the latest packet.
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub packets: u64,
    /// IP bytes (IPv4 `tot_len`, IPv6 `payload_len + 40`): no link-layer header or padding.
    pub bytes: u64,
    /// Transport payload bytes (after the TCP/UDP/ICMP header).
    pub payload_bytes: u64,
    /// OR of the TCP flag bytes seen (FIN 0x01 .. CWR 0x80).
    pub tcp_flags: u32,
    /// `FLOW_F_*`.
    pub flags: u32,
}

/// `flow.end` (TCP FIN/RST, from the kernel) and `flow.new` (first packet of a flow, so
/// userspace can find the owning socket while it still exists). Header task fields are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    pub header: EventHeader,
    pub key: FlowKey,
    /// `FLOW_END_*` for `flow.end`, 0 for `flow.new`.
    pub reason: u32,
    pub stats: FlowStats,
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 44);
const _: () = assert!(core::mem::size_of::<FlowStats>() == 48);
const _: () = assert!(
    core::mem::size_of::<FlowEvent>() == core::mem::size_of::<crate::EventHeader>() + 44 + 4 + 48
);
