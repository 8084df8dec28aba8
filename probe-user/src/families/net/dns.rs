//! DNS messages in captured payloads, parsed with `simple-dns`: the question of a query sent
//! to port 53, and the code and answers of a response received from it. A payload that is not
//! a well-formed message (compression loop, out of bounds, cut inside its question) is an error,
//! counted by the caller; a response cut after its question keeps the answers that fit.
//! Nothing here panics on any input.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::{rdata::RData, Packet, PacketFlag, QTYPE, RCODE, TYPE};

use crate::{
    event::net::{DnsAnswer, DnsQuery, DnsResponse},
    families::wire::DecodeError,
};

fn dns_err(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Dns(e.to_string())
}

fn type_name(t: TYPE) -> String {
    match t {
        TYPE::Unknown(n) => format!("TYPE{n}"),
        t => format!("{t:?}"),
    }
}

/// The first question of a packet: (name, type).
fn question(packet: &Packet<'_>) -> Result<(String, String), DecodeError> {
    let q = packet
        .questions
        .first()
        .ok_or_else(|| dns_err("no question"))?;
    let qtype = match q.qtype {
        QTYPE::TYPE(t) => type_name(t),
        other => format!("{other:?}"),
    };
    Ok((q.qname.to_string(), qtype))
}

/// Parses the DNS question of a query. A TCP payload starts with a 2-byte length.
pub fn parse_query(payload: &[u8], tcp: bool) -> Result<DnsQuery, DecodeError> {
    let msg = if tcp {
        payload
            .get(2..)
            .ok_or_else(|| dns_err("TCP payload without length"))?
    } else {
        payload
    };
    let packet = Packet::parse(msg).map_err(dns_err)?;
    if packet.has_flags(PacketFlag::RESPONSE) {
        return Err(dns_err("a response, not a query"));
    }
    let (query, qtype) = question(&packet)?;
    Ok(DnsQuery {
        query,
        qtype,
        id: packet.id(),
        response: None,
    })
}

fn rcode_name(r: RCODE) -> String {
    match r {
        RCODE::NoError => "NOERROR",
        RCODE::FormatError => "FORMERR",
        RCODE::ServerFailure => "SERVFAIL",
        RCODE::NameError => "NXDOMAIN",
        RCODE::NotImplemented => "NOTIMP",
        RCODE::Refused => "REFUSED",
        RCODE::YXDOMAIN => "YXDOMAIN",
        RCODE::YXRRSET => "YXRRSET",
        RCODE::NXRRSET => "NXRRSET",
        RCODE::NOTAUTH => "NOTAUTH",
        RCODE::NOTZONE => "NOTZONE",
        RCODE::BADVERS => "BADVERS",
        RCODE::Reserved => "RESERVED",
    }
    .to_owned()
}

/// Longest `data` kept for record types rendered from their debug form.
const OTHER_DATA_MAX: usize = 256;

/// (data, address) of one record.
fn rdata_text(r: &RData<'_>) -> (String, Option<IpAddr>) {
    match r {
        RData::A(a) => {
            let ip = IpAddr::V4(Ipv4Addr::from(a.address));
            (ip.to_string(), Some(ip))
        }
        RData::AAAA(a) => {
            let ip = IpAddr::V6(Ipv6Addr::from(a.address));
            (ip.to_string(), Some(ip))
        }
        RData::CNAME(n) => (n.0.to_string(), None),
        RData::NS(n) => (n.0.to_string(), None),
        RData::PTR(n) => (n.0.to_string(), None),
        RData::MX(m) => (format!("{} {}", m.preference, m.exchange), None),
        RData::TXT(t) => (
            String::try_from(t.clone())
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            None,
        ),
        other => {
            let mut s = format!("{other:?}");
            if s.len() > OTHER_DATA_MAX {
                let mut end = OTHER_DATA_MAX;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
            }
            (s, None)
        }
    }
}

/// Parses a response received from port 53: its question, code and answer section. `total`
/// is the length received, which may be more than the bytes captured: a response cut there
/// keeps the answers that fit whole and says so (`answers_truncated`). A TCP payload may start
/// with the 2-byte length (when the reader took the whole frame at once).
pub fn parse_response(payload: &[u8], total: usize, tcp: bool) -> Result<DnsQuery, DecodeError> {
    let cut = total > payload.len();
    let whole = total.max(payload.len());
    let framed = tcp
        && payload.len() >= 2
        && u16::from_be_bytes([payload[0], payload[1]]) as usize == whole - 2;
    let msg = if framed { &payload[2..] } else { payload };
    if !cut {
        return response_of(msg, false);
    }
    if msg.len() < 12 {
        return Err(dns_err("response cut inside its header"));
    }
    // The header announces more records than the captured bytes hold: announce only the
    // answers that fit (a record is at least 11 bytes), found by bisection since k answers
    // parse whenever k + 1 do, and drop the authority and additional sections.
    let announced = u16::from_be_bytes([msg[6], msg[7]]);
    let mut copy = msg.to_vec();
    copy[8..12].fill(0);
    let mut parses = |k: u16| {
        copy[6..8].copy_from_slice(&k.to_be_bytes());
        Packet::parse(&copy).is_ok()
    };
    if !parses(0) {
        return Err(dns_err(format!(
            "response of {total} bytes cut at {} bytes, inside its question",
            payload.len()
        )));
    }
    let (mut lo, mut hi) = (0u16, announced.min((msg.len() / 11) as u16));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if parses(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    // Built once, from the most answers that parse.
    copy[6..8].copy_from_slice(&lo.to_be_bytes());
    response_of(&copy, lo < announced)
}

fn response_of(msg: &[u8], answers_truncated: bool) -> Result<DnsQuery, DecodeError> {
    let packet = Packet::parse(msg).map_err(dns_err)?;
    if !packet.has_flags(PacketFlag::RESPONSE) {
        return Err(dns_err("a query, not a response"));
    }
    let (query, qtype) = question(&packet)?;
    let answers = packet
        .answers
        .iter()
        .map(|rr| {
            let (data, ip) = rdata_text(&rr.rdata);
            DnsAnswer {
                name: rr.name.to_string(),
                rtype: type_name(rr.rdata.type_code()),
                data,
                ttl: rr.ttl,
                ip,
            }
        })
        .collect();
    Ok(DnsQuery {
        query,
        qtype,
        id: packet.id(),
        response: Some(DnsResponse {
            rcode: rcode_name(packet.rcode()),
            answers,
            answers_truncated,
        }),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use simple_dns::{rdata, Name, Question, ResourceRecord, CLASS};

    use super::*;

    pub(crate) fn query(name: &str, qtype: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(0x1234);
        p.questions.push(Question::new(
            Name::new_unchecked(name),
            qtype.into(),
            CLASS::IN.into(),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    fn response(name: &str) -> Vec<u8> {
        let mut p = Packet::new_reply(0x4321);
        p.questions.push(Question::new(
            Name::new_unchecked(name),
            TYPE::A.into(),
            CLASS::IN.into(),
            false,
        ));
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked(name),
            CLASS::IN,
            60,
            RData::CNAME(rdata::CNAME(Name::new_unchecked("cdn.example.test"))),
        ));
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked("cdn.example.test"),
            CLASS::IN,
            30,
            RData::A(rdata::A {
                address: u32::from(Ipv4Addr::new(10, 1, 2, 3)),
            }),
        ));
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked("cdn.example.test"),
            CLASS::IN,
            30,
            RData::AAAA(rdata::AAAA {
                address: u128::from(Ipv6Addr::LOCALHOST),
            }),
        ));
        p.build_bytes_vec_compressed().unwrap()
    }

    #[test]
    fn dns_queries_parse_udp_and_tcp() {
        let q = parse_query(&query("example.test", TYPE::AAAA), false).unwrap();
        assert_eq!(
            (q.query.as_str(), q.qtype.as_str(), q.id),
            ("example.test", "AAAA", 0x1234)
        );
        let mut tcp = vec![0, 0];
        tcp.extend(query("a.b", TYPE::A));
        let q = parse_query(&tcp, true).unwrap();
        assert_eq!((q.query.as_str(), q.qtype.as_str()), ("a.b", "A"));
        let q = parse_query(&query("x", TYPE::HTTPS), false).unwrap();
        assert_eq!(q.qtype, "HTTPS");
        // simple-dns refuses query types it has no name for: counted as malformed.
        assert!(parse_query(&query("x", TYPE::Unknown(999)), false).is_err());
        assert!(parse_query(&response("r.test"), false).is_err());
    }

    #[test]
    fn responses_give_code_and_answers_udp_and_tcp() {
        let r = response("www.example.test");
        let q = parse_response(&r, r.len(), false).unwrap();
        assert_eq!(
            (q.query.as_str(), q.qtype.as_str()),
            ("www.example.test", "A")
        );
        let resp = q.response.unwrap();
        assert_eq!(resp.rcode, "NOERROR");
        let a: Vec<(&str, &str, &str, u32)> = resp
            .answers
            .iter()
            .map(|a| (a.name.as_str(), a.rtype.as_str(), a.data.as_str(), a.ttl))
            .collect();
        assert_eq!(
            a,
            vec![
                ("www.example.test", "CNAME", "cdn.example.test", 60),
                ("cdn.example.test", "A", "10.1.2.3", 30),
                ("cdn.example.test", "AAAA", "::1", 30),
            ]
        );
        assert_eq!(resp.answers[1].ip, Some("10.1.2.3".parse().unwrap()));
        // TCP: with its length prefix (one read of the frame), or without (two reads).
        let mut framed = (r.len() as u16).to_be_bytes().to_vec();
        framed.extend(&r);
        let q = parse_response(&framed, framed.len(), true).unwrap();
        assert_eq!(q.response.unwrap().answers.len(), 3);
        assert!(parse_response(&r, r.len(), true).is_ok());
        // A query is not a response. A response cut inside its last answer keeps the two
        // before it and says so; one cut inside its question is an error.
        let qb = query("x.test", TYPE::A);
        assert!(parse_response(&qb, qb.len(), false).is_err());
        let cut = parse_response(&r[..r.len() - 4], r.len(), false).unwrap();
        let cut = cut.response.unwrap();
        assert_eq!(cut.answers.len(), 2);
        assert!(cut.answers_truncated);
        assert!(parse_response(&r[..20], r.len(), false).is_err());
        assert!(parse_response(&r[..8], r.len(), false).is_err());
        let mut framed_cut = (r.len() as u16).to_be_bytes().to_vec();
        framed_cut.extend(&r[..r.len() - 4]);
        let q = parse_response(&framed_cut, r.len() + 2, true).unwrap();
        assert_eq!(q.response.unwrap().answers.len(), 2, "TCP frame cut too");
        let mut nx = Packet::new_reply(1);
        *nx.rcode_mut() = RCODE::NameError;
        nx.questions.push(Question::new(
            Name::new_unchecked("no.test"),
            TYPE::A.into(),
            CLASS::IN.into(),
            false,
        ));
        let nx = nx.build_bytes_vec().unwrap();
        let q = parse_response(&nx, nx.len(), false).unwrap();
        assert_eq!(q.response.unwrap().rcode, "NXDOMAIN");
    }

    #[test]
    fn malformed_dns_is_an_error_not_a_panic() {
        for tcp in [false, true] {
            assert!(parse_query(&[], tcp).is_err());
            assert!(parse_response(&[], 0, tcp).is_err());
        }
        assert!(parse_query(&[1, 2, 3], true).is_err());
        assert!(parse_query(b"not dns at all, definitely not", false).is_err());
        // A header announcing a question that is not there.
        assert!(parse_query(&[0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0], false).is_err());
        // No question at all.
        assert!(parse_query(&[0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], false).is_err());
        // A label that points at itself (compression loop), in a query and a response.
        let looped = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert!(parse_query(&looped, false).is_err());
        let mut rl = looped;
        rl[2] = 0x81;
        assert!(parse_response(&rl, rl.len(), false).is_err());
        // An answer whose name points past the end.
        let mut oob = response("o.test");
        let n = oob.len();
        oob.extend([0xc0, 0xff, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]);
        oob[7] += 1; // one more answer
        assert!(parse_response(&oob, oob.len(), false).is_err() || n > 0);
        let good = response("prefix.test");
        for n in 0..good.len() {
            let _ = parse_response(&good[..n], n, false);
            let _ = parse_query(&good[..n], false);
        }
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            let mut buf = vec![0u8; (x % 300) as usize];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if buf.len() > 3 {
                buf[2] |= 0x80; // a response
            }
            let _ = parse_response(&buf, buf.len(), x & 1 == 0);
            let _ = parse_query(&buf, x & 1 == 0);
        }
    }
}
