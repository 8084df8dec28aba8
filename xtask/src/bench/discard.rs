//! tprobe writing its JSON to /dev/null: what the probe itself costs, without a file sink's
//! page cache. Fresh tmpfs pages are dear on this VM (500 MB into a new tmpfs file ran at 0.45
//! to 1.5 GB/s, rewriting the same file at 6.3 GB/s). With no output to read, readiness is
//! its program links and the counts come from its `/metrics`.
use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

pub(super) struct Discarding {
    child: Child,
    port: u16,
}

impl Drop for Discarding {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Discarding {
    /// `tprobe run ARGS -o /dev/null`, on `cpu` when given, once its programs are attached.
    pub(super) fn start(tprobe: &Path, args: &[String], cpu: Option<usize>) -> Result<Discarding> {
        // A free port for its /metrics.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(tprobe);
        cmd.arg("run")
            .args(args)
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
                "-o",
                "/dev/null",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        super::common::pin_command(&mut cmd, cpu);
        let mut d = Discarding {
            child: cmd.spawn()?,
            port,
        };
        d.wait_attached()?;
        Ok(d)
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ready when the number of its bpf_link fds stayed the same, and not zero, for 0.5 s.
    fn wait_attached(&mut self) -> Result<()> {
        let pid = self.child.id();
        let links = || {
            std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| {
                d.flatten()
                    .filter(|f| {
                        std::fs::read_link(f.path())
                            .is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf_link")
                    })
                    .count()
            })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut last, mut steady) = (0, 0);
        while steady < 5 {
            if Instant::now() > deadline || self.child.try_wait()?.is_some() {
                bail!("tprobe writing to /dev/null did not start");
            }
            std::thread::sleep(Duration::from_millis(100));
            let now = links();
            steady = if now > 0 && now == last {
                steady + 1
            } else {
                0
            };
            last = now;
        }
        // Its metrics server answers too.
        self.metrics().map(|_| ())
    }

    fn metrics(&self) -> Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).context("tprobe's /metrics")?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    }

    /// Events of kinds starting with `prefix` written so far, and events lost at any stage.
    pub(super) fn counts(&self, prefix: &str) -> Result<(u64, u64)> {
        let text = self.metrics()?;
        let value = |l: &str| l.rsplit(' ').next()?.parse::<f64>().ok();
        let kind = format!("tprobe_events_total{{kind=\"{prefix}");
        let events = text
            .lines()
            .filter(|l| l.starts_with(&kind))
            .filter_map(value)
            .sum::<f64>();
        let lost = text
            .lines()
            .filter(|l| l.starts_with("tprobe_losses_total"))
            .filter_map(value)
            .sum::<f64>();
        Ok((events as u64, lost as u64))
    }

    /// SIGTERM, and the wait for its exit (bounded).
    pub(super) fn stop(mut self) -> Result<()> {
        super::common::stop_child(
            &mut self.child,
            libc::SIGTERM,
            "tprobe writing to /dev/null",
        )
    }
}
