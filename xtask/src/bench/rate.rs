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
/// exist (cheap for the workload, one `file.open` event each) for `secs`, on CPU `cpu` when
/// given. Returns the opens actually made and the time taken.
fn paced_opens(dir: &Path, rate: u64, threads: u64, secs: f64, cpu: Option<usize>) -> (u64, f64) {
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
                if let Some(c) = cpu {
                    super::common::pin_to(c);
                }
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

/// Where W5's probe writes its JSON.
#[derive(Clone, Copy, PartialEq)]
enum Out {
    Null,
    File,
}

/// W5: offered rates stepped up until tprobe loses an event or the machine cannot offer more,
/// with the probe on one CPU and the load on the other, writing to /dev/null (the probe's own
/// ceiling) and to a tmpfs file.
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
    // SAFETY: a plain query.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    // One paced thread on CPU 0, the probe on CPU 1; on one CPU, both share it.
    let (probe_cpu, load_cpu, threads) = if cpus >= 2 {
        (Some(1), Some(0), 1)
    } else {
        (None, None, 2)
    };
    let mut values = Vec::new();
    let mut summary = Vec::new();
    for out in [Out::Null, Out::File] {
        let label = match out {
            Out::Null => "JSON to /dev/null",
            Out::File => "JSON to a tmpfs file",
        };
        let mut best: Option<f64> = None;
        for rate in [
            100_000u64, 200_000, 300_000, 400_000, 500_000, 600_000, 800_000, 1_000_000,
        ] {
            eprintln!("bench: W5 ({label}) offered {rate} events/s");
            let (ops, took, events, lost, cpu) = match out {
                Out::Null => {
                    let d = super::discard::Discarding::start(tprobe, &args, probe_cpu)?;
                    let c0 = proc_cpu_s(d.pid());
                    let (ops, took) = paced_opens(dir, rate, threads, secs, load_cpu);
                    // Past the probe's 1 s loss poll, so kernel drops are in the counts.
                    std::thread::sleep(Duration::from_millis(1500));
                    let cpu = proc_cpu_s(d.pid()) - c0;
                    let (events, lost) = d.counts("file.open")?;
                    d.stop()?;
                    (ops, took, events, lost, cpu)
                }
                Out::File => {
                    let t = Tracer::start_on(TracerKind::Tprobe, tprobe, &args, "", probe_cpu)?;
                    let c0 = proc_cpu_s(t.child.id());
                    let (ops, took) = paced_opens(dir, rate, threads, secs, load_cpu);
                    std::thread::sleep(Duration::from_millis(500));
                    let cpu = proc_cpu_s(t.child.id()) - c0;
                    let r = t.stop("file.open")?;
                    (ops, took, r.events, r.lost, cpu)
                }
            };
            let achieved = ops as f64 / took;
            let delivered = events as f64 / took;
            // The probe's own CPU (drain, enrich, encode, write) per event delivered.
            let per_event_us = cpu * 1e6 / events.max(1) as f64;
            values.push((
                format!("{label}, offered {rate}/s"),
                format!(
                    "made {achieved:.0}/s, delivered {delivered:.0}/s, lost {lost}, probe CPU {per_event_us:.2} µs/event (one core: {:.0} events/s)",
                    1e6 / per_event_us
                ),
            ));
            if lost > 0 || events < ops {
                break;
            }
            best = Some(best.map_or(delivered, |b: f64| b.max(delivered)));
            if achieved < 0.9 * rate as f64 {
                values.push((
                    format!("{label}, note"),
                    "the load generator could not offer more before tprobe lost anything".into(),
                ));
                break;
            }
        }
        summary.push((
            format!("max zero-loss rate, {label}"),
            best.map_or("none".into(), |b| {
                format!("{b:.0} events/s (target >= 500000)")
            }),
        ));
    }
    let pinning = if probe_cpu.is_some() {
        "probe on CPU 1, one paced thread on CPU 0"
    } else {
        "one CPU: probe and two paced threads share it"
    };
    summary.push(("placement".into(), pinning.into()));
    summary.extend(values);
    Ok(Row {
        name: "W5 highest zero-loss rate (failing opens, paced)".into(),
        values: summary,
    })
}
