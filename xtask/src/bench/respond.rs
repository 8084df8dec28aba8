//! K1: kill latency. An exec matched by a Sigma rule bound to `kill` (killed from userspace
//! after the alert) against an exec on the deny list (killed in the kernel at
//! `sched_process_exec`, before the image runs). Median and p99 of the `latency_us` the
//! `response.kill` events report, and of the time from spawn to the process's death as the
//! parent sees it.
use std::{
    os::unix::{fs::PermissionsExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use super::common::{Opts, Row};

/// A copy of `/bin/sleep` with bytes of its own: a file and a hash nothing else runs. A
/// sleep lives until it is killed, so every userspace kill has a target to hit.
fn target(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    let mut b = std::fs::read("/bin/sleep")?;
    b.extend(format!("tprobe-bench-{name}-{}", std::process::id()).as_bytes());
    std::fs::write(&p, b)?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    Ok(p)
}

/// Runs tprobe with `args`, execs `bin` `n` times, and returns the lines it wrote and the
/// spawn-to-exit times of the killed runs (µs).
fn run(
    tprobe: &Path,
    dir: &Path,
    args: &[String],
    bin: &Path,
    n: usize,
) -> Result<(Vec<Value>, Vec<f64>)> {
    let out = dir.join("k1.out");
    let _ = std::fs::remove_file(&out);
    let mut child = Command::new(tprobe)
        .arg("run")
        .args(args)
        .args(["--no-metrics", "-o"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&out).is_ok_and(|s| s.contains("probe.start")) {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("tprobe did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut walls = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let st = Command::new(bin).arg("5").status()?;
        if st.signal() == Some(9) {
            walls.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        // One at a time: each kill is measured alone, not behind a queue.
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let text = std::fs::read_to_string(&out).context("reading the probe's output")?;
    let _ = std::fs::remove_file(&out);
    let lines = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok((lines, walls))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn latencies(lines: &[Value], exe: &Path) -> Vec<f64> {
    lines
        .iter()
        .filter(|v| {
            v["kind"] == "response.kill"
                && v["response"]["ok"] == true
                && v["response"]["target"]["exe"] == exe.to_string_lossy().as_ref()
        })
        .filter_map(|v| v["response"]["latency_us"].as_f64())
        .collect()
}

pub(super) fn k1(tprobe: &Path, dir: &Path, opts: &Opts, rows: &mut Vec<Row>) -> Result<()> {
    let n = if opts.quick { 20 } else { 200 };
    let user_bin = target(dir, "k1-user")?;
    let kern_bin = target(dir, "k1-kernel")?;
    let rule = dir.join("k1.yml");
    let id = "bbbbbbbb-0000-4000-8000-00000000a001";
    std::fs::write(
        &rule,
        format!(
            "title: k1\nid: {id}\nlogsource: {{product: linux, category: process_creation}}\n\
             detection:\n  selection:\n    Image|endswith: '/k1-user'\n  condition: selection\nlevel: high\n"
        ),
    )?;
    let common = |extra: Vec<String>| {
        let mut a: Vec<String> = [
            "--events",
            "alert,process.exec",
            "--respond-rate",
            "100000/1s",
            "--respond-rate-global",
            "100000/1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra);
        a
    };
    eprintln!("bench: K1 userspace kill ({n} execs)");
    let (lines, mut user_wall) = run(
        tprobe,
        dir,
        &common(vec![
            "--rules".into(),
            rule.display().to_string(),
            "--respond".into(),
            format!("{id}=kill"),
        ]),
        &user_bin,
        n,
    )?;
    let mut user_lat = latencies(&lines, &user_bin);
    // A quiet ring buffer wakes the reader after --flush-interval (100 ms): the same with 1 ms.
    eprintln!("bench: K1 userspace kill, --flush-interval 1ms ({n} execs)");
    let (lines, mut fast_wall) = run(
        tprobe,
        dir,
        &common(vec![
            "--rules".into(),
            rule.display().to_string(),
            "--respond".into(),
            format!("{id}=kill"),
            "--flush-interval".into(),
            "1ms".into(),
        ]),
        &user_bin,
        n,
    )?;
    let mut fast_lat = latencies(&lines, &user_bin);
    eprintln!("bench: K1 in-kernel deny ({n} execs)");
    let (lines, mut kern_wall) = run(
        tprobe,
        dir,
        &common(vec!["--deny-exec".into(), kern_bin.display().to_string()]),
        &kern_bin,
        n,
    )?;
    let mut kern_lat = latencies(&lines, &kern_bin);
    let (uk, kk) = (user_lat.len(), kern_wall.len());
    rows.push(Row {
        name: "K1 kill latency (exec of a matched binary until it dies)".into(),
        values: vec![
            (
                "userspace kill, latency_us (event to kill)".into(),
                format!(
                    "median {:.0} µs, p99 {:.0} µs ({uk} of {n} killed; most of it is the ring buffer's --flush-interval)",
                    pct(&mut user_lat, 0.5),
                    pct(&mut user_lat, 0.99)
                ),
            ),
            (
                "userspace kill, spawn to death".into(),
                format!(
                    "median {:.0} µs, p99 {:.0} µs",
                    pct(&mut user_wall, 0.5),
                    pct(&mut user_wall, 0.99)
                ),
            ),
            (
                "userspace kill with --flush-interval 1ms, latency_us / spawn to death".into(),
                format!(
                    "median {:.0} / {:.0} µs, p99 {:.0} / {:.0} µs",
                    pct(&mut fast_lat, 0.5),
                    pct(&mut fast_wall, 0.5),
                    pct(&mut fast_lat, 0.99),
                    pct(&mut fast_wall, 0.99)
                ),
            ),
            (
                "in-kernel deny, spawn to death".into(),
                format!(
                    "median {:.0} µs, p99 {:.0} µs ({kk} of {n} killed before running; events say latency_us {:.0})",
                    pct(&mut kern_wall, 0.5),
                    pct(&mut kern_wall, 0.99),
                    pct(&mut kern_lat, 0.5)
                ),
            ),
        ],
    });
    Ok(())
}
