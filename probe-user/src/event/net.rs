//! The decoded socket record every stage reads (`net.*`).
use std::net::SocketAddr;

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const AF_NETLINK: u16 = 16;
const AF_PACKET: u16 = 17;
const SOCK_RAW: u16 = 3;

/// Names of the address families besides IP and unix (`AF_*`, lowercase).
const FAMILIES: &[(u16, &str)] = &[
    (3, "ax25"),
    (4, "ipx"),
    (5, "appletalk"),
    (9, "x25"),
    (15, "key"),
    (AF_NETLINK, "netlink"),
    (AF_PACKET, "packet"),
    (21, "rds"),
    (29, "can"),
    (30, "tipc"),
    (31, "bluetooth"),
    (38, "alg"),
    (40, "vsock"),
    (42, "qipcrtr"),
    (43, "smc"),
    (44, "xdp"),
    (45, "mctp"),
];

/// Who started the conversation, seen from the acting socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Identity of an IP conversation seen from the local socket, for matching `flow.*` records
/// to the process that owns the socket. `protocol` is the `IPPROTO_*` number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    pub protocol: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// A unix socket address: a path, or a name in the abstract namespace (leading NUL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixAddr {
    pub name: Vec<u8>,
    pub abstract_ns: bool,
}

/// A DNS question found in a payload sent to port 53, or a response received from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsQuery {
    /// Query name without the trailing dot.
    pub query: String,
    /// `A`, `AAAA`, ... (`TYPE<n>` for types without a name).
    pub qtype: String,
    pub id: u16,
    /// A response: its code (`NOERROR`, `NXDOMAIN`, ...) and answers.
    pub response: Option<DnsResponse>,
}

/// What a DNS response said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsResponse {
    pub rcode: String,
    pub answers: Vec<DnsAnswer>,
    /// The response was longer than the bytes captured: `answers` are the ones that fit whole.
    pub answers_truncated: bool,
}

/// One resource record of a response's answer section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Owner name, without the trailing dot.
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, ...
    pub rtype: String,
    /// The address for A/AAAA, the target name for CNAME/PTR/NS, text for the others.
    pub data: String,
    pub ttl: u32,
    /// The address of an A or AAAA record.
    pub ip: Option<std::net::IpAddr>,
}

/// Everything a `net.*` event reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetBody {
    /// `IPPROTO_*` of the socket (0 for unix sockets).
    pub protocol: u16,
    /// `AF_*` of the socket.
    pub family: u16,
    /// `SOCK_*` type of the socket.
    pub sock_type: u16,
    /// The socket's own address, when known.
    pub local: Option<SocketAddr>,
    /// The peer's address, when known.
    pub remote: Option<SocketAddr>,
    /// Unix socket address (the peer's for connect, else the socket's own).
    pub unix: Option<UnixAddr>,
    pub direction: Option<Direction>,
    /// The socket's fd (the new one for accept).
    pub fd: Option<i32>,
    /// Syscall return value (negative errno on failure).
    pub ret: Option<i64>,
    pub backlog: Option<u64>,
    /// TCP states (`TCP_*` numbers) of `net.state`.
    pub state: Option<(u8, u8)>,
    pub dns: Option<DnsQuery>,
    /// The name the remote address was resolved from (a DNS answer this process or its
    /// container received), filled in by enrichment.
    pub remote_domain: Option<std::sync::Arc<str>>,
}

impl NetBody {
    /// The 5-tuple of an IP socket whose both ends are known.
    pub fn five_tuple(&self) -> Option<FiveTuple> {
        Some(FiveTuple {
            protocol: u8::try_from(self.protocol).ok()?,
            local: self.local?,
            remote: self.remote?,
        })
    }

    /// `(src, dst)` of the schema: for a conversation with a known direction the initiator
    /// comes first (client -> server); otherwise the socket's own address is `src`.
    pub fn src_dst(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        match self.direction {
            Some(Direction::Inbound) => (self.remote, self.local),
            _ => (self.local, self.remote),
        }
    }

    /// The protocol on top of IP, else the family itself (`unix`, `netlink`, `packet`,
    /// ...); `raw` only for a `SOCK_RAW` IP socket.
    pub fn transport(&self) -> &'static str {
        match self.family {
            AF_INET | AF_INET6 if self.sock_type == SOCK_RAW => "raw",
            AF_INET | AF_INET6 => match self.protocol {
                6 => "tcp",
                17 => "udp",
                1 | 58 => "icmp",
                132 => "sctp",
                262 => "mptcp",
                _ => "other",
            },
            AF_UNIX => "unix",
            0 => "other",
            _ => self.family_name(),
        }
    }

    pub fn family_name(&self) -> &'static str {
        match self.family {
            AF_INET => "ipv4",
            AF_INET6 => "ipv6",
            AF_UNIX => "unix",
            f => FAMILIES
                .iter()
                .find(|(n, _)| *n == f)
                .map_or("other", |(_, name)| name),
        }
    }

    pub fn sock_type_name(&self) -> Option<&'static str> {
        Some(match self.sock_type {
            1 => "stream",
            2 => "dgram",
            3 => "raw",
            5 => "seqpacket",
            _ => return None,
        })
    }
}
