//! The storms (W2-W4, W6): one workload timed with no tracer, empty programs on its hooks,
//! tprobe and bpftrace, round by round.
use std::{path::Path, process::Command, time::Duration};

use anyhow::Result;

use super::{
    common::{median, Opts, Report, Row},
    empty::EmptyTracepoints,
    tracer::{Tracer, TracerKind},
    work::Work,
};
use crate::util;

/// A storm workload and how each tracer observes it.
pub(super) struct Storm {
    pub(super) title: &'static str,
    pub(super) work: Work,
    pub(super) n: u64,
    /// tprobe `--events`.
    pub(super) events: &'static str,
    /// Kind prefix counted as delivered events.
    pub(super) prefix: &'static str,
    /// The equivalent bpftrace program (one `EV` line per event).
    pub(super) bt: &'static str,
    /// File events: read-only opens included, only under the workload's directory.
    pub(super) file_dir: bool,
    /// Tracepoints tprobe uses for this workload: run once more with empty programs there, the
    /// floor any probe on those hooks starts from.
    pub(super) hooks: &'static [&'static str],
}

/// `kernel.bpf_stats_enabled` on while alive, restored after.
struct BpfStats(Option<String>);

impl BpfStats {
    const PATH: &'static str = "/proc/sys/kernel/bpf_stats_enabled";

    fn enable() -> BpfStats {
        let old = std::fs::read_to_string(Self::PATH).ok();
        let _ = std::fs::write(Self::PATH, "1");
        BpfStats(old)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(Self::PATH, old.trim());
        }
    }
}

/// One storm workload compared across no tracer, tprobe and bpftrace.
pub(super) fn storm(
    tprobe: &Path,
    dir: &Path,
    opts: &Opts,
    s: &Storm,
    rows: &mut Vec<Row>,
) -> Result<Report> {
    let Storm {
        title,
        work,
        n,
        events,
        prefix,
        bt,
        file_dir,
        hooks,
    } = *s;
    let mut args = vec!["--events".to_owned(), events.to_owned()];
    if file_dir {
        args.extend([
            "--file-reads".to_owned(),
            "--file-include".to_owned(),
            dir.display().to_string(),
        ]);
    }
    let mut base = Vec::new();
    let mut floor = Vec::new();
    let mut tp = Vec::new();
    let mut bt_t = Vec::new();
    let mut tp_rep: Vec<Report> = Vec::new();
    // The probe's CPU from ready to stopped: its start-up (the /proc snapshot, hashing what
    // runs) is not the workload's.
    let mut tp_cpu: Vec<f64> = Vec::new();
    // The same probe writing to /dev/null (file workloads): its own CPU per operation, without
    // the fresh tmpfs pages a growing output file costs this VM.
    let mut null_cpu: Vec<f64> = Vec::new();
    let mut bt_hung = 0;
    let mut bt_rep: Vec<Report> = Vec::new();
    let have_bt = util::ok(Command::new("bpftrace").arg("--version"));
    for round in 0..opts.rounds {
        eprintln!("bench: {title} round {}/{}", round + 1, opts.rounds);
        base.push(work.run(n, dir).as_secs_f64());
        if !hooks.is_empty() {
            let _e = EmptyTracepoints::attach(hooks)?;
            floor.push(work.run(n, dir).as_secs_f64());
        }
        let t = Tracer::start(TracerKind::Tprobe, tprobe, &args, bt)?;
        let cpu0 = super::common::threads_cpu_s(t.pid());
        tp.push(work.run(n, dir).as_secs_f64());
        std::thread::sleep(Duration::from_millis(300));
        let r = t.stop(prefix)?;
        tp_cpu.push(r.threads_cpu_s - cpu0);
        tp_rep.push(r);
        if file_dir {
            null_cpu.push(discarding_cpu_s(tprobe, &args, work, n, dir)? * 1e6 / n as f64);
        }
        if have_bt {
            match Tracer::start(TracerKind::Bpftrace, tprobe, &args, bt) {
                Ok(t) => {
                    let took = work.run(n, dir).as_secs_f64();
                    std::thread::sleep(Duration::from_millis(300));
                    match t.stop(prefix) {
                        Ok(r) => {
                            bt_t.push(took);
                            bt_rep.push(r);
                        }
                        // Seen here: bpftrace 0.17 stuck in the kernel (D state) for minutes
                        // at exit. Its round is dropped and said so, not waited for.
                        Err(e) => {
                            eprintln!("bench: bpftrace round dropped: {e}");
                            bt_hung += 1;
                        }
                    }
                }
                Err(e) => eprintln!("bench: bpftrace unavailable: {e}"),
            }
        }
    }
    let b = median(&mut base);
    let t = median(&mut tp);
    let mut tp_ev: Vec<f64> = tp_rep
        .iter()
        .zip(&tp)
        .map(|(r, s)| r.events as f64 / s)
        .collect();
    let tp_lost: u64 = tp_rep.iter().map(|r| r.lost).max().unwrap_or(0);
    let mut vals = vec![
        ("ops".to_owned(), n.to_string()),
        ("no probe".to_owned(), format!("{:.3} s", b)),
    ];
    if !floor.is_empty() {
        let f = median(&mut floor);
        vals.push((
            format!("empty programs on {}", hooks.join(", ")),
            format!("{f:.3} s ({:.2}x: the hooks' own cost)", f / b),
        ));
    }
    vals.extend([
        ("tprobe".to_owned(), format!("{:.3} s ({:.2}x)", t, t / b)),
        (
            "tprobe events/s".to_owned(),
            format!("{:.0}", median(&mut tp_ev)),
        ),
        ("tprobe lost".to_owned(), tp_lost.to_string()),
    ]);
    // What one event costs with the default process context (5 ancestors, hashes on): its
    // size on the wire and the probe's own CPU (all threads) per event.
    let mut size: Vec<f64> = tp_rep
        .iter()
        .filter(|r| r.event_lines > 0)
        .map(|r| r.event_bytes as f64 / r.event_lines as f64)
        .collect();
    let mut cpu: Vec<f64> = tp_rep
        .iter()
        .zip(&tp_cpu)
        .filter(|(r, _)| r.events > 0)
        .map(|(r, c)| c * 1e6 / r.events as f64)
        .collect();
    if !size.is_empty() {
        vals.push((
            "tprobe bytes/event (default --ancestors 5)".to_owned(),
            format!("{:.0}", median(&mut size)),
        ));
    }
    // A workload whose events are reported once (net.send: once per socket and peer) has
    // CPU per operation, not per event.
    let once = tp_rep.iter().all(|r| r.events * 2 < n);
    if once {
        let mut per_op: Vec<f64> = tp_cpu.iter().map(|c| c * 1e6 / n as f64).collect();
        vals.push((
            "tprobe CPU/operation (its events are reported once per peer)".to_owned(),
            format!("{:.2} us", median(&mut per_op)),
        ));
    } else if !cpu.is_empty() {
        vals.push((
            "tprobe CPU/event (default --ancestors 5)".to_owned(),
            format!("{:.1} us", median(&mut cpu)),
        ));
    }
    if !null_cpu.is_empty() {
        vals.push((
            "tprobe CPU/event, JSON to /dev/null".to_owned(),
            format!(
                "{:.2} us (the rest of the row above is the tmpfs file's fresh pages)",
                median(&mut null_cpu)
            ),
        ));
    }
    if !bt_t.is_empty() {
        let bt_med = median(&mut bt_t.clone());
        let mut bt_ev: Vec<f64> = bt_rep
            .iter()
            .zip(&bt_t)
            .map(|(r, s)| r.events as f64 / s)
            .collect();
        vals.push((
            "bpftrace".to_owned(),
            format!("{:.3} s ({:.2}x)", bt_med, bt_med / b),
        ));
        vals.push((
            "bpftrace events/s".to_owned(),
            format!("{:.0}", median(&mut bt_ev)),
        ));
        vals.push((
            "bpftrace lost".to_owned(),
            bt_rep.iter().map(|r| r.lost).max().unwrap_or(0).to_string(),
        ));
    } else {
        vals.push(("bpftrace".to_owned(), "not run".to_owned()));
    }
    if !hooks.is_empty() {
        // One more tprobe run with the kernel's per-program statistics on (they cost two
        // clock reads per run, so not in the timed rounds): what tprobe's programs take per
        // operation, the kernel side of the gap above the empty programs.
        let t = Tracer::start(TracerKind::Tprobe, tprobe, &args, bt)?;
        let stats = BpfStats::enable();
        let before = t.prog_stats();
        work.run(n, dir);
        let after = t.prog_stats();
        drop(stats);
        t.stop(prefix)?;
        let (ns, runs) = (after.0 - before.0, after.1 - before.1);
        vals.push((
            "tprobe programs (kernel.bpf_stats_enabled, one more run)".to_owned(),
            format!(
                "{:.0} ns per op ({runs} program runs)",
                ns as f64 / n as f64
            ),
        ));
    }
    if bt_hung > 0 {
        vals.push((
            "bpftrace rounds dropped".to_owned(),
            format!("{bt_hung} (bpftrace did not exit within 30 s of SIGINT)"),
        ));
    }
    rows.push(Row {
        name: title.to_owned(),
        values: vals,
    });
    let mut best = tp_rep
        .into_iter()
        .max_by_key(|r| r.events)
        .unwrap_or_default();
    best.lost = tp_lost;
    Ok(best)
}

/// CPU seconds (all threads) of a tprobe run with `args` writing to /dev/null while `work`
/// runs (see [`super::discard`]).
fn discarding_cpu_s(tprobe: &Path, args: &[String], work: Work, n: u64, dir: &Path) -> Result<f64> {
    let d = super::discard::Discarding::start(tprobe, args, None)?;
    let cpu0 = super::common::threads_cpu_s(d.pid());
    work.run(n, dir);
    std::thread::sleep(Duration::from_millis(300));
    let cpu = super::common::threads_cpu_s(d.pid()) - cpu0;
    d.stop()?;
    Ok(cpu)
}
