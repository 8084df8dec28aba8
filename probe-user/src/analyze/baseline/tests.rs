//! The baseline engine on synthetic events: learning then watching, once per run, the alert
//! budget, `--baseline-accept`, early stop after a stable stretch, and rate deviations.
use std::time::Duration;

use probe_common::EventKind;

use super::{
    bench::{connect, container, event, file},
    Baseline, BaselineConfig, Deviation,
};

fn cfg() -> BaselineConfig {
    let dir = std::env::temp_dir().join("tprobe-bl-unit-none");
    let _ = std::fs::create_dir_all(&dir);
    let mut c = BaselineConfig::new(dir);
    c.read_only = true;
    c.learn_for = Duration::from_secs(10);
    c.learn_stable = Duration::from_secs(3600);
    c.rate_interval = Duration::from_secs(1);
    c
}

fn hits(out: &[Deviation]) -> Vec<(&'static str, String)> {
    out.iter()
        .map(|d| (d.hit.dimension, d.hit.value.clone()))
        .collect()
}

#[test]
fn learns_then_reports_each_new_value_once_within_the_budget() {
    let mut c = cfg();
    c.alerts_per_minute = 2;
    let mut b = Baseline::open(&c).unwrap();
    let ct = container(1);
    let mut out = Vec::new();
    for t in 0..5 {
        let e = event(EventKind::NetConnect, connect(8080), &ct, t * 1_000_000_000);
        b.observe(&e, 1000 + t as i64, &mut out);
    }
    assert!(out.is_empty(), "learning: no alert");
    let known = event(EventKind::NetConnect, connect(8080), &ct, 11_000_000_000);
    b.observe(&known, 1011, &mut out);
    assert!(out.is_empty(), "watching, known value");
    for port in [9001, 9001, 9002, 9003, 9004] {
        let e = event(EventKind::NetConnect, connect(port), &ct, 11_000_000_000);
        b.observe(&e, 1011, &mut out);
    }
    assert_eq!(
        hits(&out),
        vec![
            ("connect", "tcp 10.1.2.3:9001".to_owned()),
            ("connect", "tcp 10.1.2.3:9002".to_owned())
        ]
    );
    assert_eq!(out[0].hit.workload, "app@registry.local/app-1");
    assert_eq!(out[0].hit.state, "watching");
    assert_eq!(out[0].rule.id, "baseline");
    assert_eq!(b.totals.repeats, 1);
    assert_eq!(b.totals.suppressed, 2);
    assert_eq!(b.totals.alerts, 2);
    let r = b.report();
    assert_eq!(
        r["per_workload"]["app@registry.local/app-1"]["suppressed"],
        2
    );
    // A suppressed deviation is not lost: it alerts once the budget has refilled.
    out.clear();
    let again = event(EventKind::NetConnect, connect(9003), &ct, 71_000_000_000);
    b.observe(&again, 1071, &mut out);
    b.observe(&again, 1071, &mut out);
    assert_eq!(
        hits(&out),
        vec![("connect", "tcp 10.1.2.3:9003".to_owned())]
    );
}

#[test]
fn accept_learns_deviations_and_a_stable_stretch_ends_learning() {
    let mut c = cfg();
    c.accept = true;
    c.learn_for = Duration::from_secs(3600);
    c.learn_stable = Duration::from_secs(5);
    let mut b = Baseline::open(&c).unwrap();
    let ct = container(2);
    let mut out = Vec::new();
    let e = event(EventKind::FileCreate, file("/var/log/a.log".into()), &ct, 1);
    b.observe(&e, 1000, &mut out);
    b.observe(&e, 1004, &mut out);
    assert_eq!(b.report()["learning"], 1);
    b.observe(&e, 1006, &mut out);
    assert_eq!(b.report()["watching"], 1, "5 s without a new value");
    let new = event(EventKind::FileCreate, file("/etc/x.conf".into()), &ct, 1);
    b.observe(&new, 1007, &mut out);
    b.observe(&new, 1008, &mut out);
    assert_eq!(hits(&out), vec![("file.write", "/etc/x.conf".to_owned())]);
    assert_eq!(b.totals.accepted, 1);
    assert_eq!(b.totals.repeats, 0, "learned: the second one is known");
}

#[test]
fn a_burst_far_above_the_learned_rate_gives_one_rate_alert() {
    let mut c = cfg();
    c.rate_floor = 50;
    let mut b = Baseline::open(&c).unwrap();
    let ct = container(3);
    let mut out = Vec::new();
    let sec = 1_000_000_000u64;
    // Learning: 3 connects a second for 10 s.
    for s in 0..10u64 {
        for k in 0..3 {
            let e = event(EventKind::NetConnect, connect(8080), &ct, s * sec + k);
            b.observe(&e, 1000 + s as i64, &mut out);
        }
    }
    // Watching: the same rate gives nothing, then 200 in one second gives one alert.
    for s in 10..13u64 {
        for k in 0..3 {
            let e = event(EventKind::NetConnect, connect(8080), &ct, s * sec + k);
            b.observe(&e, 1000 + s as i64, &mut out);
        }
    }
    assert!(out.is_empty(), "{:?}", hits(&out));
    for k in 0..200 {
        let e = event(EventKind::NetConnect, connect(8080), &ct, 13 * sec + k);
        b.observe(&e, 1013, &mut out);
    }
    assert_eq!(hits(&out), vec![("rate", "net.connect".to_owned())]);
}
