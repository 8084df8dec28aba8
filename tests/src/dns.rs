//! A small DNS server for the tests, on a loopback address of its own, port 53, UDP and TCP:
//! the names it knows get the answers the test gave (a CNAME chain to an address), the
//! `nx.` names NXDOMAIN, and a few names get malformed responses on purpose. Clients resolve
//! through it in a mount namespace whose /etc/resolv.conf names it ([`resolving`]).
use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use simple_dns::{
    rdata, rdata::RData, Name, Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE,
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A loopback address of its own for this test process and call (127.57.0.0/16, apart from
/// the ranges other tests use).
pub fn unique_loopback(second: u8) -> Ipv4Addr {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Ipv4Addr::new(
        127,
        second,
        (pid % 251) as u8 + 1,
        ((pid / 251 + n * 37) % 250) as u8 + 2,
    )
}

/// What the server answers for one name.
#[derive(Clone, Debug)]
pub enum Answer {
    /// `name CNAME alias`, `alias A addr` (TTL 300 and 120).
    CnameA(String, Ipv4Addr),
    /// A compression pointer that points at itself.
    Loop,
    /// More answers announced than sent.
    Cut,
    /// A name pointer past the end of the message.
    OutOfBounds,
    /// This many `A` records of this address: a response longer than tprobe captures.
    Many(u16, Ipv4Addr),
}

pub struct Responder {
    pub ip: Ipv4Addr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    dir: PathBuf,
}

fn reply(query: &[u8], names: &HashMap<String, Answer>) -> Option<Vec<u8>> {
    let q = Packet::parse(query).ok()?;
    let question = q.questions.first()?;
    let name = question.qname.to_string();
    let mut p = Packet::new_reply(q.id());
    p.set_flags(PacketFlag::RECURSION_AVAILABLE | PacketFlag::RECURSION_DESIRED);
    p.questions.push(question.clone());
    let head = |p: &Packet<'_>| p.build_bytes_vec().ok();
    match names.get(&name) {
        Some(Answer::CnameA(alias, addr)) => {
            p.answers.push(ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                300,
                RData::CNAME(rdata::CNAME(Name::new_unchecked(alias))),
            ));
            if question.qtype == QTYPE::TYPE(TYPE::A) {
                p.answers.push(ResourceRecord::new(
                    Name::new_unchecked(alias),
                    CLASS::IN,
                    120,
                    RData::A(rdata::A {
                        address: u32::from(*addr),
                    }),
                ));
            }
            p.build_bytes_vec_compressed().ok()
        }
        Some(Answer::Many(n, addr)) => {
            for _ in 0..*n {
                p.answers.push(ResourceRecord::new(
                    question.qname.clone(),
                    CLASS::IN,
                    60,
                    RData::A(rdata::A {
                        address: u32::from(*addr),
                    }),
                ));
            }
            p.build_bytes_vec_compressed().ok()
        }
        Some(Answer::Loop) => {
            let mut b = head(&p)?;
            b[7] = 1; // one answer, whose name points at itself
            let at = b.len() as u16;
            b.extend((0xc000 | at).to_be_bytes());
            b.extend([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
            Some(b)
        }
        Some(Answer::Cut) => {
            let mut b = head(&p)?;
            b[7] = 3; // three answers announced, none there
            Some(b)
        }
        Some(Answer::OutOfBounds) => {
            let mut b = head(&p)?;
            b[7] = 1;
            b.extend([0xc0, 0xf0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
            Some(b)
        }
        None => {
            *p.rcode_mut() = RCODE::NameError;
            head(&p)
        }
    }
}

impl Responder {
    /// Serves `names` on a new loopback address, port 53, UDP and TCP.
    pub fn start(names: HashMap<String, Answer>) -> Responder {
        let ip = unique_loopback(57);
        let names = Arc::new(names);
        let stop = Arc::new(AtomicBool::new(false));
        let udp = UdpSocket::bind((ip, 53)).expect("bind port 53");
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let tcp = TcpListener::bind((ip, 53)).expect("bind port 53");
        tcp.set_nonblocking(true).unwrap();
        let (s1, n1) = (stop.clone(), names.clone());
        let t1 = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s1.load(Ordering::Relaxed) {
                if let Ok((n, peer)) = udp.recv_from(&mut buf) {
                    if let Some(r) = reply(&buf[..n], &n1) {
                        let _ = udp.send_to(&r, peer);
                    }
                }
            }
        });
        let (s2, n2) = (stop.clone(), names);
        let t2 = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = tcp.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut len = [0u8; 2];
                while s.read_exact(&mut len).is_ok() {
                    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut q).is_err() {
                        break;
                    }
                    let Some(r) = reply(&q, &n2) else { break };
                    let mut framed = (r.len() as u16).to_be_bytes().to_vec();
                    framed.extend(r);
                    if s.write_all(&framed).is_err() {
                        break;
                    }
                }
            }
        });
        let dir = std::env::temp_dir().join(format!(
            "tprobe-dns-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {ip}\noptions timeout:2 attempts:2\n"),
        )
        .unwrap();
        Responder {
            ip,
            stop,
            threads: vec![t1, t2],
            dir,
        }
    }

    /// A resolv.conf that names this server.
    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }

    pub fn addr(&self) -> IpAddr {
        IpAddr::V4(self.ip)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `argv` run with `resolv` as its /etc/resolv.conf (a private mount namespace), so it
/// resolves through the test's server and nothing else changes on the host. The process
/// keeps the pid `Command::spawn` reports (unshare and sh exec into `argv`).
pub fn resolving(resolv: &Path, argv: &[&str]) -> Command {
    let mut c = Command::new("unshare");
    c.args([
        "-m",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
    ])
    .arg(resolv)
    .args(argv);
    c
}
