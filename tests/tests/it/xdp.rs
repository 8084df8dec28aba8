//! flow.* from the real XDP program on a veth pair into a network namespace the test creates.
//! Traffic goes from the namespace end to the host end, where tprobe watches received packets.
use std::{
    io::Read as _,
    net::{TcpListener, UdpSocket},
    os::fd::AsRawFd as _,
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;
use tprobe_tests::{tprobe_bin, Probe, WAIT};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A veth pair: `host` in our namespace, `peer` in namespace `ns`. Removed on drop, even when
/// the test fails.
struct Veth {
    ns: String,
    host: String,
    peer: String,
    host_ip: String,
    ns_ip: String,
}

impl Veth {
    fn new() -> Veth {
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{}", pid % 100_000, n);
        // Unique per process and test: 10.(200+pid%50).(pid/50%250).(4n)/30.
        let net = format!("10.{}.{}", 200 + pid % 50, (pid / 50) % 250);
        let v = Veth {
            ns: format!("tprobe-xdp-{tag}"),
            host: format!("tpx{tag}h"),
            peer: format!("tpx{tag}n"),
            host_ip: format!("{net}.{}", 4 * n + 1),
            ns_ip: format!("{net}.{}", 4 * n + 2),
        };
        ip(&["netns", "add", &v.ns]);
        ip(&[
            "link", "add", &v.host, "type", "veth", "peer", "name", &v.peer,
        ]);
        ip(&["link", "set", &v.peer, "netns", &v.ns]);
        ip(&["addr", "add", &format!("{}/30", v.host_ip), "dev", &v.host]);
        ip(&["link", "set", &v.host, "up"]);
        v.in_ns(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", v.ns_ip),
            "dev",
            &v.peer,
        ]);
        v.in_ns(&["ip", "link", "set", &v.peer, "up"]);
        v.in_ns(&["ip", "link", "set", "lo", "up"]);
        v
    }

    fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).args(argv);
        c
    }

    fn in_ns(&self, argv: &[&str]) -> String {
        let out = self.cmd(argv).output().expect("ip netns exec");
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether either end shows an XDP program.
    fn xdp_attached(&self) -> (bool, bool) {
        let host = ip(&["-d", "link", "show", "dev", &self.host]);
        let peer = self.in_ns(&["ip", "-d", "link", "show", "dev", &self.peer]);
        (host.contains("prog/xdp"), peer.contains("prog/xdp"))
    }

    /// Runs `f` on a thread that has entered the namespace (sockets made there live there).
    fn on_ns_thread<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let f_ns = std::fs::File::open(&path).expect("open netns");
            let r = unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    }

    fn probe(&self, extra: &[&str]) -> Probe {
        let mut args = vec![
            "--events",
            "flow",
            "--xdp-iface",
            &self.host,
            "--flow-idle-timeout",
            "2s",
        ];
        args.extend_from_slice(extra);
        Probe::start(&args)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; the namespace goes with its name.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
    }
}

fn flow_between(v: &Value, transport: &str, src: &str, dst: &str) -> bool {
    v["kind"] == "flow.end"
        && v["flow"]["transport"] == transport
        && v["flow"]["src"]["ip"] == src
        && v["flow"]["dst"]["ip"] == dst
}

#[test]
fn flows_count_icmp_udp_and_tcp_exactly_and_tcp_has_its_process() {
    exact_counts("auto");
}

/// Generic XDP (in the network stack rather than the driver) counts the same.
#[test]
fn flows_count_exactly_in_generic_mode() {
    exact_counts("skb");
}

fn exact_counts(mode: &str) {
    let veth = Veth::new();
    let probe = veth.probe(&["--xdp-mode", mode]);

    // ICMP: 5 echo requests of 100 payload bytes: 20 (IP) + 8 (ICMP) + 100 each.
    veth.in_ns(&[
        "ping",
        "-q",
        "-c",
        "5",
        "-s",
        "100",
        "-i",
        "0.2",
        "-W",
        "2",
        &veth.host_ip,
    ]);

    // UDP: 7 datagrams of 300 bytes from a socket in the namespace.
    let sink = UdpSocket::bind((veth.host_ip.as_str(), 0)).unwrap();
    let udp_dst = sink.local_addr().unwrap();
    let ns_ip = veth.ns_ip.clone();
    let udp_src = veth.on_ns_thread(move || {
        let s = UdpSocket::bind((ns_ip.as_str(), 0)).unwrap();
        for _ in 0..7 {
            s.send_to(&[0x5a; 300], udp_dst).unwrap();
        }
        s.local_addr().unwrap()
    });

    // TCP: a shell in the namespace sends 100000 bytes with builtins only (so the socket
    // belongs to that one process), then closes.
    const N: usize = 100_000;
    let listener = TcpListener::bind((veth.host_ip.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "exec 3<>/dev/tcp/{}/{port}; printf '%*s' {N} '' >&3; read -t 2 -u 3 x; exec 3>&-",
        veth.host_ip
    );
    let mut sender = veth
        .cmd(&["bash", "-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let sender_pid = sender.id();
    let (mut conn, peer) = listener.accept().unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), N);
    assert!(sender.wait().unwrap().success());

    let icmp = probe
        .wait_for(WAIT, |v| {
            flow_between(v, "icmp", &veth.ns_ip, &veth.host_ip)
        })
        .expect("ICMP flow.end");
    let f = &icmp["flow"];
    assert_eq!(f["packets"], 5, "{icmp}");
    assert_eq!(f["bytes"], 5 * 128, "{icmp}");
    assert_eq!(f["payload_bytes"], 5 * 100, "{icmp}");
    assert_eq!(f["icmp"]["type"], 8);
    assert_eq!(f["iface"], veth.host.as_str());
    assert_eq!(f["direction"], "ingress");
    assert_eq!(f["reason"], "idle_timeout");
    assert!(icmp.get("process").is_none(), "ICMP has no socket: {icmp}");

    let udp = probe
        .wait_for(WAIT, |v| {
            flow_between(v, "udp", &veth.ns_ip, &veth.host_ip)
                && v["flow"]["src"]["port"] == udp_src.port()
        })
        .expect("UDP flow.end");
    let f = &udp["flow"];
    assert_eq!(f["packets"], 7, "{udp}");
    assert_eq!(f["bytes"], 7 * (20 + 8 + 300), "{udp}");
    assert_eq!(f["payload_bytes"], 7 * 300, "{udp}");
    assert_eq!(f["dst"]["port"], udp_dst.port());

    // The data direction ends at the sender's FIN, and is joined to the sender.
    let tcp = probe
        .wait_for(WAIT, |v| {
            flow_between(v, "tcp", &veth.ns_ip, &veth.host_ip)
                && v["flow"]["src"]["port"] == peer.port()
                && v["flow"]["payload_bytes"].as_u64() > Some(0)
        })
        .expect("TCP flow.end");
    let f = &tcp["flow"];
    assert_eq!(f["payload_bytes"], N as u64, "{tcp}");
    assert_eq!(f["dst"]["port"], port);
    assert_eq!(f["reason"], "fin", "{tcp}");
    let flags: Vec<&str> = f["tcp_flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    for want in ["SYN", "ACK", "FIN", "PSH"] {
        assert!(flags.contains(&want), "{want} in {flags:?}");
    }
    // IP bytes: payload plus at least 40 header bytes per packet.
    let packets = f["packets"].as_u64().unwrap();
    assert!(f["bytes"].as_u64().unwrap() >= N as u64 + 40 * packets);
    assert_eq!(tcp["process"]["pid"], sender_pid, "{tcp}");
    assert_eq!(tcp["process"]["comm"], "bash");
    assert_eq!(f["process_side"], "src");

    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let stop = st.lines.last().unwrap();
    assert_eq!(stop["kind"], "probe.stop");
    let hooks = st.lines[0]["probe"]["hooks"].to_string();
    assert!(hooks.contains(&format!("(mode {mode})")), "{hooks}");
    let x = &stop["probe"]["xdp"];
    assert!(x["flows"]["created"].as_u64().unwrap() >= 3, "{x}");
    assert_eq!(x["flows"]["evicted"], 0);
    assert_eq!(veth.xdp_attached(), (false, false));
}

/// Builds an Ethernet frame to the host end of `veth` with `ethertype` and `payload`.
fn frame(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6]; // broadcast: XDP sees it whatever the MAC
    f.extend([0x02, 0, 0, 0, 0, 0x01]);
    f.extend(ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4_header(ihl: u8, total: u16, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut h = vec![0x40 | ihl, 0];
    h.extend(total.to_be_bytes());
    h.extend([0, 0, 0x40, 0, 64, 17, 0, 0]);
    h.extend(src);
    h.extend(dst);
    h
}

fn addr(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

#[test]
fn malformed_frames_are_counted_by_reason_and_touch_no_flow() {
    let veth = Veth::new();
    let probe = veth.probe(&[]);
    let bogus = "10.253.0.99";
    let (src, dst) = (addr(bogus), addr(&veth.host_ip));
    // Truncated IPv4: only 10 bytes of the 20-byte header.
    let truncated = frame(0x0800, &ipv4_header(5, 28, src, dst)[..10]);
    // Bad IHL: 3 words, below the minimum of 5.
    let mut bad_ihl_ip = ipv4_header(3, 28, src, dst);
    bad_ihl_ip.extend([0; 8]);
    let bad_ihl = frame(0x0800, &bad_ihl_ip);
    // IPv6 with 7 destination-options headers (the parser follows 6), then UDP.
    let mut v6 = vec![0x60, 0, 0, 0];
    let ext_len = 7 * 8 + 8;
    v6.extend((ext_len as u16).to_be_bytes());
    v6.extend([60, 64]);
    v6.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99]);
    v6.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
    for i in 0..7 {
        let next = if i == 6 { 17 } else { 60 };
        // next header, length 0 (8 bytes), PadN option filling the rest.
        v6.extend([next, 0, 1, 4, 0, 0, 0, 0]);
    }
    v6.extend([0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0]);
    let deep = frame(0x86dd, &v6);

    // A real flow alongside: 3 pings.
    veth.in_ns(&[
        "ping",
        "-q",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        &veth.host_ip,
    ]);
    send_frames(&veth, vec![(truncated, 3), (bad_ihl, 4), (deep, 5)]);

    let icmp = probe
        .wait_for(WAIT, |v| {
            flow_between(v, "icmp", &veth.ns_ip, &veth.host_ip)
        })
        .expect("ICMP flow.end");
    assert_eq!(icmp["flow"]["packets"], 3, "{icmp}");
    assert_eq!(icmp["flow"]["bytes"], 3 * 84, "{icmp}");
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let p = &st.lines.last().unwrap()["probe"]["xdp"]["packets"];
    assert_eq!(p["truncated_ipv4"], 3, "{p}");
    assert_eq!(p["bad_ihl"], 4, "{p}");
    assert_eq!(p["ipv6_ext_too_deep"], 5, "{p}");
    // None of them made a flow.
    let touched: Vec<&Value> = st
        .lines
        .iter()
        .filter(|v| {
            v["kind"].as_str().is_some_and(|k| k.starts_with("flow."))
                && (v["flow"]["src"]["ip"] == bogus || v["flow"]["src"]["ip"] == "fd00::99")
        })
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
}

/// Sends each frame `n` times from an AF_PACKET socket on the namespace end.
fn send_frames(veth: &Veth, frames: Vec<(Vec<u8>, usize)>) {
    let peer = veth.peer.clone();
    veth.on_ns_thread(move || {
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            )
        };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let name = std::ffi::CString::new(peer).unwrap();
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(index, 0);
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = index as i32;
        sll.sll_halen = 6;
        for (f, n) in &frames {
            for _ in 0..*n {
                let r = unsafe {
                    libc::sendto(
                        fd,
                        f.as_ptr().cast(),
                        f.len(),
                        0,
                        (&sll as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                assert_eq!(r, f.len() as isize, "{}", std::io::Error::last_os_error());
            }
        }
        unsafe { libc::close(fd) };
    });
}
fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend(dport.to_be_bytes());
    u.extend(((8 + payload) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(std::iter::repeat_n(0x61, payload));
    u
}

fn ipv4_udp(src: [u8; 4], dst: [u8; 4], options: &[u8], l4: &[u8]) -> Vec<u8> {
    let ihl = (20 + options.len()) / 4;
    let mut ip = ipv4_header(ihl as u8, (20 + options.len() + l4.len()) as u16, src, dst);
    ip.extend_from_slice(options);
    ip.extend_from_slice(l4);
    ip
}

/// A VLAN tag: TCI then the ethertype that follows it.
fn vlan(vid: u16, next: u16) -> Vec<u8> {
    let mut t = vid.to_be_bytes().to_vec();
    t.extend(next.to_be_bytes());
    t
}

#[test]
fn vlan_tags_ipv4_options_ipv6_extensions_and_fragments_are_parsed() {
    let veth = Veth::new();
    let probe = veth.probe(&[]);
    let dst = addr(&veth.host_ip);
    // UDP inside 802.1ad + 802.1Q tags: 3 x (20 + 8 + 50) IP bytes.
    let mut qinq = vlan(100, 0x8100);
    qinq.extend(vlan(200, 0x0800));
    qinq.extend(ipv4_udp([10, 253, 1, 1], dst, &[], &udp(1111, 2222, 50)));
    let double = frame(0x88a8, &qinq);
    // IPv4 with 4 bytes of options (IHL 6): 2 x (24 + 8 + 20).
    let opts = frame(
        0x0800,
        &ipv4_udp([10, 253, 1, 2], dst, &[1, 1, 1, 1], &udp(1112, 2222, 20)),
    );
    // IPv6: hop-by-hop and destination options, then UDP: 2 x (40 + 16 + 8 + 10).
    let mut v6 = vec![0x60, 0, 0, 0];
    v6.extend(((16 + 8 + 10) as u16).to_be_bytes());
    v6.extend([0, 64]);
    v6.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12]);
    v6.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
    v6.extend([60, 0, 1, 4, 0, 0, 0, 0]);
    v6.extend([17, 0, 1, 4, 0, 0, 0, 0]);
    v6.extend(udp(1113, 2222, 10));
    let v6 = frame(0x86dd, &v6);
    // An IPv4 datagram in two fragments: the first carries the UDP header.
    let mut first = ipv4_udp([10, 253, 1, 3], dst, &[], &udp(1114, 2222, 16)[..24]);
    first[6] = 0x20; // MF
    let mut second = ipv4_header(5, 28, [10, 253, 1, 3], dst);
    second[6] = 0x00;
    second[7] = 3; // offset 24 bytes
    second.extend([0x61; 8]);
    // Three VLAN tags: beyond the parser's two.
    let mut three = vlan(1, 0x8100);
    three.extend(vlan(2, 0x8100));
    three.extend(vlan(3, 0x0800));
    three.extend(ipv4_udp([10, 253, 1, 4], dst, &[], &udp(1115, 2222, 4)));
    send_frames(
        &veth,
        vec![
            (double, 3),
            (opts, 2),
            (v6, 2),
            (frame(0x0800, &first), 1),
            (frame(0x0800, &second), 1),
            (frame(0x8100, &three), 1),
        ],
    );
    let want = |src: &str, sport: Option<u16>, packets: u64, bytes: u64, payload: u64| {
        let f = probe
            .wait_for(WAIT, |v| {
                v["kind"] == "flow.end"
                    && v["flow"]["src"]["ip"] == src
                    && v["flow"]["src"]["port"].as_u64() == sport.map(u64::from)
                    && v["flow"]["transport"] == "udp"
            })
            .unwrap_or_else(|| panic!("no flow from {src}:{sport:?}"));
        let f = &f["flow"];
        assert_eq!(
            (&f["packets"], &f["bytes"], &f["payload_bytes"]),
            (&packets.into(), &bytes.into(), &payload.into()),
            "{f}"
        );
        f.clone()
    };
    want("10.253.1.1", Some(1111), 3, 3 * 78, 3 * 50);
    want("10.253.1.2", Some(1112), 2, 2 * 52, 2 * 20);
    want("fd00::12", Some(1113), 2, 2 * 74, 2 * 10);
    // The first fragment has ports; a later one cannot: it is its own port-0 record.
    let f = want("10.253.1.3", Some(1114), 1, 44, 16);
    assert_eq!(f["fragments"], true);
    want("10.253.1.3", Some(0), 1, 28, 8);
    let st = probe.stop();
    let p = &st.lines.last().unwrap()["probe"]["xdp"]["packets"];
    assert_eq!(p["ipv4_fragments"], 2, "{p}");
    assert_eq!(p["vlan_too_deep"], 1, "{p}");
    assert!(
        !st.lines
            .iter()
            .any(|v| v["flow"]["src"]["ip"] == "10.253.1.4"),
        "a frame the parser refused made a flow"
    );
}

fn wait_detached(veth: &Veth) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while veth.xdp_attached() != (false, false) {
        assert!(
            Instant::now() < deadline,
            "an XDP program stayed attached after the probe ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_xdp_program_stays_after_sigterm_sigint_or_sigkill() {
    let veth = Veth::new();
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGKILL] {
        let probe = veth.probe(&[]);
        assert_eq!(
            veth.xdp_attached(),
            (true, false),
            "attached on the host end"
        );
        let hooks = probe.lines()[0]["probe"]["hooks"].clone();
        assert!(
            hooks.as_array().unwrap().iter().any(|h| h["hook"]
                .as_str()
                .unwrap()
                .starts_with("xdp/")
                && h["attached"] == true),
            "{hooks}"
        );
        if sig == libc::SIGTERM {
            // A second probe on the same interface is refused, even with --xdp-replace.
            let out = Command::new(tprobe_bin())
                .args([
                    "run",
                    "--events",
                    "flow",
                    "--xdp-replace",
                    "--xdp-iface",
                    &veth.host,
                ])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(err.contains("held by another running tprobe"), "{err}");
            assert_eq!(veth.xdp_attached(), (true, false));
        }
        unsafe { libc::kill(probe.pid() as i32, sig) };
        let st = probe.finish(Duration::from_secs(20));
        if sig != libc::SIGKILL {
            assert!(st.status.success(), "{:?} {}", st.status, st.stderr);
            assert_eq!(st.lines.last().unwrap()["kind"], "probe.stop");
        }
        // The kernel releases an XDP link with its last file descriptor, even on SIGKILL.
        wait_detached(&veth);
    }
}

#[test]
fn bad_interface_or_mode_fails_with_a_clear_message() {
    let out = Command::new(tprobe_bin())
        .args(["run", "--events", "flow", "--xdp-iface", "tprobe-nope0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tprobe-nope0: no such network interface"),
        "{err}"
    );

    // The loopback driver has no native XDP.
    let out = Command::new(tprobe_bin())
        .args([
            "run",
            "--events",
            "flow",
            "--xdp-iface",
            "lo",
            "--xdp-mode",
            "native",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("native XDP is not supported") && err.contains("--xdp-mode skb"),
        "{err}"
    );
    let out = Command::new("ip")
        .args(["-d", "link", "show", "lo"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("prog/xdp"));
}

/// A bpffs of the test's own, mounted on a temporary directory: a fresh machine has none at
/// /sys/fs/bpf, and the test must not depend on one. Unmounted (with its pins) on drop.
struct PrivateBpffs {
    dir: std::path::PathBuf,
}

impl PrivateBpffs {
    fn mount(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tprobe-bpffs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t bpf on {}", dir.display());
        PrivateBpffs { dir }
    }
}

impl Drop for PrivateBpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Loads a two-instruction XDP program (`return XDP_PASS`) named `tprobe_xdp` and pins it in
/// `fs`, as a stand-in for what a crashed tprobe could leave attached. Returns the pin path.
fn pinned_pass_program(fs: &PrivateBpffs, tag: &str) -> String {
    use std::os::fd::AsRawFd as _;
    let prog = probe_user::kernel::check::load_xdp_pass("tprobe_xdp")
        .unwrap_or_else(|e| panic!("BPF_PROG_LOAD: {e}"));
    let fd = prog.as_raw_fd();
    let path = fs
        .dir
        .join(format!("tprobe-xdp-test-{tag}"))
        .display()
        .to_string();
    let cpath = std::ffi::CString::new(path.clone()).unwrap();
    let mut attr = [0u8; 128];
    attr[0..8].copy_from_slice(&(cpath.as_ptr() as u64).to_ne_bytes());
    attr[8..12].copy_from_slice(&(fd as u32).to_ne_bytes());
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, 6 /* BPF_OBJ_PIN */, attr.as_ptr(), 128)
    };
    assert_eq!(r, 0, "BPF_OBJ_PIN: {}", std::io::Error::last_os_error());
    path
}

#[test]
fn a_left_behind_program_is_reported_and_replaced_only_when_asked() {
    let veth = Veth::new();
    let bpffs = PrivateBpffs::mount(&veth.host);
    let pin = pinned_pass_program(&bpffs, &veth.host);
    // Attached through netlink and no longer held by any process: what a crash leaves.
    let attached = Command::new("ip")
        .args([
            "link",
            "set",
            "dev",
            &veth.host,
            "xdpgeneric",
            "pinned",
            &pin,
        ])
        .status();
    let _ = std::fs::remove_file(&pin);
    assert!(attached.unwrap().success());
    assert_eq!(veth.xdp_attached(), (true, false));

    let out = Command::new(tprobe_bin())
        .args(["run", "--events", "flow", "--xdp-iface", &veth.host])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("already attached")
            && err.contains("name tprobe_xdp")
            && err.contains("earlier tprobe run")
            && err.contains("--xdp-replace"),
        "{err}"
    );
    assert_eq!(
        veth.xdp_attached(),
        (true, false),
        "left alone when not asked"
    );

    let probe = veth.probe(&["--xdp-replace"]);
    veth.in_ns(&[
        "ping",
        "-q",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "2",
        &veth.host_ip,
    ]);
    let icmp = probe
        .wait_for(WAIT, |v| {
            flow_between(v, "icmp", &veth.ns_ip, &veth.host_ip)
        })
        .expect("flows from the replacing probe");
    assert_eq!(icmp["flow"]["packets"], 2);
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    assert!(st.stderr.contains("replacing"), "{}", st.stderr);
    wait_detached(&veth);
}

/// From a socket in the namespace, sends `n` datagrams of `size` bytes to `dst`, one every
/// `gap`, from one socket; returns its source port.
fn udp_from_ns(
    veth: &Veth,
    dst: std::net::SocketAddr,
    n: usize,
    size: usize,
    gap: Duration,
) -> u16 {
    let ns_ip = veth.ns_ip.clone();
    veth.on_ns_thread(move || {
        let s = UdpSocket::bind((ns_ip.as_str(), 0)).unwrap();
        for _ in 0..n {
            s.send_to(&vec![0x5a; size], dst).unwrap();
            std::thread::sleep(gap);
        }
        s.local_addr().unwrap().port()
    })
}

#[test]
fn a_long_flow_gets_updates_at_the_active_timeout_and_deltas_add_up() {
    let veth = Veth::new();
    let probe = veth.probe(&["--flow-active-timeout", "1s"]);
    let sink = UdpSocket::bind((veth.host_ip.as_str(), 0)).unwrap();
    let dst = sink.local_addr().unwrap();
    let sport = udp_from_ns(&veth, dst, 12, 100, Duration::from_millis(250));
    let mine = |v: &Value| {
        v["kind"].as_str().is_some_and(|k| k.starts_with("flow."))
            && v["flow"]["src"]["port"] == sport
            && v["flow"]["src"]["ip"] == veth.ns_ip.as_str()
    };
    let end = probe
        .wait_for(WAIT, |v| mine(v) && v["kind"] == "flow.end")
        .expect("flow.end");
    let all: Vec<Value> = probe.lines().into_iter().filter(|v| mine(v)).collect();
    let updates: Vec<&Value> = all.iter().filter(|v| v["kind"] == "flow.update").collect();
    assert!(
        !updates.is_empty(),
        "no flow.update in 3 s with a 1 s active timeout: {all:?}"
    );
    for u in &updates {
        assert_eq!(u["flow"]["reason"], "active_timeout");
    }
    assert_eq!(end["flow"]["packets"], 12);
    assert_eq!(end["flow"]["bytes"], 12 * 128);
    let deltas: u64 = all
        .iter()
        .map(|v| v["flow"]["packets_delta"].as_u64().unwrap())
        .sum();
    assert_eq!(deltas, 12, "{all:?}");
    drop(probe);
}

#[test]
fn flows_evicted_from_a_full_table_are_counted_and_reported() {
    let veth = Veth::new();
    let probe = veth.probe(&["--flow-table-size", "8"]);
    let sink = UdpSocket::bind((veth.host_ip.as_str(), 0)).unwrap();
    let dst = sink.local_addr().unwrap();
    // 40 flows (one source port each) into a table of 8.
    for _ in 0..40 {
        udp_from_ns(&veth, dst, 1, 10, Duration::ZERO);
    }
    let loss = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "probe.loss" && v["loss"]["source"] == "flow_table"
        })
        .expect("probe.loss for evicted flows");
    assert!(loss["loss"]["count"].as_u64().unwrap() > 0);
    let st = probe.stop();
    let f = &st.lines.last().unwrap()["probe"]["xdp"]["flows"];
    let n = |k: &str| f[k].as_u64().unwrap();
    assert!(n("evicted") > 0, "{f}");
    // Every flow created was reported or counted as evicted.
    assert_eq!(
        n("created"),
        n("ended_by_kernel") + n("ended_by_scan") + n("evicted"),
        "{f}"
    );
}

/// A flow to a server whose address a process resolved carries the name on that end:
/// curl on the host resolves `www` (a DNS server the test runs answers with the namespace's
/// address) and fetches from a server in the namespace; XDP sees the server's packets.
#[test]
fn flows_carry_the_domain_the_address_was_resolved_from() {
    use std::collections::HashMap;
    use tprobe_tests::dns::{resolving, Answer, Responder};

    let veth = Veth::new();
    let name = format!("www.t17-flow-{}.test", std::process::id());
    let ns_addr: std::net::Ipv4Addr = veth.ns_ip.parse().unwrap();
    let dns = Responder::start(HashMap::from([(
        name.clone(),
        Answer::CnameA(format!("edge.{name}"), ns_addr),
    )]));
    let probe = Probe::start(&[
        "--events",
        "flow,net.dns",
        "--xdp-iface",
        &veth.host,
        "--flow-idle-timeout",
        "2s",
    ]);
    let ns_ip = veth.ns_ip.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn({
        let path = format!("/run/netns/{}", veth.ns);
        move || {
            let f_ns = std::fs::File::open(&path).expect("open netns");
            let r = unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            let l = TcpListener::bind((ns_ip.as_str(), 0)).unwrap();
            tx.send(l.local_addr().unwrap().port()).unwrap();
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = "x".repeat(5000);
            let _ = std::io::Write::write_all(
                &mut s,
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    let port = rx.recv().unwrap();
    let url = format!("http://{name}:{port}/");
    let out = resolving(
        &dns.resolv_conf(),
        &["curl", "-s", "--noproxy", "*", "-o", "/dev/null", &url],
    )
    .status()
    .unwrap();
    assert!(out.success());
    server.join().unwrap();
    let flow = probe
        .wait_for(WAIT, |v| {
            flow_between(v, "tcp", &veth.ns_ip, &veth.host_ip) && v["flow"]["src"]["port"] == port
        })
        .expect("the server's flow.end");
    assert_eq!(flow["flow"]["src"]["domain"], name.as_str(), "{flow}");
    assert!(flow["flow"]["dst"].get("domain").is_none(), "{flow}");
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
}
