//! W5: the highest event rate tprobe delivers without a loss, under a paced load.
use std::{
    ffi::CString,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{
    common::{proc_cpu_s, Opts, Row},
    tracer::{Tracer, TracerKind},
};

/// W5 load: `threads` threads together attempt `rate` opens per second of paths that do not
/// exist (cheap for the workload, one `file.open` event each) for `secs`. Returns the opens
/// actually made and the time taken.
fn paced_opens(dir: &Path, rate: u64, threads: u64, secs: f64) -> (u64, f64) {
    let start = Instant::now();
    let per_thread = rate / threads;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let path = CString::new(
                dir.join(format!("missing-{t}"))
                    .to_string_lossy()
                    .as_bytes(),
            )
            .expect("no NUL in path");
            std::thread::spawn(move || {
                let mut done: u64 = 0;
                loop {
                    let el = start.elapsed().as_secs_f64();
                    if el >= secs {
                        break;
                    }
                    // Catch up to the schedule in small batches.
                    let due = (el * per_thread as f64) as u64;
                    if done >= due {
                        std::hint::spin_loop();
                        continue;
                    }
                    for _ in 0..(due - done).min(256) {
                        // SAFETY: a valid C string; the open fails (no such file).
                        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
                        if fd >= 0 {
                            // SAFETY: our own fd.
                            unsafe { libc::close(fd) };
                        }
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let ops = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    (ops, start.elapsed().as_secs_f64())
}

/// W5: offered rates stepped up until tprobe loses an event or the machine cannot offer more.
pub(super) fn max_rate(tprobe: &Path, dir: &Path, opts: &Opts) -> Result<Row> {
    let args: Vec<String> = [
        "--events",
        "file.open",
        "--file-reads",
        "--file-include",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let secs = if opts.quick { 1.0 } else { 3.0 };
    let mut values = Vec::new();
    let mut best: Option<f64> = None;
    for rate in [
        100_000u64, 200_000, 300_000, 400_000, 500_000, 600_000, 800_000, 1_000_000,
    ] {
        eprintln!("bench: W5 offered {rate} events/s");
        let t = Tracer::start(TracerKind::Tprobe, tprobe, &args, "")?;
        let c0 = proc_cpu_s(t.child.id());
        let (ops, took) = paced_opens(dir, rate, 2, secs);
        std::thread::sleep(Duration::from_millis(500));
        let cpu = proc_cpu_s(t.child.id()) - c0;
        let r = t.stop("file.open")?;
        let achieved = ops as f64 / took;
        let delivered = r.events as f64 / took;
        // The probe's own CPU (userspace: drain, enrich, encode, write) per event delivered.
        let per_event_us = cpu * 1e6 / r.events.max(1) as f64;
        values.push((
            format!("offered {rate}/s"),
            format!(
                "made {achieved:.0}/s, delivered {delivered:.0}/s, lost {}, probe CPU {per_event_us:.2} µs/event (one core: {:.0} events/s)",
                r.lost,
                1e6 / per_event_us
            ),
        ));
        if r.lost > 0 || r.events < ops {
            break;
        }
        best = Some(best.map_or(delivered, |b: f64| b.max(delivered)));
        if achieved < 0.9 * rate as f64 {
            // The workload itself cannot go faster here (two CPUs shared with the probe).
            values.push((
                "note".into(),
                "the load generator saturated the machine before tprobe lost anything".into(),
            ));
            break;
        }
    }
    values.insert(
        0,
        (
            "max zero-loss rate".into(),
            best.map_or("none".into(), |b| {
                format!("{b:.0} events/s (target >= 500000)")
            }),
        ),
    );
    Ok(Row {
        name: "W5 highest zero-loss rate (two threads of failing opens, paced)".into(),
        values,
    })
}
