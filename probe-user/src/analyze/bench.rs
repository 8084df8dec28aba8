//! The analyze stage's own cost with rules, measured in process (the bench row W8 runs it in a
//! release build): CPU per file open (W2's event), exec and connect that the rule pack plus
//! the bench's synthetic rules add, against the same calls with no rules. The native record
//! is rendered by the real encoder for fields the fast path leaves out, as in a run.
//! `TPROBE_BENCH_RULES=DIR[:DIR...] cargo test --release -p probe-user --lib rules_cost --
//! --ignored --nocapture` prints one `RULES_BENCH {json}` line.
use std::{path::PathBuf, time::Instant};

use probe_common::EventKind;

use super::{
    baseline::bench::{connect, container, event, file},
    rules,
    tests::analyzer,
    Analyzer, RuleSet,
};
use crate::{
    clock::BootClock,
    encode::native::Native,
    event::{Body, Event},
};

/// W2's event: a read-only open under the bench's own directory.
fn open_event() -> Event {
    let mut e = event(
        EventKind::FileOpen,
        file("/tmp/tprobe-bench-w2/f".into()),
        &container(0),
        1,
    );
    if let Body::File(f) = &mut e.body {
        f.flags = libc::O_RDONLY as u32;
    }
    e.container = None;
    e
}

fn connect_event(pid: u32) -> Event {
    let mut e = event(EventKind::NetConnect, connect(8080), &container(0), 1);
    e.container = None;
    if let Some(t) = &mut e.task {
        t.pid = pid;
        t.tid = pid;
    }
    // Its own entity id: the port-scan correlation groups by it.
    e.process = Some(std::sync::Arc::new(crate::event::process::ProcessInfo {
        pid,
        entity_id: format!("{pid:016x}"),
        exe: Some(b"/usr/bin/app".to_vec()),
        args: vec![b"app".to_vec()],
        ..Default::default()
    }));
    e
}

/// Nanoseconds per `analyze` call over `evs` taken in turn, best of three stretches of `n`
/// calls; the clock the correlation windows count in advances a second every `per_sec` calls.
fn per_call(a: &mut Analyzer, evs: &[Event], per_sec: usize, native: &Native, n: usize) -> f64 {
    let mut out = Vec::new();
    let mut best = f64::MAX;
    let mut secs = 1000;
    for _ in 0..3 {
        let t0 = Instant::now();
        for i in 0..n {
            if i % per_sec == 0 {
                secs += 1;
            }
            a.analyze(&evs[i % evs.len()], Some(i as u64), secs, native, &mut out);
            out.clear();
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

#[test]
#[ignore = "a measurement, run by `cargo xtask bench --only w8`"]
fn rules_cost() {
    let dirs: Vec<PathBuf> = std::env::var("TPROBE_BENCH_RULES")
        .map(|v| v.split(':').map(PathBuf::from).collect())
        .unwrap_or_else(|_| vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules")]);
    let loaded = rules::load(&dirs, &crate::schema::has_field).unwrap();
    assert!(loaded.refused.is_empty(), "{:?}", loaded.refused);
    let set = RuleSet::build(loaded).unwrap();
    let count = set.rule_count;
    let native = Native::new("bench".into(), BootClock::measure());
    let mut with = analyzer(Some(set));
    let mut none = analyzer(None);
    let mut row = serde_json::Map::new();
    // Connects: 1000 processes one connect a second each (a busy node), and one process in a
    // connect loop (a storm: its correlation windows stay full).
    let busy: Vec<Event> = (0..1000).map(|i| connect_event(10_000 + i)).collect();
    for (name, evs, per_sec, n) in [
        ("file_open", vec![open_event()], usize::MAX, 200_000),
        ("exec", vec![super::tests::exec(0)], usize::MAX, 50_000),
        ("connect", busy, 1000, 200_000),
        (
            "connect_storm",
            vec![connect_event(100)],
            usize::MAX,
            20_000,
        ),
    ] {
        // For a profile of one case.
        if std::env::var("TPROBE_BENCH_ONLY").is_ok_and(|o| o != name) {
            continue;
        }
        let on = per_call(&mut with, &evs, per_sec, &native, n);
        let off = per_call(&mut none, &evs, per_sec, &native, n);
        row.insert(format!("{name}_ns"), (on - off).max(0.0).into());
    }
    row.insert("rules".into(), count.into());
    println!("RULES_BENCH {}", serde_json::Value::Object(row));
}
