//! Sinks and formats against real receivers: the rotel OTLP collector, rsyslog, rotating files,
//! and ECS/OCSF output checked against the vendored field definitions.
use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read as _,
    net::{TcpListener, TcpStream},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use probe_user::encode::schema_check::{check_ecs, check_ocsf};
use serde_json::Value;
use tprobe_tests::{Probe, WAIT};

/// A fresh private directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tprobe-sinks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// Runs `/bin/true MARKER` a few times so there are events to ship.
fn activity(marker: &str, n: usize) {
    for _ in 0..n {
        Command::new("/bin/true").arg(marker).status().unwrap();
    }
}

/// A receiver process this test started; killed (by its own pid) when dropped.
struct Receiver {
    child: Child,
    out: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `rotel-agent` binary shipped in the `rotel` PyPI package (`cargo xtask setup`).
fn rotel_bin() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .expect("python3");
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(p.exists(), "rotel not installed: run `cargo xtask setup`");
    p
}

/// rotel with an OTLP/HTTP receiver on `port`, printing every received log record (the debug
/// exporter) to a file the test reads.
fn start_rotel(dir: &Path, port: u16) -> Receiver {
    let out = dir.join(format!("rotel-{port}.out"));
    let grpc = free_port();
    let child = Command::new(rotel_bin())
        .args(["start", "--exporter", "blackhole"])
        .args(["--debug-log", "logs", "--debug-log-verbosity", "detailed"])
        .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
        .args(["--otlp-http-endpoint", &format!("127.0.0.1:{port}")])
        .arg("--pid-file")
        .arg(dir.join(format!("rotel-{port}.pid")))
        .arg("--log-file")
        .arg(dir.join(format!("rotel-{port}.log")))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rotel");
    let r = Receiver { child, out };
    assert!(
        wait_until(Duration::from_secs(20), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "rotel did not listen on {port}"
    );
    r
}

/// Bodies of the log records rotel received, parsed as JSON.
fn rotel_records(r: &Receiver) -> Vec<Value> {
    let text = std::fs::read_to_string(&r.out).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Body: Str("))
        .filter_map(|b| b.strip_suffix(')'))
        .map(|b| serde_json::from_str(b).unwrap_or_else(|e| panic!("bad body {b:?}: {e}")))
        .collect()
}

fn by_seq(lines: &[Value]) -> BTreeMap<u64, Value> {
    lines
        .iter()
        .map(|v| (v["seq"].as_u64().expect("seq"), v.clone()))
        .collect()
}

#[test]
fn otlp_collector_receives_the_exact_records() {
    let dir = temp_dir("otlp");
    let port = free_port();
    let rotel = start_rotel(&dir, port);
    let sink = format!("otlp:http://127.0.0.1:{port},batch_timeout=200ms");
    let probe = Probe::start(&["--events", "process", "--sink", "stdout", "--sink", &sink]);
    let marker = format!("otlp-exact-{}", std::process::id());
    activity(&marker, 5);
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let sent = by_seq(&st.lines);
    assert!(
        st.lines
            .iter()
            .filter(|v| v["kind"] == "process.exec" && v["process"]["args"][1] == marker.as_str())
            .count()
            >= 5
    );
    // Shutdown flushes the queue: everything written to stdout reaches the collector.
    let ok = wait_until(WAIT, || rotel_records(&rotel).len() >= sent.len());
    let got = by_seq(&rotel_records(&rotel));
    assert!(ok, "collector got {} of {} records", got.len(), sent.len());
    assert_eq!(got, sent, "records differ between stdout and the collector");
    let stop = st.lines.last().unwrap();
    assert_eq!(stop["probe"]["losses"]["queue"], 0);
    assert_eq!(stop["probe"]["losses"]["sink"], 0);
    // OTLP framing: resource and record attributes.
    let text = std::fs::read_to_string(&rotel.out).unwrap();
    assert!(text.contains("service.name: Str(tprobe)"), "{text:.2000}");
    assert!(text.contains("tprobe.kind: Str(process.exec)"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn otlp_spool_delivers_every_event_after_an_outage() {
    let dir = temp_dir("spool");
    let port = free_port();
    let spool = dir.join("spool");
    let sink = format!(
        "otlp:http://127.0.0.1:{port},batch_timeout=100ms,spool={},spool_max=64M",
        spool.display()
    );
    let probe = Probe::start(&["--events", "process", "--sink", "stdout", "--sink", &sink]);
    let marker = format!("spool-{}", std::process::id());
    activity(&marker, 10);
    // The collector is down: batches go to the spool.
    assert!(
        wait_until(WAIT, || std::fs::read_dir(&spool)
            .map(|d| d.count() > 0)
            .unwrap_or(false)),
        "nothing spooled"
    );
    std::thread::sleep(Duration::from_millis(500));
    let rotel = start_rotel(&dir, port);
    activity(&marker, 5);
    std::thread::sleep(Duration::from_millis(500));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let sent: BTreeSet<u64> = by_seq(&st.lines).into_keys().collect();
    let ok = wait_until(Duration::from_secs(30), || {
        let got: BTreeSet<u64> = by_seq(&rotel_records(&rotel)).into_keys().collect();
        sent.is_subset(&got)
    });
    let got: BTreeSet<u64> = by_seq(&rotel_records(&rotel)).into_keys().collect();
    assert!(
        ok,
        "missing at the collector: {:?}",
        sent.difference(&got).collect::<Vec<_>>()
    );
    let stop = st.lines.last().unwrap();
    assert_eq!(stop["probe"]["losses"]["spool"], 0);
    assert_eq!(stop["probe"]["losses"]["queue"], 0);
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool drained"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn otlp_without_spool_reports_the_exact_loss() {
    let dir = temp_dir("nospool");
    let port = free_port();
    // A small queue and a short retry budget, so the outage loses records.
    let sink =
        format!("otlp:http://127.0.0.1:{port},batch_timeout=100ms,batch=8,queue=10,retry_max=1s");
    // Records of the size this outage was sized for (ancestors make each several KB).
    let probe = Probe::start(&[
        "--events",
        "process",
        "--ancestors",
        "0",
        "--sink",
        "stdout",
        "--sink",
        &sink,
    ]);
    let marker = format!("nospool-{}", std::process::id());
    activity(&marker, 30);
    let loss = probe.wait_for(WAIT, |v| {
        v["kind"] == "probe.loss"
            && v["loss"]["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("otlp:"))
    });
    assert!(loss.is_some(), "no probe.loss for the otlp sink");
    let rotel = start_rotel(&dir, port);
    // Wait for the sink to recover (its retries back off) before stopping.
    let recovered = wait_until(Duration::from_secs(30), || {
        activity(&marker, 1);
        rotel_records(&rotel)
            .iter()
            .any(|v| v["kind"] == "process.exec" && v["process"]["args"][1] == marker.as_str())
    });
    assert!(recovered, "collector never received anything");
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let sent: BTreeSet<u64> = by_seq(&st.lines).into_keys().collect();
    let stop = st.lines.last().unwrap();
    let l = &stop["probe"]["losses"];
    let reported = l["queue"].as_u64().unwrap() + l["sink"].as_u64().unwrap();
    // The collector may print late batches after earlier ones: wait for the count to settle.
    let mut missing = u64::MAX;
    wait_until(WAIT, || {
        let got: BTreeSet<u64> = by_seq(&rotel_records(&rotel)).into_keys().collect();
        assert!(
            got.is_subset(&sent),
            "records the probe never wrote arrived"
        );
        missing = sent.difference(&got).count() as u64;
        missing == reported
    });
    if missing != reported {
        // The collector may hold the last records it printed in a buffer until it exits: stop
        // it, then count what it wrote.
        let mut rotel = rotel;
        tprobe_tests::terminate(&mut rotel.child, Duration::from_secs(10));
        let got: BTreeSet<u64> = by_seq(&rotel_records(&rotel)).into_keys().collect();
        missing = sent.difference(&got).count() as u64;
    }
    assert!(missing > 0, "the outage lost nothing; test proves nothing");
    assert_eq!(
        reported, missing,
        "reported {l} but {missing} records are missing"
    );
    let from_events: u64 = st
        .lines
        .iter()
        .filter(|v| {
            v["kind"] == "probe.loss"
                && v["loss"]["kind"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("otlp:"))
        })
        .map(|v| v["loss"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(from_events, missing, "probe.loss events add up to the loss");
    let _ = std::fs::remove_dir_all(&dir);
}

fn start_rsyslog(dir: &Path, port: u16) -> Receiver {
    let out = dir.join("syslog.out");
    let conf = dir.join("rsyslog.conf");
    let sock = dir.join("log.sock");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{d}" maxMessageSize="64k")
module(load="imtcp")
module(load="imudp")
module(load="imuxsock" SysSock.Use="off")
input(type="imtcp" port="{port}" address="127.0.0.1")
input(type="imudp" port="{port}" address="127.0.0.1" rcvbufSize="8m")
input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" ParseHostname="on")
template(name="t" type="string" string="%inputname%|%pri%|%protocol-version%|%hostname%|%app-name%|%procid%|%msgid%|%msg%\n")
action(type="omfile" file="{out}" template="t")
"#,
            d = dir.display(),
            sock = sock.display(),
            out = out.display()
        ),
    )
    .unwrap();
    // UDP drops what a busy receiver has no room for: the big buffer keeps a loaded machine
    // from failing a test of the encoding.
    let child = Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd (cargo xtask setup installs it)");
    let r = Receiver { child, out };
    assert!(
        wait_until(Duration::from_secs(20), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()
            && sock.exists()),
        "rsyslogd did not start"
    );
    r
}

#[test]
fn syslog_rfc5424_over_tcp_udp_and_unix_keeps_the_json() {
    let dir = temp_dir("syslog");
    let port = free_port();
    let rs = start_rsyslog(&dir, port);
    let tcp = format!("syslog:tcp://127.0.0.1:{port},facility=local3");
    let udp = format!("syslog:udp://127.0.0.1:{port},facility=local3");
    let unix = format!(
        "syslog:unix://{},facility=local3",
        dir.join("log.sock").display()
    );
    let probe = Probe::start(&[
        "--events",
        "process",
        "--host-name",
        "sinkhost",
        "--sink",
        "stdout",
        "--sink",
        &tcp,
        "--sink",
        &udp,
        "--sink",
        &unix,
    ]);
    let marker = format!("syslog-{}-\"quoted\" \u{e9}", std::process::id());
    activity(&marker, 2);
    std::thread::sleep(Duration::from_millis(500));
    let tprobe_pid = probe.pid();
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let ours: Vec<&Value> = st
        .lines
        .iter()
        .filter(|v| v["kind"] == "process.exec" && v["process"]["args"][1] == marker.as_str())
        .collect();
    assert_eq!(ours.len(), 2);
    for input in ["imtcp", "imudp", "imuxsock"] {
        let ok = wait_until(WAIT, || {
            let text = std::fs::read_to_string(&rs.out).unwrap_or_default();
            let got: Vec<Value> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{input}|")))
                .filter_map(|l| serde_json::from_str(l.splitn(8, '|').nth(7)?).ok())
                .collect();
            ours.iter().all(|v| got.contains(v))
        });
        let text = std::fs::read_to_string(&rs.out).unwrap_or_default();
        assert!(
            ok,
            "{input}: JSON payload not received intact:\n{text:.3000}"
        );
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(&format!("{input}|")) && l.split('|').nth(6) == Some("process.exec")
            })
            .unwrap();
        let f: Vec<&str> = line.splitn(8, '|').collect();
        // local3 (19) * 8 + informational (6)
        assert_eq!(
            &f[1..7],
            &[
                "158",
                "1",
                "sinkhost",
                "tprobe",
                &tprobe_pid.to_string(),
                "process.exec"
            ],
            "{line}"
        );
    }
    // Every record went over TCP, including probe.stop.
    let text = std::fs::read_to_string(&rs.out).unwrap();
    let tcp_count = text.lines().filter(|l| l.starts_with("imtcp|")).count();
    assert_eq!(tcp_count, st.lines.len());
    let _ = std::fs::remove_dir_all(&dir);
}

fn lines_of(path: &Path) -> Vec<Value> {
    let mut data = Vec::new();
    let f = std::fs::File::open(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(f)
            .read_to_end(&mut data)
            .unwrap();
    } else {
        let mut f = f;
        f.read_to_end(&mut data).unwrap();
    }
    assert!(
        data.is_empty() || data.ends_with(b"\n"),
        "{path:?} ends mid-line"
    );
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .collect()
}

#[test]
fn file_rotation_keeps_n_files_and_loses_no_line() {
    let dir = temp_dir("rotate");
    let plain = dir.join("events.json");
    let gz = dir.join("events-gz.json");
    // Process events carry ancestors and capabilities (a few KiB each for root, more when
    // the ancestors carry long argv): 64K files rotate several times over this activity.
    let s1 = format!("file:{},max_size=64K,keep=3", plain.display());
    let s2 = format!("file:{},max_size=64K,keep=2,gzip", gz.display());
    let probe = Probe::start(&[
        "--events", "process", "--sink", "stdout", "--sink", &s1, "--sink", &s2,
    ]);
    let marker = format!("rotate-{}-{}", std::process::id(), "x".repeat(200));
    activity(&marker, 60);
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    for (base, keep, ext) in [(&plain, 3, ""), (&gz, 2, ".gz")] {
        let name = |n: usize| PathBuf::from(format!("{}.{n}{ext}", base.display()));
        let mut files = Vec::new();
        for n in (1..=keep).rev() {
            assert!(name(n).exists(), "{:?} missing", name(n));
            files.push(name(n));
        }
        files.push(base.to_path_buf());
        assert!(!name(keep + 1).exists(), "more than {keep} rotated files");
        let mut all = Vec::new();
        for f in &files {
            let meta = std::fs::metadata(f).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f:?}");
            let lines = lines_of(f);
            if ext.is_empty() {
                // Every file but a single oversized record stays within the size.
                assert!(
                    meta.len() <= 65536 || lines.len() == 1,
                    "{f:?} is {} bytes",
                    meta.len()
                );
            }
            // Every kept file holds at least one record, however large the records are
            // (ancestors with long argv can make one record outgrow the size on its own).
            assert!(!lines.is_empty(), "{f:?} is empty ({} bytes)", meta.len());
            all.extend(lines);
        }
        // The kept files hold the newest records, in order, with no gap across rotations.
        assert!(
            st.lines.len() >= all.len(),
            "{base:?}: {} records kept, {} written",
            all.len(),
            st.lines.len()
        );
        let tail = &st.lines[st.lines.len() - all.len()..];
        assert_eq!(
            all, tail,
            "{base:?}: lines lost or reordered across rotations"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn conforming(format: &str, ready: fn(&Value) -> bool, check: fn(&Value) -> Vec<String>) {
    let probe = Probe::start_ready(&["--events", "process", "--format", format], ready);
    let marker = format!("{format}-{}", std::process::id());
    activity(&marker, 3);
    std::thread::sleep(Duration::from_millis(300));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let mut kinds = BTreeSet::new();
    for v in &st.lines {
        let errs = check(v);
        assert!(errs.is_empty(), "{format}: {errs:?} in {v}");
        let kind = if format == "ecs" {
            &v["event"]["action"]
        } else {
            &v["metadata"]["event_code"]
        };
        kinds.insert(kind.as_str().unwrap().to_owned());
    }
    for k in [
        "probe.start",
        "probe.stop",
        "process.exec",
        "process.fork",
        "process.exit",
    ] {
        assert!(kinds.contains(k), "{format}: no {k} seen in {kinds:?}");
    }
}

#[test]
fn ecs_output_matches_the_vendored_field_set() {
    conforming("ecs", |v| v["event"]["action"] == "probe.start", check_ecs);
}

#[test]
fn ocsf_output_matches_the_vendored_classes() {
    conforming(
        "ocsf",
        |v| v["metadata"]["event_code"] == "probe.start",
        check_ocsf,
    );
}

/// A syslog receiver that is down when events happen gets them all once it is up (TCP retries).
#[test]
fn syslog_tcp_delivers_after_the_receiver_comes_up() {
    let dir = temp_dir("syslog-late");
    let port = free_port();
    let tcp = format!("syslog:tcp://127.0.0.1:{port}");
    let probe = Probe::start(&["--events", "process", "--sink", "stdout", "--sink", &tcp]);
    let marker = format!("syslog-late-{}", std::process::id());
    activity(&marker, 5);
    std::thread::sleep(Duration::from_millis(700));
    let rs = start_rsyslog(&dir, port);
    activity(&marker, 2);
    let seen = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&rs.out)
            .unwrap_or_default()
            .matches(marker.as_str())
            .count()
            >= 7
    });
    assert!(seen, "events from the outage never arrived");
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let got = || -> BTreeSet<u64> {
        std::fs::read_to_string(&rs.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.splitn(8, '|').nth(7)?).ok())
            .filter_map(|v| v["seq"].as_u64())
            .collect()
    };
    let sent: BTreeSet<u64> = by_seq(&st.lines).into_keys().collect();
    let ok = wait_until(WAIT, || sent.is_subset(&got()));
    assert!(
        ok,
        "missing: {:?}",
        sent.difference(&got()).collect::<Vec<_>>()
    );
    assert_eq!(st.lines.last().unwrap()["probe"]["losses"]["queue"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--pretty`: readable lines, no colour codes on a pipe.
#[test]
fn pretty_prints_readable_lines() {
    let marker = format!("pretty-{}", std::process::id());
    let child = Command::new(tprobe_tests::tprobe_bin())
        .args(["run", "--events", "process", "--pretty", "--duration", "3s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    activity(&marker, 1);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "colour codes on a pipe");
    let first = text.lines().next().unwrap();
    assert!(
        first.contains("probe.start") && !first.starts_with('{'),
        "{first}"
    );
    let exec = text
        .lines()
        .find(|l| l.contains("process.exec") && l.contains(&marker))
        .unwrap_or_else(|| panic!("no exec line:\n{text:.3000}"));
    assert!(
        exec.contains(&format!("/bin/true {marker}")) || exec.contains(&format!("true {marker}")),
        "{exec}"
    );
    assert!(text.lines().last().unwrap().contains("probe.stop"));
}
