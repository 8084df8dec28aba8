//! The `flow` object of `flow.update` / `flow.end` (shared by every format that wants it).
use serde::Serialize;

use crate::{clock::BootClock, event::flow::FlowRecord};

#[derive(Serialize)]
pub struct EndpointV {
    pub ip: String,
    /// Absent for transports without ports (ICMP, GRE, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The name this address was resolved from (a DNS answer seen on this host or container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

#[derive(Serialize)]
pub struct IcmpV {
    #[serde(rename = "type")]
    pub ty: u8,
    pub code: u8,
    /// Echo identifier (echo request/reply only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u16>,
}

#[derive(Serialize)]
pub struct FlowV<'a> {
    pub iface: &'a str,
    pub ifindex: u32,
    pub transport: String,
    pub family: &'static str,
    pub src: EndpointV,
    pub dst: EndpointV,
    pub packets: u64,
    pub bytes: u64,
    pub payload_bytes: u64,
    pub packets_delta: u64,
    pub bytes_delta: u64,
    pub tcp_flags: Vec<&'static str>,
    pub first_seen: String,
    pub last_seen: String,
    /// Packet direction at the interface (XDP sees received packets).
    pub direction: &'static str,
    pub reason: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fragments: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpV>,
    /// Which end the reported `process` owns: `src` (it sent these packets) or `dst`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_side: Option<&'static str>,
}

/// Transport names for the IP protocol numbers users meet; others are the number.
pub fn transport(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

pub fn tcp_flag_names(bits: u32) -> Vec<&'static str> {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

impl<'a> FlowV<'a> {
    pub fn new(f: &'a FlowRecord, clock: &BootClock) -> Self {
        let k = &f.key;
        let icmp = matches!(k.proto, 1 | 58);
        let ports = matches!(k.proto, 6 | 17 | 132);
        let (src, dst) = (f.src(), f.dst());
        let ty = (k.dst_port >> 8) as u8;
        let echo = matches!((k.proto, ty), (1, 0 | 8) | (58, 128 | 129));
        FlowV {
            iface: f.iface.as_deref().unwrap_or(""),
            ifindex: k.ifindex,
            transport: transport(k.proto),
            family: if k.family == 4 { "ipv4" } else { "ipv6" },
            src: EndpointV {
                ip: src.ip().to_string(),
                port: ports.then_some(src.port()),
                domain: f.src_domain.as_deref().map(str::to_owned),
            },
            dst: EndpointV {
                ip: dst.ip().to_string(),
                port: ports.then_some(dst.port()),
                domain: f.dst_domain.as_deref().map(str::to_owned),
            },
            packets: f.stats.packets,
            bytes: f.stats.bytes,
            payload_bytes: f.stats.payload_bytes,
            packets_delta: f.delta_packets,
            bytes_delta: f.delta_bytes,
            tcp_flags: if k.proto == 6 {
                tcp_flag_names(f.stats.tcp_flags)
            } else {
                Vec::new()
            },
            first_seen: clock.rfc3339(f.stats.first_seen_ns),
            last_seen: clock.rfc3339(f.stats.last_seen_ns),
            direction: "ingress",
            reason: f.reason,
            fragments: f.stats.flags & probe_common::FLOW_F_FRAGMENT != 0,
            icmp: icmp.then_some(IcmpV {
                ty,
                code: k.dst_port as u8,
                id: echo.then_some(k.src_port),
            }),
            process_side: f.owner_side,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_in_bit_order() {
        assert_eq!(tcp_flag_names(0x12), vec!["SYN", "ACK"]);
        assert_eq!(tcp_flag_names(0x11), vec!["FIN", "ACK"]);
        assert!(tcp_flag_names(0).is_empty());
        assert_eq!(transport(6), "tcp");
        assert_eq!(transport(99), "99");
    }
}
