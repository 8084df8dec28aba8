//! The XDP section: a UDP flood through a veth pair with no XDP program, an empty one and
//! tprobe's.
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{
    common::{median, Opts, Row},
    empty::EmptyXdp,
    tracer::{Tracer, TracerKind},
};
use crate::util;

/// A veth pair into a network namespace of the bench's own; removed on drop.
struct Veth {
    ns: String,
    host_if: String,
}

impl Veth {
    fn create() -> Result<Veth> {
        let id = std::process::id() % 10_000;
        let v = Veth {
            ns: format!("tpb{id}"),
            host_if: format!("tpb{id}h"),
        };
        let peer = format!("tpb{id}p");
        let ip = |args: &[&str]| util::status(Command::new("ip").args(args));
        ip(&["netns", "add", &v.ns])?;
        ip(&[
            "link", "add", &v.host_if, "type", "veth", "peer", "name", &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &v.ns])?;
        ip(&["addr", "add", "10.213.0.1/30", "dev", &v.host_if])?;
        ip(&["link", "set", &v.host_if, "up"])?;
        ip(&["-n", &v.ns, "addr", "add", "10.213.0.2/30", "dev", &peer])?;
        ip(&["-n", &v.ns, "link", "set", &peer, "up"])?;
        Ok(v)
    }

    fn rx_packets(&self) -> u64 {
        std::fs::read_to_string(format!(
            "/sys/class/net/{}/statistics/rx_packets",
            self.host_if
        ))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
    }

    /// Sends small UDP datagrams from inside the namespace to the host end for `secs`.
    fn flood(&self, secs: u64) -> Result<()> {
        let ns = format!("/run/netns/{}", self.ns);
        std::thread::scope(|sc| {
            sc.spawn(|| -> Result<()> {
                let f = std::fs::File::open(&ns)?;
                // SAFETY: moves only this thread into the namespace.
                if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) }
                    != 0
                {
                    anyhow::bail!("setns: {}", std::io::Error::last_os_error());
                }
                let sock = std::net::UdpSocket::bind("10.213.0.2:0")?;
                sock.connect("10.213.0.1:9")?;
                let end = Instant::now() + Duration::from_secs(secs);
                let buf = [0u8; 18];
                let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
                while Instant::now() < end {
                    for _ in 0..256 {
                        // write(2), not send(2): this measures the XDP program on the
                        // receiving side; what the send hooks cost is W6's business.
                        // SAFETY: a valid socket fd and buffer.
                        let _ = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
                    }
                }
                Ok(())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("flood thread panicked"))?
        })
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Packets/s through a veth pair with no XDP program, with an empty one and with tprobe's
/// (generic mode).
pub(super) fn xdp_flood(tprobe: &Path, opts: &Opts) -> Result<Row> {
    let veth = Veth::create()?;
    let secs = if opts.quick { 1 } else { 3 };
    let mut without = Vec::new();
    let mut empty = Vec::new();
    let mut with = Vec::new();
    let mut lost = 0;
    let args: Vec<String> = [
        "--events",
        "flow",
        "--xdp-mode",
        "skb",
        "--xdp-iface",
        &veth.host_if,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for round in 0..opts.rounds {
        eprintln!("bench: XDP flood round {}/{}", round + 1, opts.rounds);
        let r0 = veth.rx_packets();
        veth.flood(secs)?;
        without.push((veth.rx_packets() - r0) as f64 / secs as f64);
        {
            let _e = EmptyXdp::attach(&veth.host_if)?;
            let r0 = veth.rx_packets();
            veth.flood(secs)?;
            empty.push((veth.rx_packets() - r0) as f64 / secs as f64);
        }
        let t = Tracer::start(TracerKind::Tprobe, tprobe, &args, "")?;
        let r0 = veth.rx_packets();
        veth.flood(secs)?;
        with.push((veth.rx_packets() - r0) as f64 / secs as f64);
        lost = lost.max(t.stop("flow.")?.lost);
    }
    let (a, e, b) = (median(&mut without), median(&mut empty), median(&mut with));
    Ok(Row {
        name: "XDP UDP flood through a veth pair (generic mode)".into(),
        values: vec![
            ("without XDP".into(), format!("{a:.0} packets/s")),
            (
                "empty XDP program".into(),
                format!(
                    "{e:.0} packets/s ({:.1} % lost to generic XDP itself)",
                    (1.0 - e / a) * 100.0
                ),
            ),
            ("with tprobe XDP".into(), format!("{b:.0} packets/s")),
            (
                "throughput lost".into(),
                format!("{:.1} % (target < 5 %)", (1.0 - b / a) * 100.0),
            ),
            (
                "lost to tprobe's program".into(),
                format!("{:.1} % (versus the empty program)", (1.0 - b / e) * 100.0),
            ),
            ("probe losses".into(), lost.to_string()),
        ],
    })
}
