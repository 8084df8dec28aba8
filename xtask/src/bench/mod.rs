//! `cargo xtask bench`: workloads run side by side (alternating A/B, median of N rounds) with
//! no probe, with tprobe and with bpftrace; results printed and written to BENCHMARKS.md.
//!
//! This file is the driver: which sections run, in what order, with what workloads. The
//! sections and their helpers are children; `common` is the leaf they all share, so no child
//! reaches back up here.
mod analyze;
mod baseline;
mod common;
mod discard;
mod empty;
mod investigate;
mod rate;
mod report;
mod respond;
mod storm;
mod tracer;
mod work;
mod xdp;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Result;

pub use common::Opts;
use common::{median, proc_cpu_s, Row};
use storm::{storm, Storm};
use tracer::{Tracer, TracerKind};
use work::Work;

/// `--events all`: process, file and network hooks attached (no XDP interface).
fn all_events() -> Vec<String> {
    vec!["--events".to_owned(), "all".to_owned()]
}

pub fn bench(tprobe: &Path, opts: &Opts) -> Result<()> {
    let dir = PathBuf::from(format!("/dev/shm/tprobe-bench-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let scale = if opts.quick { 10 } else { 1 };
    let mut rows = Vec::new();

    if opts.wants("w1") {
        // W1: tax on a syscall no hook traces.
        let n1 = 2_000_000 / scale;
        let mut base = Vec::new();
        let mut with = Vec::new();
        for round in 0..opts.rounds {
            eprintln!("bench: W1 round {}/{}", round + 1, opts.rounds);
            base.push(Work::Getppid.run(n1, &dir).as_secs_f64() * 1e9 / n1 as f64);
            let t = Tracer::start(TracerKind::Tprobe, tprobe, &all_events(), "")?;
            with.push(Work::Getppid.run(n1, &dir).as_secs_f64() * 1e9 / n1 as f64);
            t.stop("")?;
        }
        let (b, w) = (median(&mut base), median(&mut with));
        rows.push(Row {
            name: "W1 untraced-syscall tax (getppid, all events on)".into(),
            values: vec![
                ("no probe".into(), format!("{b:.0} ns/op")),
                ("tprobe".into(), format!("{w:.0} ns/op")),
                ("tax".into(), format!("{:.0} ns (target <= 130)", w - b)),
            ],
        });
    }

    if opts.wants("w7") {
        // W7: the busiest new hook: sys_{enter,exit}_read for DNS responses, on every read.
        let n = 2_000_000 / scale;
        let per_op = |w: Work| w.run(n, &dir).as_secs_f64() * 1e9 / n as f64;
        let (mut base, mut empty, mut with, mut client) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..opts.rounds {
            eprintln!("bench: W7 round {}/{}", round + 1, opts.rounds);
            base.push(per_op(Work::Read));
            {
                let _e = empty::EmptyTracepoints::attach(&[
                    "syscalls/sys_enter_read",
                    "syscalls/sys_exit_read",
                ])?;
                empty.push(per_op(Work::Read));
            }
            let t = Tracer::start(TracerKind::Tprobe, tprobe, &all_events(), "")?;
            with.push(per_op(Work::Read));
            client.push(per_op(Work::ReadDnsClient));
            t.stop("")?;
        }
        let (b, e, w, c) = (
            median(&mut base),
            median(&mut empty),
            median(&mut with),
            median(&mut client),
        );
        rows.push(Row {
            name: "W7 read tax (DNS receive hooks on every read, all events on)".into(),
            values: vec![
                ("no probe".into(), format!("{b:.0} ns/op")),
                (
                    "empty programs on sys_{enter,exit}_read".into(),
                    format!("{e:.0} ns/op (the hooks' own floor: {:.0} ns)", e - b),
                ),
                ("tprobe".into(), format!("{w:.0} ns/op")),
                ("tax".into(), format!("{:.0} ns", w - b)),
                (
                    "tax for a process that just sent a DNS query".into(),
                    format!("{:.0} ns (its reads get the socket check)", c - b),
                ),
            ],
        });
    }

    let scaled = |n: u64| n / scale;
    let w2 = opts.wants("w2").then(|| storm(
        tprobe,
        &dir,
        opts,
        &Storm {
            title: "W2 file storm (open+close)",
            work: Work::OpenClose,
            n: scaled(200_000),
            events: "file.open",
            prefix: "file.open",
            file_dir: true,
            hooks: &["syscalls/sys_enter_openat", "syscalls/sys_exit_openat"],
            bt: r#"tracepoint:syscalls:sys_exit_openat { printf("EV %d %s %d\n", pid, comm, args->ret); }"#,
        },
        &mut rows,
    ));
    if opts.wants("w3") {
        storm(
            tprobe,
            &dir,
            opts,
            &Storm {
                title: "W3 exec storm (fork+exec /bin/true)",
                work: Work::Exec,
                n: scaled(2_000),
                events: "process.exec",
                prefix: "process.exec",
                file_dir: false,
                hooks: &[],
                bt: r#"tracepoint:sched:sched_process_exec { printf("EV %d %s\n", pid, str(args->filename)); }"#,
            },
            &mut rows,
        )?;
    }
    let w4 = opts.wants("w4").then(|| storm(
        tprobe,
        &dir,
        opts,
        &Storm {
            title: "W4 connect storm (loopback)",
            work: Work::Connect,
            n: scaled(20_000),
            events: "net.connect",
            prefix: "net.connect",
            file_dir: false,
            hooks: &["syscalls/sys_enter_connect", "syscalls/sys_exit_connect"],
            bt: r#"tracepoint:syscalls:sys_exit_connect { printf("EV %d %s %d\n", pid, comm, args->ret); }"#,
        },
        &mut rows,
    ));

    match &w2 {
        None => {}
        Some(Ok(r)) => rows.push(Row {
            name: "Footprint during W2".into(),
            values: vec![
                ("probe CPU".into(), format!("{:.2} s", r.cpu_s)),
                (
                    "peak RSS".into(),
                    format!("{:.1} MiB (target < 50)", r.rss_mib),
                ),
                ("events lost during W2".into(), r.lost.to_string()),
            ],
        }),
        Some(Err(e)) => rows.push(Row {
            name: "W2 file storm".into(),
            values: vec![("error".into(), e.to_string())],
        }),
    }
    if let Some(Err(e)) = &w4 {
        rows.push(Row {
            name: "W4 connect storm".into(),
            values: vec![("error".into(), e.to_string())],
        });
    }

    if opts.wants("w8") {
        if let Err(e) = analyze::w8(tprobe, &dir, opts, scale, &mut rows) {
            rows.push(Row {
                name: "W8 analyze stage".into(),
                values: vec![("error".into(), e.to_string())],
            });
        }
    }

    if opts.wants("w9") {
        if let Err(e) = baseline::w9(opts, &mut rows) {
            rows.push(Row {
                name: "W9 baseline".into(),
                values: vec![("error".into(), format!("{e:#}"))],
            });
        }
    }

    if opts.wants("k1") {
        if let Err(e) = respond::k1(tprobe, &dir, opts, &mut rows) {
            rows.push(Row {
                name: "K1 kill latency".into(),
                values: vec![("error".into(), e.to_string())],
            });
        }
    }

    if opts.wants("w10") {
        if let Err(e) = investigate::w10(tprobe, &dir, opts, &mut rows) {
            rows.push(Row {
                name: "W10 investigate".into(),
                values: vec![("error".into(), format!("{e:#}"))],
            });
        }
    }

    if opts.wants("w6") {
        if let Err(e) = storm(
            tprobe,
            &dir,
            opts,
            &Storm {
                title: "W6 UDP send storm (connected socket, one peer)",
                work: Work::UdpSend,
                n: scaled(200_000),
                events: "net.send",
                prefix: "net.send",
                file_dir: false,
                hooks: &["syscalls/sys_enter_sendto"],
                bt: r#"tracepoint:syscalls:sys_enter_sendto { printf("EV %d %s\n", pid, comm); }"#,
            },
            &mut rows,
        ) {
            rows.push(Row {
                name: "W6 UDP send storm".into(),
                values: vec![("error".into(), e.to_string())],
            });
        }
    }

    if opts.wants("w5") {
        match rate::max_rate(tprobe, &dir, opts) {
            Ok(row) => rows.push(row),
            Err(e) => rows.push(Row {
                name: "W5 highest zero-loss rate".into(),
                values: vec![("error".into(), format!("{e:#}"))],
            }),
        }
    }

    if opts.wants("xdp") {
        match xdp::xdp_flood(tprobe, opts) {
            Ok(row) => rows.push(row),
            Err(e) => rows.push(Row {
                name: "XDP UDP flood".into(),
                values: vec![("error".into(), format!("{e:#}"))],
            }),
        }
    }

    if opts.wants("idle") {
        // Idle CPU with every hook attached and no workload.
        eprintln!("bench: idle CPU over {} s", opts.idle_secs);
        let t = Tracer::start(TracerKind::Tprobe, tprobe, &all_events(), "")?;
        let c0 = proc_cpu_s(t.child.id());
        std::thread::sleep(Duration::from_secs(opts.idle_secs));
        let c1 = proc_cpu_s(t.child.id());
        let idle = t.stop("")?;
        rows.push(Row {
            name: "Idle".into(),
            values: vec![
                (
                    "CPU".into(),
                    format!(
                        "{:.2} % over {} s (target < 1 %)",
                        (c1 - c0) * 100.0 / opts.idle_secs as f64,
                        opts.idle_secs
                    ),
                ),
                ("RSS".into(), format!("{:.1} MiB", idle.rss_mib)),
            ],
        });
    }

    if opts.quick {
        let previous =
            std::fs::read_to_string(crate::util::root().join("BENCHMARKS.md")).unwrap_or_default();
        for w in report::regressions(&rows, &previous) {
            eprintln!("bench: warning: {w}");
        }
    }
    report::write(&rows, opts)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
