//! tprobe or bpftrace started beside a workload, waited for until attached, and stopped for
//! its counts, CPU time and peak RSS.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use super::common::{proc_cpu_s, proc_hwm_mib, Report};

/// A tracer running beside the workload.
pub(super) struct Tracer {
    pub(super) child: Child,
    out: PathBuf,
    kind: TracerKind,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum TracerKind {
    Tprobe,
    Bpftrace,
}

impl Drop for Tracer {
    /// A tracer that could not be stopped cleanly leaves neither its output nor a running
    /// process. Not waited for: a bpftrace stuck in the kernel would hold the whole run.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = std::fs::remove_file(&self.out);
    }
}

impl Tracer {
    /// `args` follow `tprobe run` (e.g. `--events file.open`).
    pub(super) fn start(
        kind: TracerKind,
        tprobe: &Path,
        args: &[String],
        bt_script: &str,
    ) -> Result<Tracer> {
        Tracer::start_on(kind, tprobe, args, bt_script, None)
    }

    /// [`Tracer::start`] with tprobe pinned to `cpu` when given.
    pub(super) fn start_on(
        kind: TracerKind,
        tprobe: &Path,
        args: &[String],
        bt_script: &str,
        cpu: Option<usize>,
    ) -> Result<Tracer> {
        let out = PathBuf::from(format!("/dev/shm/tprobe-bench-{}.out", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let child = match kind {
            TracerKind::Tprobe => {
                let mut cmd = Command::new(tprobe);
                cmd.arg("run")
                    .args(args)
                    .args(["--no-metrics", "-o"])
                    .arg(&out)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                super::common::pin_command(&mut cmd, cpu);
                cmd.spawn()?
            }
            TracerKind::Bpftrace => Command::new("bpftrace")
                .args(["-B", "full", "-o"])
                .arg(&out)
                .args(["-e", bt_script])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        };
        let t = Tracer { child, out, kind };
        let ready = match kind {
            TracerKind::Tprobe => "probe.start",
            TracerKind::Bpftrace => "Attaching",
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::fs::read_to_string(&t.out).is_ok_and(|s| s.contains(ready)) {
                // Let the first wakeup/drain settle.
                std::thread::sleep(Duration::from_millis(300));
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not start",
                    if kind == TracerKind::Tprobe {
                        "tprobe"
                    } else {
                        "bpftrace"
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (run time in ns, runs) summed over the tracer's loaded programs, from the fdinfo of
    /// its program fds: counted only while `kernel.bpf_stats_enabled` is on.
    pub(super) fn prog_stats(&self) -> (u64, u64) {
        let pid = self.child.id();
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return (0, 0);
        };
        let (mut ns, mut runs) = (0, 0);
        for fd in fds.flatten() {
            let is_prog = std::fs::read_link(fd.path())
                .is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf-prog");
            if !is_prog {
                continue;
            }
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            ns += field("run_time_ns:");
            runs += field("run_cnt:");
        }
        (ns, runs)
    }

    pub(super) fn stop(mut self, prefix: &str) -> Result<Report> {
        let pid = self.child.id();
        let cpu_s = proc_cpu_s(pid);
        let threads_cpu_s = super::common::threads_cpu_s(pid);
        let rss_mib = proc_hwm_mib(pid);
        let sig = if self.kind == TracerKind::Tprobe {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        let what = if self.kind == TracerKind::Tprobe {
            "tprobe"
        } else {
            "bpftrace"
        };
        super::common::stop_child(&mut self.child, sig, what)?;
        let text = std::fs::read(&self.out).unwrap_or_default();
        let _ = std::fs::remove_file(&self.out);
        let text = String::from_utf8_lossy(&text);
        let mut r = Report {
            cpu_s,
            threads_cpu_s,
            rss_mib,
            ..Default::default()
        };
        match self.kind {
            TracerKind::Tprobe => {
                let stop: Value = text
                    .lines()
                    .rev()
                    .find_map(|l| {
                        serde_json::from_str::<Value>(l)
                            .ok()
                            .filter(|v| v["kind"] == "probe.stop")
                    })
                    .context("no probe.stop line")?;
                if let Some(ev) = stop["probe"]["events"].as_object() {
                    r.events = ev
                        .iter()
                        .filter(|(k, _)| k.starts_with(prefix))
                        .map(|(_, v)| v.as_u64().unwrap_or(0))
                        .sum();
                }
                let tag = format!("\"kind\":\"{prefix}");
                for l in text.lines().filter(|l| l.contains(&tag)) {
                    r.event_bytes += l.len() as u64 + 1;
                    r.event_lines += 1;
                }
                r.lost = stop["probe"]["losses"]
                    .as_object()
                    .map(|o| o.values().filter_map(Value::as_u64).sum())
                    .unwrap_or(0);
            }
            TracerKind::Bpftrace => {
                for l in text.lines() {
                    if let Some(n) = l
                        .strip_prefix("Lost ")
                        .and_then(|s| s.split_whitespace().next())
                    {
                        r.lost += n.parse::<u64>().unwrap_or(0);
                    } else if l.starts_with("EV ") {
                        r.events += 1;
                    }
                }
            }
        }
        Ok(r)
    }
}
