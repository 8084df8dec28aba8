//! DNS answers: responses read from a port-53 peer (getent through glibc, dig over UDP and
//! TCP, curl), their answers and code in `net.dns`, and the name on the connection that
//! follows (`net.dst.domain`). A server the test runs answers; clients use it through their
//! own /etc/resolv.conf. Malformed responses are counted, never fatal.
use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{TcpListener, UdpSocket},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};
use tprobe_tests::{
    dns::{resolving, unique_loopback, Answer, Responder},
    is, Probe, WAIT,
};

fn tag() -> String {
    format!(
        "t17-{}-{}",
        std::process::id(),
        unique_loopback(59).octets()[3]
    )
}

/// The `net.dns` responses of `pid` for `name`.
fn response(probe: &Probe, pid: u32, name: &str) -> Value {
    probe
        .wait_for(WAIT, |v| {
            is(v, "net.dns", pid) && v["dns"]["query"] == name && v["dns"].get("answers").is_some()
        })
        .unwrap_or_else(|| panic!("no DNS response for {name} to {pid}"))
}

fn output(cmd: &mut Command) -> (u32, String) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?}");
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn answers_from_getent_dig_and_curl_name_the_connection() {
    let t = tag();
    let (www, edge, tcp) = (
        format!("www.{t}.test"),
        format!("edge.{t}.test"),
        format!("tcp.{t}.test"),
    );
    let web = unique_loopback(58);
    let names = HashMap::from([
        (www.clone(), Answer::CnameA(edge.clone(), web)),
        (tcp.clone(), Answer::CnameA(edge.clone(), web)),
    ]);
    let dns = Responder::start(names);
    let probe = Probe::start(&["--events", "net.dns,net.connect"]);
    let conf = dns.resolv_conf();

    // glibc: getent hosts.
    let (g, out) = output(&mut resolving(&conf, &["getent", "ahostsv4", &www]));
    assert!(out.contains(&web.to_string()), "{out}");
    let r = response(&probe, g, &www);
    assert_eq!(r["dns"]["rcode"], "NOERROR");
    assert_eq!(r["dns"]["server"], dns.ip.to_string());
    // The socket's own view: the server is its peer.
    assert_eq!(
        r["net"]["dst"],
        json!({"ip": dns.ip.to_string(), "port": 53})
    );
    assert_eq!(
        r["dns"]["answers"],
        json!([
            {"name": www, "type": "CNAME", "data": edge, "ttl": 300},
            {"name": edge, "type": "A", "data": web.to_string(), "ttl": 120},
        ])
    );
    // A name the server does not know.
    let nx = format!("nx.{t}.test");
    let _ = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/resolv.conf && exec getent hosts \"$1\"",
        ])
        .arg(&conf)
        .arg(&nx)
        .stdout(Stdio::null())
        .status();
    let r = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "net.dns"
                && v["dns"]["query"] == nx.as_str()
                && v["dns"]["rcode"] == "NXDOMAIN"
        })
        .expect("NXDOMAIN response");
    assert_eq!(r["dns"]["answers"], json!([]));

    // dig over UDP and over TCP (a length-prefixed read).
    let server = format!("@{}", dns.ip);
    let (d, _) = output(Command::new("dig").args([&server, "+tries=1", &www, "A"]));
    let r = response(&probe, d, &www);
    assert_eq!(r["net"]["transport"], "udp");
    assert_eq!(r["dns"]["answers"][1]["data"], web.to_string());
    let (d, _) = output(Command::new("dig").args([&server, "+tcp", "+tries=1", &tcp, "A"]));
    let r = response(&probe, d, &tcp);
    assert_eq!(r["net"]["transport"], "tcp");
    assert_eq!(r["dns"]["answers"][1]["data"], web.to_string());

    // curl: resolves, then connects; the connection carries the name it asked for.
    let listener = TcpListener::bind((web, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let srv = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    let url = format!("http://{www}:{port}/");
    let (c, body) = output(&mut resolving(
        &conf,
        &["curl", "-s", "--noproxy", "*", &url],
    ));
    srv.join().unwrap();
    assert_eq!(body, "ok");
    response(&probe, c, &www);
    let conn = probe
        .wait_for(WAIT, |v| {
            is(v, "net.connect", c) && v["net"]["dst"]["port"] == port
        })
        .expect("curl's net.connect");
    assert_eq!(
        conn["net"]["dst"],
        json!({"ip": web.to_string(), "port": port, "domain": www})
    );
    // The DNS server's own socket (local port 53) is no client of port 53: what it receives
    // is not a response.
    let me = std::process::id();
    let st = probe.stop();
    assert!(
        !st.lines
            .iter()
            .any(|v| is(v, "net.dns", me) && v["net"]["src"]["port"] == 53),
        "the server's receives"
    );
}

#[test]
fn malformed_responses_are_counted_not_fatal() {
    let t = tag();
    let (lp, cut, oob, good) = (
        format!("loop.{t}.test"),
        format!("cut.{t}.test"),
        format!("oob.{t}.test"),
        format!("good.{t}.test"),
    );
    let names = HashMap::from([
        (lp.clone(), Answer::Loop),
        (cut.clone(), Answer::Cut),
        (oob.clone(), Answer::OutOfBounds),
        (
            good.clone(),
            Answer::CnameA(format!("a.{t}.test"), unique_loopback(58)),
        ),
    ]);
    let dns = Responder::start(names);
    let probe = Probe::start(&["--events", "net.dns"]);
    // A client of our own: a connected UDP socket, query, read the response.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect((dns.ip, 53)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1500];
    for (i, name) in [&lp, &cut, &oob, &good].into_iter().enumerate() {
        let mut q = simple_dns::Packet::new_query(100 + i as u16);
        q.questions.push(simple_dns::Question::new(
            simple_dns::Name::new_unchecked(name),
            simple_dns::TYPE::A.into(),
            simple_dns::CLASS::IN.into(),
            false,
        ));
        sock.send(&q.build_bytes_vec().unwrap()).unwrap();
        let n = sock.recv(&mut buf).unwrap();
        assert!(n >= 12);
    }
    let me = std::process::id();
    response(&probe, me, &good);
    std::thread::sleep(Duration::from_millis(1200));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    assert!(!st.stderr.contains("panicked"), "{}", st.stderr);
    let stop = st.lines.last().unwrap();
    let counted = stop["probe"]["losses"]["dns"].as_u64().unwrap();
    assert!(counted >= 3, "{stop}");
    let reported: u64 = st
        .lines
        .iter()
        .filter(|v| v["kind"] == "probe.loss" && v["loss"]["source"] == "dns")
        .map(|v| v["loss"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        reported, counted,
        "every malformed response shows up in probe.loss"
    );
    for name in [&lp, &cut, &oob] {
        assert!(
            !st.lines.iter().any(|v| is(v, "net.dns", me)
                && v["dns"]["query"] == name.as_str()
                && v["dns"].get("answers").is_some()),
            "{name}: no response event"
        );
    }
}

/// A response longer than the 2048 bytes tprobe captures (300 answers, 4.8 KB): the answers
/// that fit whole are reported and the event says the rest was cut; it is not malformed.
#[test]
fn a_response_longer_than_the_capture_keeps_the_answers_that_fit() {
    let t = tag();
    let name = format!("many.{t}.test");
    let addr = unique_loopback(58);
    let dns = Responder::start(HashMap::from([(name.clone(), Answer::Many(300, addr))]));
    let probe = Probe::start(&["--events", "net.dns"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect((dns.ip, 53)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut q = simple_dns::Packet::new_query(77);
    q.questions.push(simple_dns::Question::new(
        simple_dns::Name::new_unchecked(&name),
        simple_dns::TYPE::A.into(),
        simple_dns::CLASS::IN.into(),
        false,
    ));
    sock.send(&q.build_bytes_vec().unwrap()).unwrap();
    let mut buf = vec![0u8; 16384];
    let n = sock.recv(&mut buf).unwrap();
    assert!(n > 4000, "the server sent {n} bytes");
    let ev = response(&probe, std::process::id(), &name);
    assert_eq!(ev["dns"]["answers_truncated"], true, "{ev}");
    let answers = ev["dns"]["answers"].as_array().unwrap();
    // 16 bytes a compressed record: about 125 fit in 2048.
    assert!((100..300).contains(&answers.len()), "{}", answers.len());
    for a in answers {
        assert_eq!(a["data"], addr.to_string(), "{a}");
        assert_eq!(a["name"], name.as_str());
    }
    assert_eq!(ev["dns"]["rcode"], "NOERROR");
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    // ECS keeps the answers and the flag (under tprobe.*: ECS has no field for it).
    let probe = Probe::start_ready(&["--events", "net.dns", "--format", "ecs"], |v| {
        v["event"]["action"] == "probe.start"
    });
    sock.send(&q.build_bytes_vec().unwrap()).unwrap();
    sock.recv(&mut buf).unwrap();
    let ecs = probe
        .wait_for(WAIT, |v| {
            v["dns"]["question"]["name"] == name.as_str() && v["dns"]["type"] == "answer"
        })
        .expect("the response in ECS");
    assert_eq!(ecs["tprobe"]["dns"]["answers_truncated"], true, "{ecs}");
    assert_eq!(
        ecs["dns"]["answers"].as_array().map(Vec::len),
        Some(answers.len()),
        "{ecs}"
    );
    assert!(probe.stop().status.success());
}
