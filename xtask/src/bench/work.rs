//! The timed workloads: loops of syscalls (getppid, open, exec, connect, UDP send) that
//! each storm runs with and without a tracer.
use std::{
    ffi::CString,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

/// A workload: runs `n` operations and returns how long they took.
#[derive(Clone, Copy)]
pub(super) enum Work {
    Getppid,
    OpenClose,
    Exec,
    Connect,
    UdpSend,
    /// 1-byte reads of /dev/zero: every `read` passes the DNS receive hooks.
    Read,
    /// The same, by a process that just sent a DNS query (its reads get the socket check).
    ReadDnsClient,
}

impl Work {
    pub(super) fn run(self, n: u64, dir: &Path) -> Duration {
        match self {
            Work::Getppid => {
                let t = Instant::now();
                for _ in 0..n {
                    // SAFETY: getppid has no preconditions.
                    unsafe { libc::getppid() };
                }
                t.elapsed()
            }
            Work::OpenClose => {
                let path = CString::new(dir.join("bench-file").to_string_lossy().as_bytes())
                    .expect("no NUL in path");
                std::fs::write(dir.join("bench-file"), b"x").expect("create bench file");
                let t = Instant::now();
                for _ in 0..n {
                    // SAFETY: valid C string; the fd is closed right away.
                    unsafe {
                        let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
                        if fd >= 0 {
                            libc::close(fd);
                        }
                    }
                }
                t.elapsed()
            }
            Work::Exec => {
                let t = Instant::now();
                for _ in 0..n {
                    let _ = Command::new("/bin/true").status();
                }
                t.elapsed()
            }
            Work::Read | Work::ReadDnsClient => {
                if matches!(self, Work::ReadDnsClient) {
                    // Any datagram to port 53 marks the sender a DNS client; none need answer.
                    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
                    let _ = s.send_to(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x00\x00\x01\x00\x01", "127.0.0.1:53");
                }
                let mut f = std::fs::File::open("/dev/zero").expect("open /dev/zero");
                let mut b = [0u8; 1];
                let t = Instant::now();
                for _ in 0..n {
                    let _ = f.read(&mut b);
                }
                t.elapsed()
            }
            Work::UdpSend => {
                // A connected UDP client sending small datagrams to a loopback sink.
                let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
                sock.connect(sink.local_addr().unwrap()).expect("connect");
                let _ = sink.set_nonblocking(true);
                let t = Instant::now();
                let mut drain = [0u8; 64];
                for i in 0..n {
                    let _ = sock.send(b"x");
                    if i % 64 == 0 {
                        while sink.recv(&mut drain).is_ok() {}
                    }
                }
                t.elapsed()
            }
            Work::Connect => {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
                let addr = l.local_addr().unwrap();
                // One request and reply per connection: the client waits for the server, so
                // the accept queue never overflows into one-second SYN retransmits (which
                // made the run's time depend on who was slower, not on the probe). Accepts
                // until a connection says `q`.
                let acceptor = std::thread::spawn(move || {
                    while let Ok((mut s, _)) = l.accept() {
                        let mut b = [0u8; 1];
                        if s.read(&mut b).is_ok_and(|n| n == 1) {
                            let _ = s.write_all(&b);
                            if b[0] == b'q' {
                                break;
                            }
                        }
                    }
                });
                let t = Instant::now();
                for _ in 0..n {
                    if let Ok(mut s) = TcpStream::connect(addr) {
                        let mut b = [0u8; 1];
                        if s.write_all(b"x").is_ok() {
                            let _ = s.read(&mut b);
                        }
                        abort_on_close(&s);
                    }
                }
                let el = t.elapsed();
                if let Ok(mut s) = TcpStream::connect(addr) {
                    let _ = s.write_all(b"q");
                    let _ = s.read(&mut [0u8; 1]);
                }
                let _ = acceptor.join();
                el
            }
        }
    }
}

/// Makes closing `s` send a reset instead of a FIN: no TIME_WAIT socket is left behind, so a
/// run of thousands of connects does not fill the port range and time the kernel's cleanup
/// rather than the probe.
fn abort_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
