//! Wire types of the `net.*` events: socket syscalls, sends (DNS payloads, UDP destinations) and
//! TCP state changes, all one header plus [`NetInfo`].
use crate::EventHeader;

/// Bytes of a payload captured for DNS parsing (a query fits, and a response with its answers
/// as resolvers size them for UDP; longer ones are cut and `NetInfo::payload_total` tells).
pub const NET_DATA_LEN: usize = 2048;
const _: () = assert!(NET_DATA_LEN.is_power_of_two());
/// Room for a raw `sockaddr` (`sockaddr_un` is the largest one: 110 bytes).
pub const SOCKADDR_MAX: usize = 112;

/// `NetInfo::nflags`: `ret` holds the syscall's return value.
pub const NET_HAS_RET: u32 = 1 << 0;
/// `NetInfo::nflags`: the socket was found; `family`..`daddr` come from its `struct sock`.
pub const NET_HAS_SOCK: u32 = 1 << 1;
/// `NetInfo::nflags`: `addr` holds the sockaddr the caller passed (connect/bind/sendto) or the
/// bound unix address of the socket.
pub const NET_HAS_ADDR: u32 = 1 << 2;
/// `NetInfo::nflags`: `addr` is the socket's own (local) address, not the peer's.
pub const NET_ADDR_LOCAL: u32 = 1 << 3;
/// `NetInfo::nflags`: the payload came from a TCP stream (DNS over TCP, 2-byte length prefix).
pub const NET_PAYLOAD_TCP: u32 = 1 << 4;
/// `NetInfo::nflags`: the payload was received (a DNS response read from a port-53 peer).
pub const NET_PAYLOAD_RECV: u32 = 1 << 5;

/// The fixed part of every `net.*` record after the header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetInfo {
    /// Syscall return value (negative errno on failure); valid with `NET_HAS_RET`.
    pub ret: i64,
    /// `listen` backlog.
    pub arg: u64,
    /// Socket fd (the new fd for accept).
    pub fd: i32,
    /// `NET_*` bits.
    pub nflags: u32,
    /// `AF_*` of the socket.
    pub family: u16,
    /// `SOCK_*` type of the socket.
    pub sock_type: u16,
    /// `IPPROTO_*` of the socket.
    pub protocol: u16,
    /// Local port, host byte order.
    pub sport: u16,
    /// Remote port, host byte order.
    pub dport: u16,
    /// `TCP_*` states of `net.state`.
    pub old_state: u8,
    pub new_state: u8,
    /// Bytes of `addr` that are valid.
    pub addr_len: u16,
    pub _pad0: u16,
    /// Local address (IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Remote address (IPv4 in the first 4 bytes).
    pub daddr: [u8; 16],
    /// A raw `struct sockaddr_*`.
    pub addr: [u8; SOCKADDR_MAX],
    /// Bytes of payload in `NetEvent::data`.
    pub payload_len: u32,
    /// Full length of the datagram the payload was cut from.
    pub payload_total: u32,
}

impl NetInfo {
    pub const fn zeroed() -> Self {
        NetInfo {
            ret: 0,
            arg: 0,
            fd: -1,
            nflags: 0,
            family: 0,
            sock_type: 0,
            protocol: 0,
            sport: 0,
            dport: 0,
            old_state: 0,
            new_state: 0,
            addr_len: 0,
            _pad0: 0,
            saddr: [0; 16],
            daddr: [0; 16],
            addr: [0; SOCKADDR_MAX],
            payload_len: 0,
            payload_total: 0,
        }
    }
}

/// Header plus [`NetInfo`]: what syscall events carry (no payload).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetHead {
    pub header: EventHeader,
    pub info: NetInfo,
}

/// A `net.*` record. Variable length: it ends `payload_len` bytes into `data`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NetEvent {
    pub head: NetHead,
    pub data: [u8; NET_DATA_LEN],
}

/// Bytes of [`NetEvent`] before `data`.
pub const NET_FIXED_LEN: usize = core::mem::size_of::<NetHead>();

const _: () = assert!(core::mem::size_of::<NetInfo>() == 192);
const _: () = assert!(NET_FIXED_LEN == core::mem::size_of::<EventHeader>() + 192);
const _: () = assert!(core::mem::size_of::<NetEvent>() == NET_FIXED_LEN + NET_DATA_LEN);
