//! net.* events from the real syscall and sock tracepoints. Every test uses its own ports (picked
//! by the kernel), its own loopback address in 127.53.0.0/16 for port 53, and its own socket
//! paths, and filters events by them: other tests and other probes run at the same time.
use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::{
        fd::AsRawFd as _,
        linux::net::SocketAddrExt as _,
        unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream},
    },
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use tprobe_tests::{is, Probe, WAIT};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A loopback address of this test run, so a listener on port 53 collides with nobody.
fn unique_loopback() -> Ipv4Addr {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    Ipv4Addr::new(
        127,
        53,
        (pid % 251) as u8 + 1,
        ((nanos / 7 + n * 31) % 250) as u8 + 2,
    )
}

fn unique_name(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "tprobe-{tag}-{}-{}-{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A DNS query message for `name` (recursion desired, one question of class IN).
fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(id.to_be_bytes());
    m.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend(label.as_bytes());
    }
    m.push(0);
    m.extend(qtype.to_be_bytes());
    m.extend(1u16.to_be_bytes());
    m
}

const QTYPE_A: u16 = 1;
const QTYPE_AAAA: u16 = 28;

fn port_of(v: &Value, end: &str) -> Option<u64> {
    v["net"][end]["port"].as_u64()
}

fn want(probe: &Probe, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    probe.wait_for(WAIT, pred).unwrap_or_else(|| {
        let net: Vec<Value> = probe
            .lines()
            .into_iter()
            .filter(|v| v["kind"].as_str().is_some_and(|k| k.starts_with("net.")))
            .filter(|v| v["process"]["pid"] == std::process::id())
            .collect();
        panic!("no {what}; this process's net events: {net:#?}")
    })
}

/// Client in a child process (bash's /dev/tcp: connect, write, close), server in this one.
fn tcp_round_trip(probe: &Probe, listen_ip: IpAddr, connect_ip: IpAddr) {
    let listener = TcpListener::bind((listen_ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port() as u64;
    let server = std::process::id();
    let accepter = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        drop(s);
        (peer, buf)
    });
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 3<>/dev/tcp/{connect_ip}/{port}; echo hi >&3; exec 3>&-"
        ))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let client = child.id();
    assert!(child.wait().unwrap().success());
    let (peer, got) = accepter.join().unwrap();
    assert_eq!(got, "hi\n");
    let cport = peer.port() as u64;
    let family = |ip: IpAddr| if ip.is_ipv4() { "ipv4" } else { "ipv6" };
    let ctx = format!("{listen_ip} <- {connect_ip}");

    let l = want(probe, "net.listen", |v| {
        is(v, "net.listen", server) && port_of(v, "src") == Some(port)
    });
    assert_eq!(l["net"]["transport"], "tcp", "{ctx}");
    assert_eq!(l["net"]["family"], family(listen_ip));
    assert_eq!(l["net"]["src"]["ip"], listen_ip.to_string());
    assert!(l["net"]["backlog"].as_u64().unwrap() > 0);
    assert_eq!(l["result"]["ok"], true);

    let c = want(probe, "net.connect", |v| {
        is(v, "net.connect", client) && port_of(v, "dst") == Some(port)
    });
    assert_eq!(c["net"]["dst"]["ip"], connect_ip.to_string(), "{ctx}");
    assert_eq!(c["net"]["family"], family(connect_ip));
    assert_eq!(c["net"]["direction"], "outbound");
    assert_eq!(port_of(&c, "src"), Some(cport));
    assert_eq!(c["result"]["ok"], true);
    assert!(c["result"].get("error").is_none());

    let a = want(probe, "net.accept", |v| {
        is(v, "net.accept", server) && port_of(v, "dst") == Some(port)
    });
    assert_eq!(port_of(&a, "src"), Some(cport), "{ctx}: {a}");
    assert_eq!(a["net"]["src"]["ip"], peer.ip().to_string());
    assert_eq!(a["net"]["direction"], "inbound");
    assert!(a["net"]["fd"].as_i64().unwrap() >= 0);
    assert_eq!(a["result"]["ok"], true);

    // Both ends close with their final 4-tuple.
    let cc = want(probe, "client net.close", |v| {
        is(v, "net.close", client) && port_of(v, "src") == Some(cport)
    });
    assert_eq!(port_of(&cc, "dst"), Some(port), "{ctx}: {cc}");
    let sc = want(probe, "server net.close", |v| {
        is(v, "net.close", server)
            && port_of(v, "src") == Some(port)
            && port_of(v, "dst") == Some(cport)
    });
    assert_eq!(sc["result"]["ok"], true);

    // Both ends of the connection reach ESTABLISHED, each attributed to its process.
    let est = |dir: &str, pid: u32| {
        want(probe, &format!("net.state {dir}"), |v| {
            is(v, "net.state", pid)
                && v["net"]["state"]["new"] == "ESTABLISHED"
                && v["net"]["direction"] == dir
                && port_of(v, "src") == Some(cport)
                && port_of(v, "dst") == Some(port)
        })
    };
    est("outbound", client);
    est("inbound", server);
}

#[test]
fn tcp_client_and_server_on_ipv4_ipv6_and_v4_mapped() {
    let probe = Probe::start(&["--events", "net"]);
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    tcp_round_trip(&probe, v4, v4);
    tcp_round_trip(&probe, v6, v6);
    // An IPv6 socket talking to an IPv4 listener: the client sees ::ffff:127.0.0.1.
    tcp_round_trip(&probe, v4, IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
}

#[test]
fn refused_and_nonblocking_connects_report_their_result() {
    let probe = Probe::start(&["--events", "net.connect"]);
    // A port that was free a moment ago and has no listener now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port() as u64;
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = child.id();
    assert!(!child.wait().unwrap().success());
    let c = want(&probe, "refused net.connect", |v| {
        is(v, "net.connect", client) && port_of(v, "dst") == Some(port)
    });
    assert_eq!(c["result"]["ok"], false);
    assert_eq!(c["result"]["errno"], libc::ECONNREFUSED);
    assert_eq!(c["result"]["error"], "ECONNREFUSED");

    // A non-blocking connect reports exactly what the syscall returned (EINPROGRESS, or
    // success when loopback finished the handshake within the call).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port();
    let (ret, errno) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = lport.to_be();
        sa.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        let r = libc::connect(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        libc::close(fd);
        (r, e)
    };
    let c = want(&probe, "non-blocking net.connect", |v| {
        is(v, "net.connect", std::process::id()) && port_of(v, "dst") == Some(lport as u64)
    });
    if ret == 0 {
        assert_eq!(c["result"]["ok"], true);
    } else {
        assert_eq!(errno, libc::EINPROGRESS);
        assert_eq!(c["result"]["ok"], false);
        assert_eq!(c["result"]["error"], "EINPROGRESS");
    }
}

/// sendmsg/sendmmsg with one iovec per message; `dst` is `None` on a connected socket.
fn send_mmsg(sock: &UdpSocket, msgs: &[Vec<u8>], dst: Option<SocketAddr>) -> i32 {
    let sin = dst.map(|d| {
        let SocketAddr::V4(d) = d else { panic!() };
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = d.port().to_be();
        sa.sin_addr.s_addr = u32::from(*d.ip()).to_be();
        sa
    });
    let mut iovs: Vec<libc::iovec> = msgs
        .iter()
        .map(|m| libc::iovec {
            iov_base: m.as_ptr() as *mut _,
            iov_len: m.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            if let Some(sa) = &sin {
                h.msg_hdr.msg_name = sa as *const _ as *mut _;
                h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            }
            h
        })
        .collect();
    unsafe {
        if hdrs.len() == 1 {
            libc::sendmsg(sock.as_raw_fd(), &hdrs[0].msg_hdr, 0) as i32
        } else {
            libc::sendmmsg(sock.as_raw_fd(), hdrs.as_mut_ptr(), hdrs.len() as u32, 0)
        }
    }
}

fn want_dns(probe: &Probe, name: &str, qtype: &str) -> Value {
    want(probe, &format!("net.dns {name} {qtype}"), |v| {
        v["kind"] == "net.dns" && v["dns"]["query"] == name && v["dns"]["qtype"] == qtype
    })
}

#[test]
fn dns_queries_over_udp_and_tcp_are_parsed() {
    let probe = Probe::start(&["--events", "net.dns,net.send"]);
    let ip = unique_loopback();
    let server = UdpSocket::bind((ip, 53)).unwrap();
    let dst = SocketAddr::from((ip, 53));
    let me = std::process::id();

    // sendto with a destination.
    let n1 = format!("{}.example.test", unique_name("a"));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(&dns_query(1, &n1, QTYPE_A), dst).unwrap();
    // glibc's resolver: a connected socket and sendmmsg with the A and AAAA queries.
    let n2 = format!("{}.example.test", unique_name("mm"));
    let conn = UdpSocket::bind("127.0.0.1:0").unwrap();
    conn.connect(dst).unwrap();
    let sent = send_mmsg(
        &conn,
        &[dns_query(2, &n2, QTYPE_A), dns_query(3, &n2, QTYPE_AAAA)],
        None,
    );
    assert_eq!(sent, 2);
    // sendmsg with a destination.
    let n3 = format!("{}.example.test", unique_name("msg"));
    assert!(send_mmsg(&client, &[dns_query(4, &n3, QTYPE_AAAA)], Some(dst)) > 0);

    let mut buf = [0u8; 512];
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..4 {
        server.recv_from(&mut buf).unwrap();
    }

    for (name, qtype, id) in [
        (&n1, "A", 1),
        (&n2, "A", 2),
        (&n2, "AAAA", 3),
        (&n3, "AAAA", 4),
    ] {
        let v = want_dns(&probe, name, qtype);
        assert_eq!(v["process"]["pid"], me);
        assert_eq!(v["dns"]["server"], ip.to_string());
        assert_eq!(v["dns"]["id"], id);
        assert_eq!(v["net"]["transport"], "udp");
        assert_eq!(v["net"]["dst"]["port"], 53);
        assert_eq!(v["net"]["direction"], "outbound");
    }

    // DNS over TCP: a 2-byte length, then the message, sent with send(2) (sendto).
    let tcp = TcpListener::bind((ip, 53)).unwrap();
    let n4 = format!("{}.example.test", unique_name("tcp"));
    let mut stream = TcpStream::connect((ip, 53)).unwrap();
    let q = dns_query(5, &n4, QTYPE_A);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend(&q);
    let r = unsafe {
        libc::send(
            stream.as_raw_fd(),
            framed.as_ptr() as *const _,
            framed.len(),
            0,
        )
    };
    assert_eq!(r, framed.len() as isize);
    stream.flush().unwrap();
    let (mut s, _) = tcp.accept().unwrap();
    let mut got = vec![0u8; framed.len()];
    s.read_exact(&mut got).unwrap();
    let v = want_dns(&probe, &n4, "A");
    assert_eq!(v["net"]["transport"], "tcp");
    assert_eq!(v["dns"]["server"], ip.to_string());

    // A UDP destination other than port 53 is a net.send, once per socket and peer.
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sport = sink.local_addr().unwrap().port() as u64;
    for _ in 0..3 {
        client
            .send_to(b"hello", sink.local_addr().unwrap())
            .unwrap();
    }
    // Alternating peers from one connected-then-unconnected socket: each peer once.
    let sink2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sport2 = sink2.local_addr().unwrap().port() as u64;
    let alt = UdpSocket::bind("127.0.0.1:0").unwrap();
    alt.connect(sink2.local_addr().unwrap()).unwrap();
    for _ in 0..3 {
        alt.send(b"c").unwrap();
        alt.send_to(b"u", sink.local_addr().unwrap()).unwrap();
    }
    let aport = alt.local_addr().unwrap().port() as u64;
    let cport = client.local_addr().unwrap().port() as u64;
    let v = want(&probe, "net.send", |v| {
        is(v, "net.send", me)
            && port_of(v, "dst") == Some(sport)
            && port_of(v, "src") == Some(cport)
    });
    assert_eq!(port_of(&v, "src"), Some(cport));
    assert_eq!(v["net"]["transport"], "udp");
    std::thread::sleep(Duration::from_millis(300));
    let st = probe.stop();
    let sends = |src: u64, dst: u64| {
        st.lines
            .iter()
            .filter(|v| {
                is(v, "net.send", me)
                    && port_of(v, "src") == Some(src)
                    && port_of(v, "dst") == Some(dst)
            })
            .count()
    };
    assert_eq!(
        sends(cport, sport),
        1,
        "net.send is reported once per socket and destination"
    );
    for dport in [sport, sport2] {
        assert_eq!(
            sends(aport, dport),
            1,
            "one net.send per peer of the alternating socket"
        );
    }
}

#[test]
fn malformed_dns_payloads_are_counted_and_skipped() {
    let probe = Probe::start(&["--events", "net.dns"]);
    let ip = unique_loopback();
    let _server = UdpSocket::bind((ip, 53)).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        b"not a dns message at all".to_vec(),
        vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1],
        vec![0xff; 2000],
    ];
    for b in &bad {
        client.send_to(b, (ip, 53)).unwrap();
    }
    // A good query after the bad ones: the probe is still there and parsing.
    let name = format!("{}.example.test", unique_name("after"));
    client
        .send_to(&dns_query(9, &name, QTYPE_A), (ip, 53))
        .unwrap();
    want_dns(&probe, &name, "A");
    std::thread::sleep(Duration::from_millis(1200));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    assert!(!st.stderr.contains("panicked"), "{}", st.stderr);
    let stop = st.lines.last().unwrap();
    assert_eq!(stop["kind"], "probe.stop");
    let counted = stop["probe"]["losses"]["dns"].as_u64().unwrap();
    assert!(counted >= bad.len() as u64, "{stop}");
    let reported: u64 = st
        .lines
        .iter()
        .filter(|v| v["kind"] == "probe.loss" && v["loss"]["source"] == "dns")
        .map(|v| v["loss"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        reported, counted,
        "every skipped payload shows up in probe.loss"
    );
}

#[test]
fn unix_socket_paths_and_abstract_names() {
    let probe = Probe::start(&["--events", "net"]);
    let me = std::process::id();
    let dir = std::env::temp_dir().join(unique_name("unix"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    let (_server_end, _) = listener.accept().unwrap();
    let p = path.to_str().unwrap();

    let c = want(&probe, "unix net.connect", |v| {
        is(v, "net.connect", me) && v["net"]["path"] == p
    });
    assert_eq!(c["net"]["transport"], "unix");
    assert_eq!(c["net"]["family"], "unix");
    assert_eq!(c["net"]["socket_type"], "stream");
    assert_eq!(c["result"]["ok"], true);
    want(&probe, "unix net.bind", |v| {
        is(v, "net.bind", me) && v["net"]["path"] == p
    });
    want(&probe, "unix net.listen", |v| {
        is(v, "net.listen", me) && v["net"]["path"] == p
    });
    want(&probe, "unix net.accept", |v| {
        is(v, "net.accept", me) && v["net"]["path"] == p
    });
    drop(client);

    let name = unique_name("abstract");
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _al = UnixListener::bind_addr(&addr).unwrap();
    let _ac = UnixStream::connect_addr(&addr).unwrap();
    let shown = format!("@{name}");
    let c = want(&probe, "abstract net.connect", |v| {
        is(v, "net.connect", me) && v["net"]["path"] == shown.as_str()
    });
    assert_eq!(c["net"]["path_abstract"], true);
    std::fs::remove_dir_all(&dir).unwrap();
}
