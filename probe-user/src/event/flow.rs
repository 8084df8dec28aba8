//! The flow record every stage reads (`flow.*`, from XDP).
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use probe_common::{EventKind, FlowEvent, FlowKey, FlowStats, FLOW_END_FIN, FLOW_END_RST};

/// One flow record on its way through the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub kind: EventKind,
    pub key: FlowKey,
    pub stats: FlowStats,
    /// Why the record was made: `fin`, `rst`, `idle_timeout`, `active_timeout`, `probe_stop`.
    pub reason: &'static str,
    pub iface: Option<Arc<str>>,
    /// Packets and bytes since this flow's previous record.
    pub delta_packets: u64,
    pub delta_bytes: u64,
    /// Which end the owning process is (`src` sent the packets), when one was found.
    pub owner_side: Option<&'static str>,
    /// Names the ends were resolved from (DNS answers seen on this host or container).
    pub src_domain: Option<Arc<str>>,
    pub dst_domain: Option<Arc<str>>,
}

impl FlowRecord {
    pub fn from_kernel(kind: EventKind, ev: &FlowEvent) -> Self {
        FlowRecord {
            kind,
            key: ev.key,
            stats: ev.stats,
            reason: match ev.reason {
                FLOW_END_FIN => "fin",
                FLOW_END_RST => "rst",
                _ => "",
            },
            iface: None,
            delta_packets: ev.stats.packets,
            delta_bytes: ev.stats.bytes,
            owner_side: None,
            src_domain: None,
            dst_domain: None,
        }
    }

    pub fn src(&self) -> SocketAddr {
        SocketAddr::new(ip_of(&self.key.src, self.key.family), self.key.src_port)
    }

    pub fn dst(&self) -> SocketAddr {
        SocketAddr::new(ip_of(&self.key.dst, self.key.family), self.key.dst_port)
    }
}

pub fn ip_of(b: &[u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*b))
    }
}
