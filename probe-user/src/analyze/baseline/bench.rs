//! The baseline's own cost, measured in process (the bench row W9 runs it in a release build):
//! CPU per file and network event while watching (known values, the common case) and while
//! learning, and memory per workload. `cargo test --release -p probe-user --lib
//! baseline_cost -- --ignored --nocapture` prints one `BASELINE_BENCH {json}` line.
use std::{net::SocketAddr, sync::Arc, time::Instant};

use probe_common::{EventKind, FileSyscall};

use super::{Baseline, BaselineConfig, Deviation};
use crate::event::{
    container::ContainerInfo, file::FileRecord, net::NetBody, process::ProcessInfo, Body, Event,
    Task,
};

fn task(kind: EventKind, pid: u32) -> Task {
    Task {
        kind,
        flags: 0,
        ts_ns: 1,
        pid,
        tid: pid,
        ppid: 1,
        uid: 0,
        gid: 0,
        cgroup_id: 1,
        start_ns: 1,
        parent_start_ns: 1,
        comm: b"app".to_vec(),
        exec_id: 0,
        id: crate::event::Identity {
            cap_effective: 0xa80425fb,
            ..Default::default()
        },
    }
}

pub(in crate::analyze) fn event(
    kind: EventKind,
    body: Body,
    container: &Arc<ContainerInfo>,
    ts_ns: u64,
) -> Event {
    let mut t = task(kind, 100);
    t.ts_ns = ts_ns;
    Event {
        ts_ns,
        task: Some(t),
        body,
        process: Some(Arc::new(ProcessInfo {
            pid: 100,
            exe: Some(b"/usr/bin/app".to_vec()),
            args: vec![b"app".to_vec()],
            ..Default::default()
        })),
        parent: None,
        ancestors: None,
        user: None,
        container: Some(container.clone()),
    }
}

pub(in crate::analyze) fn file(path: String) -> Body {
    Body::File(Box::new(FileRecord {
        syscall: FileSyscall::Openat,
        path: path.into_bytes(),
        path_truncated: false,
        path_unreadable: false,
        path_resolved: true,
        target: None,
        target_truncated: false,
        target_resolved: false,
        base: None,
        target_base: None,
        resolved_from: None,
        dirfd: -100,
        target_dirfd: -100,
        by_fd: false,
        flags: (libc::O_WRONLY | libc::O_CREAT) as u32,
        mode: 0o644,
        uid: 0,
        gid: 0,
        length: 0,
        ret: 3,
        times: None,
    }))
}

pub(in crate::analyze) fn connect(port: u16) -> Body {
    let dst: SocketAddr = format!("10.1.2.3:{port}").parse().unwrap();
    Body::Net(Box::new(NetBody {
        protocol: 6,
        family: 2,
        sock_type: 1,
        local: Some("10.0.0.1:40000".parse().unwrap()),
        remote: Some(dst),
        unix: None,
        direction: Some(crate::event::net::Direction::Outbound),
        fd: Some(3),
        ret: Some(0),
        backlog: None,
        state: None,
        dns: None,
        remote_domain: None,
    }))
}

pub(in crate::analyze) fn container(i: usize) -> Arc<ContainerInfo> {
    Arc::new(ContainerInfo {
        id: format!("{i:064x}"),
        image: Some(format!("registry.local/app-{i}:1")),
        name: Some("app".into()),
        ..Default::default()
    })
}

fn cfg(dir: &std::path::Path) -> BaselineConfig {
    let _ = std::fs::create_dir_all(dir);
    let mut c = BaselineConfig::new(dir.to_owned());
    c.read_only = true;
    c
}

/// Nanoseconds per event over `events` (file creates and connects alternating; the paths
/// differ by a number, the ports are 20) in one workload, learning or watching.
fn per_event(learning: bool, events: usize) -> f64 {
    let dir = std::env::temp_dir().join("tprobe-bl-bench-none");
    let mut c = cfg(&dir);
    if !learning {
        c.learn_for = std::time::Duration::from_secs(1);
    }
    let mut b = Baseline::open(&c).unwrap();
    let ct = container(0);
    let evs: Vec<Event> = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                event(
                    EventKind::FileCreate,
                    file(format!("/var/lib/app/data/job-{}.log", 1000 + i)),
                    &ct,
                    1,
                )
            } else {
                event(
                    EventKind::NetConnect,
                    connect(8000 + (i % 20) as u16),
                    &ct,
                    1,
                )
            }
        })
        .collect();
    let mut out: Vec<Deviation> = Vec::new();
    // Learn the values; then (watching) one second later the workload watches.
    for e in &evs {
        b.observe(e, 1000, &mut out);
    }
    let now = if learning { 1000 } else { 1002 };
    b.observe(&evs[0], now, &mut out);
    let t0 = Instant::now();
    for i in 0..events {
        b.observe(&evs[i % evs.len()], now, &mut out);
    }
    let ns = t0.elapsed().as_nanos() as f64 / events as f64;
    assert!(out.is_empty(), "known values give no alert");
    ns
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Resident memory per workload: `n` workloads with 60 values each (exec, files, connects,
/// DNS) and their rates.
fn per_workload(n: usize) -> f64 {
    let dir = std::env::temp_dir().join("tprobe-bl-bench-none");
    let mut b = Baseline::open(&cfg(&dir)).unwrap();
    let mut out = Vec::new();
    let before = rss_bytes();
    for w in 0..n {
        let ct = container(w + 1);
        for i in 0..30u64 {
            let e = event(
                EventKind::FileCreate,
                file(format!("/var/lib/app/d{i}/state.db")),
                &ct,
                i * 1_000_000_000,
            );
            b.observe(&e, 1000, &mut out);
            let e = event(
                EventKind::NetConnect,
                connect(8000 + i as u16),
                &ct,
                i * 1_000_000_000,
            );
            b.observe(&e, 1000, &mut out);
        }
    }
    (rss_bytes().saturating_sub(before)) as f64 / n as f64
}

#[test]
#[ignore = "a measurement, run by `cargo xtask bench --only w9`"]
fn baseline_cost() {
    let rounds = 5;
    let mut watch: Vec<f64> = (0..rounds).map(|_| per_event(false, 200_000)).collect();
    let mut learn: Vec<f64> = (0..rounds).map(|_| per_event(true, 200_000)).collect();
    watch.sort_by(f64::total_cmp);
    learn.sort_by(f64::total_cmp);
    let mem = per_workload(2000);
    println!(
        "BASELINE_BENCH {}",
        serde_json::json!({
            "watching_ns_per_event": watch[rounds / 2],
            "learning_ns_per_event": learn[rounds / 2],
            "watching_ns_min": watch[0],
            "watching_ns_max": watch[rounds - 1],
            "bytes_per_workload": mem,
        })
    );
}
