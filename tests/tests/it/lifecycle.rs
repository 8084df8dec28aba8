//! Start, stop, limits, losses and output handling of `tprobe run`.
use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tprobe_tests::{assert_seq_contiguous, tprobe_bin, Probe};

#[test]
fn sigterm_stops_cleanly_with_a_summary() {
    let probe = Probe::start(&["--events", "process"]);
    Command::new("/bin/true").status().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let st = probe.stop();
    assert!(
        st.status.success(),
        "exit {:?}, stderr {}",
        st.status,
        st.stderr
    );
    assert!(!st.stderr.contains("panicked"), "{}", st.stderr);
    let last = st.lines.last().unwrap();
    assert_eq!(last["kind"], "probe.stop");
    assert!(last["probe"]["events"]["process.exec"].as_u64().unwrap() >= 1);
    assert_eq!(last["probe"]["losses"]["ringbuf"], 0);
    assert_eq!(st.lines[0]["kind"], "probe.start");
    assert_seq_contiguous(&st.lines);
    let hooks = st.lines[0]["probe"]["hooks"].as_array().unwrap();
    // Every hook the selected kinds need is attached (hooks of other kinds are skipped).
    assert!(
        hooks
            .iter()
            .filter(|h| h["reason"] != "no enabled event kind needs it")
            .all(|h| h["attached"] == true),
        "{hooks:?}"
    );
}

#[test]
fn count_and_duration_end_the_run() {
    let probe = Probe::start(&["--events", "process.exec", "--count", "3"]);
    for _ in 0..6 {
        Command::new("/bin/true").status().unwrap();
    }
    let st = probe.finish(Duration::from_secs(20));
    assert!(st.status.success());
    let data = st
        .lines
        .iter()
        .filter(|v| v["kind"] == "process.exec")
        .count();
    assert_eq!(data, 3);
    assert_eq!(st.lines.last().unwrap()["probe"]["reason"], "count reached");

    let t = Instant::now();
    let probe = Probe::start(&["--events", "process", "--duration", "1s"]);
    let st = probe.finish(Duration::from_secs(20));
    assert!(st.status.success());
    assert!(t.elapsed() >= Duration::from_secs(1));
}

/// `tprobe run | head -3`: the reader goes away and the probe exits 0 without a panic.
#[test]
fn closed_pipe_exits_cleanly() {
    let mut child = Command::new(tprobe_bin())
        .args(["run", "--events", "process"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("probe.start"));
    drop(out);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        Command::new("/bin/true").status().unwrap();
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "tprobe kept running after its reader left"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A ring buffer too small for an exec record loses it, and says so.
#[test]
fn ring_buffer_losses_are_reported() {
    let probe = Probe::start(&["--events", "process.exec", "--ringbuf-size", "4K"]);
    // argv of ~6 KiB cannot fit in a 4 KiB ring.
    let big: Vec<String> = (0..30).map(|_| "x".repeat(200)).collect();
    Command::new("/bin/true").args(&big).status().unwrap();
    let loss = probe
        .wait_for(Duration::from_secs(10), |v| v["kind"] == "probe.loss")
        .expect("probe.loss");
    assert_eq!(loss["loss"]["source"], "ringbuf");
    assert_eq!(loss["loss"]["kind"], "process.exec");
    assert!(loss["loss"]["count"].as_u64().unwrap() >= 1);
    let st = probe.stop();
    let stop = st.lines.last().unwrap();
    assert!(stop["probe"]["losses"]["ringbuf"].as_u64().unwrap() >= 1);
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let out = Command::new(tprobe_bin())
        .args(["run", "--events", "process.nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown event kind") && err.contains("process.exec"),
        "{err}"
    );
    let out = Command::new(tprobe_bin())
        .args(["run", "--ringbuf-size", "3M"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("power of two"));
}
