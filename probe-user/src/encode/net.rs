//! JSON views of `net.*` events (`net`, `dns`, `result` objects of the schema).
use std::net::SocketAddr;

use serde::Serialize;

use super::b64_if_invalid;
use crate::{event::net::NetBody, families::net::decode::tcp_state_name};

#[derive(Serialize)]
pub struct EndpointV {
    pub ip: String,
    pub port: u16,
    /// The name this address was resolved from (the remote end only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

impl From<SocketAddr> for EndpointV {
    fn from(sa: SocketAddr) -> Self {
        EndpointV {
            ip: sa.ip().to_string(),
            port: sa.port(),
            domain: None,
        }
    }
}

#[derive(Serialize)]
pub struct StateV {
    pub old: &'static str,
    pub new: &'static str,
}

#[derive(Serialize)]
pub struct NetV {
    pub transport: &'static str,
    pub family: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_type: Option<&'static str>,
    /// `net.socket`: the protocol asked for (`IPPROTO_*`, `ETH_P_*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<EndpointV>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<EndpointV>,
    /// Unix socket path; an abstract name is rendered with a leading `@`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_b64: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_abstract: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateV>,
}

impl NetV {
    pub fn new(n: &NetBody) -> Self {
        let (src, dst) = n.src_dst();
        let mut src: Option<EndpointV> = src.map(Into::into);
        let mut dst: Option<EndpointV> = dst.map(Into::into);
        // The remote end is `src` of an inbound conversation, else `dst`.
        let remote = match n.direction {
            Some(crate::event::net::Direction::Inbound) => src.as_mut(),
            _ => dst.as_mut(),
        };
        if let (Some(e), Some(d)) = (remote, &n.remote_domain) {
            e.domain = Some(d.to_string());
        }
        let (path, path_b64, path_abstract) = match &n.unix {
            Some(u) => {
                let mut shown = Vec::with_capacity(u.name.len() + 1);
                if u.abstract_ns {
                    shown.push(b'@');
                }
                shown.extend_from_slice(&u.name);
                (
                    Some(String::from_utf8_lossy(&shown).into_owned()),
                    b64_if_invalid(&u.name),
                    u.abstract_ns,
                )
            }
            None => (None, None, false),
        };
        NetV {
            transport: n.transport(),
            family: n.family_name(),
            socket_type: n.sock_type_name(),
            protocol: None,
            src,
            dst,
            path,
            path_b64,
            path_abstract,
            direction: n.direction.map(|d| d.as_str()),
            fd: n.fd,
            backlog: n.backlog,
            state: n.state.map(|(old, new)| StateV {
                old: tcp_state_name(old),
                new: tcp_state_name(new),
            }),
        }
    }
}

#[derive(Serialize)]
pub struct AnswerV<'a> {
    pub name: &'a str,
    #[serde(rename = "type")]
    pub rtype: &'a str,
    pub data: &'a str,
    pub ttl: u32,
}

#[derive(Serialize)]
pub struct DnsV<'a> {
    pub query: &'a str,
    pub qtype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub id: u16,
    /// A response: `NOERROR`, `NXDOMAIN`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcode: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answers: Option<Vec<AnswerV<'a>>>,
    /// Written only when true: the response was cut where it was captured.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub answers_truncated: bool,
}

impl<'a> DnsV<'a> {
    pub fn new(n: &'a NetBody) -> Option<Self> {
        let d = n.dns.as_ref()?;
        let r = d.response.as_ref();
        Some(DnsV {
            query: &d.query,
            qtype: &d.qtype,
            server: n.remote.map(|r| r.ip().to_string()),
            id: d.id,
            rcode: r.map(|r| r.rcode.as_str()),
            answers: r.map(|r| {
                r.answers
                    .iter()
                    .map(|a| AnswerV {
                        name: &a.name,
                        rtype: &a.rtype,
                        data: &a.data,
                        ttl: a.ttl,
                    })
                    .collect()
            }),
            answers_truncated: r.is_some_and(|r| r.answers_truncated),
        })
    }
}
