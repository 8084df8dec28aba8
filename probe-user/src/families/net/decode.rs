//! `net.*` records -> [`NetBody`]: socket addresses from the kernel's `struct sock` and the
//! caller's sockaddr, errno names, and DNS messages parsed from the captured payload
//! (`dns.rs`).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use probe_common::{
    EventKind, NetHead, NetInfo, NET_ADDR_LOCAL, NET_FIXED_LEN, NET_HAS_ADDR, NET_HAS_RET,
    NET_HAS_SOCK, NET_PAYLOAD_RECV, NET_PAYLOAD_TCP,
};

use crate::{
    event::net::{Direction, NetBody, UnixAddr},
    families::wire::{read, DecodeError},
};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const TCP_SYN_SENT: u8 = 2;
const TCP_SYN_RECV: u8 = 3;

/// TCP state name as in the kernel's `tcp_states.h`, without the `TCP_` prefix.
pub fn tcp_state_name(s: u8) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

fn ip_of(family: u16, raw: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*raw))),
        _ => None,
    }
}

/// A raw `sockaddr_*` as the caller passed it (or as the kernel stores a unix address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockAddr {
    Inet(SocketAddr),
    Unix(UnixAddr),
    /// `AF_UNSPEC` (dissolves a UDP association) or a family we do not parse.
    Other(u16),
}

/// Parses a raw sockaddr; `None` when it is too short for its family.
pub fn parse_sockaddr(b: &[u8]) -> Option<SockAddr> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    match family {
        AF_INET => {
            let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SockAddr::Inet(SocketAddr::new(IpAddr::from(ip), port)))
        }
        AF_INET6 => {
            let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some(SockAddr::Inet(SocketAddr::new(IpAddr::from(ip), port)))
        }
        AF_UNIX => {
            let path = b.get(2..).unwrap_or(&[]);
            if path.is_empty() {
                // An unnamed socket (e.g. the client end of a socketpair).
                return Some(SockAddr::Unix(UnixAddr {
                    name: Vec::new(),
                    abstract_ns: false,
                }));
            }
            if path[0] == 0 {
                // Abstract: every byte after the NUL up to the given length is the name.
                return Some(SockAddr::Unix(UnixAddr {
                    name: path[1..].to_vec(),
                    abstract_ns: true,
                }));
            }
            let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
            Some(SockAddr::Unix(UnixAddr {
                name: path[..end].to_vec(),
                abstract_ns: false,
            }))
        }
        other => Some(SockAddr::Other(other)),
    }
}

/// Decodes the part of a `net.*` record after the common header.
pub fn decode(kind: EventKind, bytes: &[u8]) -> Result<NetBody, DecodeError> {
    let head: NetHead = read(bytes).ok_or(DecodeError::BadLength {
        kind: kind.name(),
        len: bytes.len(),
        want: NET_FIXED_LEN,
    })?;
    let i: NetInfo = head.info;
    let has_sock = i.nflags & NET_HAS_SOCK != 0;
    let mut b = NetBody {
        protocol: i.protocol,
        family: i.family,
        sock_type: i.sock_type,
        local: None,
        remote: None,
        unix: None,
        direction: None,
        fd: (i.fd >= 0).then_some(i.fd),
        ret: (i.nflags & NET_HAS_RET != 0).then_some(i.ret),
        backlog: None,
        state: None,
        dns: None,
        remote_domain: None,
    };
    if has_sock {
        // A socket not bound yet has no local address worth reporting.
        if let Some(ip) =
            ip_of(i.family, &i.saddr).filter(|ip| i.sport != 0 || !ip.is_unspecified())
        {
            b.local = Some(SocketAddr::new(ip, i.sport));
        }
        // An unconnected socket has no peer: port 0 and the unspecified address.
        if let Some(ip) =
            ip_of(i.family, &i.daddr).filter(|ip| i.dport != 0 || !ip.is_unspecified())
        {
            b.remote = Some(SocketAddr::new(ip, i.dport));
        }
    }
    if i.nflags & NET_HAS_ADDR != 0 {
        let len = (i.addr_len as usize).min(i.addr.len());
        let local = i.nflags & NET_ADDR_LOCAL != 0;
        match parse_sockaddr(&i.addr[..len]) {
            Some(SockAddr::Inet(sa)) => {
                if !has_sock {
                    b.family = if sa.is_ipv4() { AF_INET } else { AF_INET6 };
                }
                if local {
                    // bind: the kernel's port wins (it picks one for port 0).
                    match b.local {
                        Some(l) if l.port() != 0 => {
                            b.local = Some(SocketAddr::new(sa.ip(), l.port()));
                        }
                        _ => b.local = Some(sa),
                    }
                } else {
                    b.remote = Some(sa);
                }
            }
            Some(SockAddr::Unix(u)) => {
                b.family = AF_UNIX;
                b.unix = Some(u);
            }
            Some(SockAddr::Other(_)) | None => {}
        }
    }
    match kind {
        EventKind::NetConnect | EventKind::NetSend | EventKind::NetDns => {
            b.direction = Some(Direction::Outbound);
        }
        EventKind::NetAccept => b.direction = Some(Direction::Inbound),
        EventKind::NetListen => b.backlog = Some(i.arg),
        EventKind::NetState => {
            b.state = Some((i.old_state, i.new_state));
            b.direction = match i.old_state {
                TCP_SYN_SENT => Some(Direction::Outbound),
                TCP_SYN_RECV => Some(Direction::Inbound),
                _ => None,
            };
        }
        _ => {}
    }
    if kind == EventKind::NetDns {
        let want = (i.payload_len as usize).min(probe_common::NET_DATA_LEN);
        let payload =
            bytes
                .get(NET_FIXED_LEN..NET_FIXED_LEN + want)
                .ok_or(DecodeError::BadLength {
                    kind: kind.name(),
                    len: bytes.len(),
                    want: NET_FIXED_LEN + want,
                })?;
        let tcp = i.nflags & NET_PAYLOAD_TCP != 0;
        b.dns = Some(if i.nflags & NET_PAYLOAD_RECV != 0 {
            super::dns::parse_response(payload, i.payload_total as usize, tcp)?
        } else {
            super::dns::parse_query(payload, tcp)?
        });
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddrs() {
        let mut v4 = vec![2, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend([0; 8]);
        assert_eq!(
            parse_sockaddr(&v4),
            Some(SockAddr::Inet("127.0.0.1:8080".parse().unwrap()))
        );
        let mut v6 = vec![10, 0, 0, 53, 0, 0, 0, 0];
        v6.extend(Ipv6Addr::LOCALHOST.octets());
        assert_eq!(
            parse_sockaddr(&v6),
            Some(SockAddr::Inet("[::1]:53".parse().unwrap()))
        );
        assert_eq!(parse_sockaddr(&v6[..20]), None);
        let mut un = vec![1, 0];
        un.extend(b"/tmp/s\0garbage");
        assert_eq!(
            parse_sockaddr(&un),
            Some(SockAddr::Unix(UnixAddr {
                name: b"/tmp/s".to_vec(),
                abstract_ns: false
            }))
        );
        let ab = [1, 0, 0, b'a', 0, b'b'];
        assert_eq!(
            parse_sockaddr(&ab),
            Some(SockAddr::Unix(UnixAddr {
                name: b"a\0b".to_vec(),
                abstract_ns: true
            }))
        );
        assert_eq!(parse_sockaddr(&[0, 0]), Some(SockAddr::Other(0)));
        assert_eq!(parse_sockaddr(&[1]), None);
    }

    fn record(kind: EventKind, f: impl FnOnce(&mut NetInfo)) -> Vec<u8> {
        let mut h = NetHead {
            header: probe_common::EventHeader::zeroed(),
            info: NetInfo::zeroed(),
        };
        h.header.kind = kind as u32;
        f(&mut h.info);
        // SAFETY: test-only view of a repr(C) wire struct without padding.
        unsafe {
            std::slice::from_raw_parts(&h as *const NetHead as *const u8, NET_FIXED_LEN).to_vec()
        }
    }

    #[test]
    fn accept_puts_the_peer_first_and_keeps_the_tuple() {
        let rec = record(EventKind::NetAccept, |i| {
            i.nflags = NET_HAS_SOCK | NET_HAS_RET;
            i.family = AF_INET;
            i.protocol = 6;
            i.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
            i.sport = 8080;
            i.daddr[..4].copy_from_slice(&[127, 0, 0, 2]);
            i.dport = 40000;
            i.fd = 7;
        });
        let b = decode(EventKind::NetAccept, &rec).unwrap();
        let (src, dst) = b.src_dst();
        assert_eq!(src, Some("127.0.0.2:40000".parse().unwrap()));
        assert_eq!(dst, Some("127.0.0.1:8080".parse().unwrap()));
        let t = b.five_tuple().unwrap();
        assert_eq!(
            (t.protocol, t.local.port(), t.remote.port()),
            (6, 8080, 40000)
        );
        assert_eq!((b.fd, b.ret, b.transport()), (Some(7), Some(0), "tcp"));
    }

    #[test]
    fn bind_to_port_zero_takes_the_kernels_port() {
        let rec = record(EventKind::NetBind, |i| {
            i.nflags = NET_HAS_SOCK | NET_HAS_ADDR | NET_ADDR_LOCAL;
            i.family = AF_INET6;
            i.protocol = 17;
            i.saddr = Ipv6Addr::LOCALHOST.octets();
            i.sport = 5353;
            let mut sa = vec![10, 0, 0, 0, 0, 0, 0, 0];
            sa.extend(Ipv6Addr::LOCALHOST.octets());
            i.addr[..sa.len()].copy_from_slice(&sa);
            i.addr_len = 28;
        });
        let b = decode(EventKind::NetBind, &rec).unwrap();
        assert_eq!(b.local, Some("[::1]:5353".parse().unwrap()));
        assert_eq!(b.remote, None);
        assert_eq!(b.direction, None);
    }

    #[test]
    fn dns_record_lengths_are_checked() {
        let q = crate::families::net::dns::tests::query("len.test", simple_dns::TYPE::A);
        let mut rec = record(EventKind::NetDns, |i| {
            i.payload_len = q.len() as u32;
        });
        rec.extend(&q);
        assert_eq!(
            decode(EventKind::NetDns, &rec).unwrap().dns.unwrap().query,
            "len.test"
        );
        rec.truncate(rec.len() - 1);
        assert!(matches!(
            decode(EventKind::NetDns, &rec),
            Err(DecodeError::BadLength { .. })
        ));
        // A length beyond the capture buffer is clamped, never trusted.
        let mut rec = record(EventKind::NetDns, |i| i.payload_len = u32::MAX);
        rec.extend(vec![0u8; 600]);
        assert!(decode(EventKind::NetDns, &rec).is_err());
    }

    #[test]
    fn short_records_are_errors() {
        assert!(matches!(
            decode(EventKind::NetConnect, &[0; 100]),
            Err(DecodeError::BadLength { .. })
        ));
    }
}
