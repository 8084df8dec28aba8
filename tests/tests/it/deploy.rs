//! Deployment: `/metrics` and `/healthz`, SIGTERM flushing, the Helm chart (rendered by Helm's
//! engine, validated in strict mode) and the container image run the way the DaemonSet runs it.
use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tprobe_tests::{podman::Podman, tprobe_bin, Probe, WAIT};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv python with the PyPI tools (`cargo xtask setup` makes it).
fn python() -> PathBuf {
    let p = std::env::var_os("TPROBE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/py-venv/bin/python"));
    assert!(
        p.exists(),
        "{} missing: run `cargo xtask setup`",
        p.display()
    );
    p
}

/// `GET path` on `addr`: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response {resp:?}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

/// Parses Prometheus text with the reference parser (prometheus_client, PyPI); panics on
/// anything it rejects.
fn parse_metrics(text: &str) -> Samples {
    let mut child = Command::new(python())
        .args([
            "-c",
            "import sys, json\n\
             from prometheus_client.parser import text_string_to_metric_families as p\n\
             fams = list(p(sys.stdin.read()))\n\
             names = [f.name for f in fams]\n\
             assert len(names) == len(set(names)), 'duplicate families'\n\
             print(json.dumps([[s.name, s.labels, s.value] for f in fams for s in f.samples]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not valid Prometheus text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sample(s: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

fn scrape(addr: &str) -> Samples {
    let (code, body) = http_get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    parse_metrics(&body)
}

fn metrics_addr(start: &Value) -> String {
    start["probe"]["metrics"]
        .as_str()
        .unwrap_or_else(|| panic!("probe.start has no metrics address: {start}"))
        .to_owned()
}

fn run_true(n: usize) {
    for _ in 0..n {
        Command::new("/bin/true").status().unwrap();
    }
}

fn wait_healthy(addr: &str) {
    let t = Instant::now();
    loop {
        let (code, body) = http_get(addr, "/healthz");
        if code == 200 {
            return;
        }
        assert!(code == 503 && body.starts_with("starting"), "{code} {body}");
        assert!(t.elapsed() < WAIT, "/healthz never became ok: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_with_events() {
    let probe = Probe::start(&["--events", "process", "--metrics-addr", "127.0.0.1:0"]);
    let addr = metrics_addr(&probe.lines()[0]);
    // 503 "starting" until the drain loop first turns, then ok.
    wait_healthy(&addr);
    let (code, body) = http_get(&addr, "/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));
    assert_eq!(http_get(&addr, "/nope").0, 404);

    let before = scrape(&addr);
    for name in [
        "tprobe_events_total",
        "tprobe_lines_total",
        "tprobe_ringbuf_records_total",
        "tprobe_ringbuf_used_bytes",
        "tprobe_ringbuf_size_bytes",
        "tprobe_process_table_entries",
        "tprobe_pipeline_queue_batches",
        "tprobe_pipeline_queue_events",
        "tprobe_losses_total",
        "tprobe_enrich_failures_total",
        "tprobe_hook_attached",
        "tprobe_healthy",
    ] {
        assert!(
            before.iter().any(|(n, _, _)| n == name),
            "{name} missing from /metrics"
        );
    }
    let exec = |s: &Samples| sample(s, "tprobe_events_total", &[("kind", "process.exec")]).unwrap();
    assert_eq!(
        sample(&before, "tprobe_ringbuf_size_bytes", &[]),
        Some((8u64 << 20) as f64)
    );
    assert_eq!(
        sample(
            &before,
            "tprobe_losses_total",
            &[("stage", "ringbuf"), ("kind", "process.exec")]
        ),
        Some(0.0)
    );
    assert_eq!(sample(&before, "tprobe_healthy", &[]), Some(1.0));
    assert!(sample(&before, "tprobe_process_table_entries", &[]).unwrap() > 0.0);

    // Our own processes, so the counters must move by at least this much.
    let mut pids = Vec::new();
    for _ in 0..10 {
        let mut c = Command::new("/bin/true").spawn().unwrap();
        pids.push(c.id());
        c.wait().unwrap();
    }
    for pid in &pids {
        probe
            .wait_for(WAIT, |v| {
                v["kind"] == "process.exit" && v["process"]["pid"] == *pid
            })
            .unwrap_or_else(|| panic!("no exit event for {pid}"));
    }
    let after = scrape(&addr);
    assert!(
        exec(&after) >= exec(&before) + 10.0,
        "exec counter {} -> {}",
        exec(&before),
        exec(&after)
    );
    let get = |s: &Samples, n| sample(s, n, &[]).unwrap();
    assert!(get(&after, "tprobe_lines_total") >= get(&before, "tprobe_lines_total") + 30.0);
    assert!(
        get(&after, "tprobe_ringbuf_records_total")
            >= get(&before, "tprobe_ringbuf_records_total") + 30.0
    );
    // The exposition agrees with the probe's own report.
    let st = probe.stop();
    let stop = st.lines.last().unwrap();
    assert!(stop["probe"]["events"]["process.exec"].as_f64().unwrap() >= exec(&after));
}

/// `/metrics` counts alerts by rule and level, and times the analyze stage (one event in 16),
/// in agreement with probe.stop's `analyze` report.
#[test]
fn metrics_count_alerts_by_rule_and_time_the_analyze_stage() {
    let marker = format!("tprobe-metrics-alert-{}", std::process::id());
    let d = std::env::temp_dir().join(&marker);
    std::fs::create_dir_all(&d).unwrap();
    let rule = d.join("rule.yml");
    let id = "0d7c0000-7470-4000-8000-0000000000f1";
    std::fs::write(
        &rule,
        format!(
            "title: Marker shell\nid: {id}\nlogsource:\n  product: linux\n  category: \
             process_creation\ndetection:\n  s:\n    CommandLine|contains: '{marker}'\n  \
             condition: s\nlevel: high\n"
        ),
    )
    .unwrap();
    let probe = Probe::start(&[
        "--events",
        "process",
        "--rules",
        rule.to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let addr = metrics_addr(&probe.lines()[0]);
    let before = scrape(&addr);
    assert_eq!(
        sample(&before, "tprobe_alerts_total", &[("rule", id)]),
        None,
        "an alert counted before any"
    );
    // 40 execs and their exits: more than two timed events, whatever the phase.
    for _ in 0..20 {
        Command::new("/bin/sh")
            .args(["-c", "exit 0", &marker])
            .status()
            .unwrap();
    }
    probe.wait_n(WAIT, 20, |v| {
        v["kind"] == "alert" && v["alert"]["rule"]["id"] == id
    });
    let after = scrape(&addr);
    assert_eq!(
        sample(
            &after,
            "tprobe_alerts_total",
            &[("rule", id), ("level", "high")]
        ),
        Some(20.0)
    );
    let count = sample(&after, "tprobe_rule_eval_seconds_count", &[]).unwrap();
    let sum = sample(&after, "tprobe_rule_eval_seconds_sum", &[]).unwrap();
    assert!(count >= 2.0 && sum > 0.0, "count {count} sum {sum}");
    let st = probe.stop();
    let _ = std::fs::remove_dir_all(&d);
    let an = &st.lines.last().unwrap()["probe"]["analyze"];
    assert_eq!(an["alerts"], 20, "{an}");
    let evaluated = an["evaluated"].as_f64().unwrap();
    // Every event is counted; one in 16 is timed and observed.
    assert!(
        evaluated >= 40.0 && count <= evaluated / 16.0 + 1.0,
        "{an} {count}"
    );
    assert!(an["eval_seconds"].as_f64().unwrap() > 0.0, "{an}");
}
/// Spawns `tprobe run ARGS` with stdout on a pipe the test controls; returns the child, a reader
/// positioned after the `probe.start` line, and the metrics address.
fn spawn_unread(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = Command::new(tprobe_bin())
        .arg("run")
        .args(args)
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let start: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("first line {line:?}: {e}"));
    assert_eq!(start["kind"], "probe.start");
    let addr = metrics_addr(&start);
    (child, out, addr)
}

/// Makes process events until `/healthz` answers 503 with `want` in its body.
fn stall_until(addr: &str, want: &str, limit: Duration) -> String {
    let t = Instant::now();
    loop {
        let (code, body) = http_get(addr, "/healthz");
        if code == 503 && body.contains(want) {
            return body;
        }
        assert!(
            t.elapsed() < limit,
            "/healthz never reported {want:?}; last: {code} {body}"
        );
        run_true(20);
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st, t.elapsed());
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("tprobe did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A reader for the output from here on (the reader comes back): every line, once it ends.
fn read_rest(
    mut out: BufReader<std::process::ChildStdout>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut buf = String::new();
        while out.read_line(&mut buf).unwrap_or(0) > 0 {
            lines.push(std::mem::take(&mut buf));
        }
        lines
    })
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// Nobody reads the output: the sink write blocks (503), then the queue fills and the drain
/// itself stops (503); once the reader is back, /healthz recovers.
#[test]
fn healthz_fails_when_the_drain_stalls_and_recovers() {
    let (mut child, out, addr) = spawn_unread(&[
        "--events",
        "process",
        "--stall-timeout",
        "1s",
        "--flush-interval",
        "1ms",
    ]);
    wait_healthy(&addr);
    stall_until(&addr, "sink write blocked", Duration::from_secs(60));
    stall_until(&addr, "drain stalled", Duration::from_secs(120));
    let m = scrape(&addr);
    assert_eq!(sample(&m, "tprobe_healthy", &[]), Some(0.0));
    let full = |n: &str| sample(&m, n, &[]).unwrap();
    assert!(
        full("tprobe_pipeline_queue_batches") == full("tprobe_pipeline_queue_capacity_batches")
            || full("tprobe_pipeline_queue_events")
                >= full("tprobe_pipeline_queue_capacity_events"),
        "the queue is full (in batches or in events) when the drain stalls: {m:?}"
    );
    assert!(sample(&m, "tprobe_sink_write_blocked_seconds", &[]).unwrap() > 1.0);

    // The reader comes back.
    let reader = read_rest(out);
    let t = Instant::now();
    loop {
        let (code, body) = http_get(&addr, "/healthz");
        if code == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no recovery: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (st, _) = wait_exit(&mut child, Duration::from_secs(30));
    let err = stderr_of(&mut child);
    assert!(st.success(), "{st:?} {err}");
    let lines = reader.join().unwrap();
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["kind"], "probe.stop");
    assert_eq!(last["probe"]["losses"]["ringbuf"], 0);
}

/// Nobody reads the output while files are opened as fast as one thread can: the queue to the
/// pipeline stops at its bound in events (memory stays bounded), the ring buffer takes the
/// rest and the kernel's drops are counted; once the reader is back, every line is numbered
/// without a gap and `probe.stop` reports the losses.
#[test]
fn a_stuck_output_bounds_the_queue_in_events_and_counts_the_losses() {
    let d = std::env::temp_dir().join(format!("tprobe-queue-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("f");
    std::fs::write(&f, b"x").unwrap();
    // A bound of our own, so the test also shows the key is honoured.
    let cfg = d.join("tprobe.yaml");
    std::fs::write(&cfg, "limits:\n  queue_events: 2000\n").unwrap();
    let (mut child, out, addr) = spawn_unread(&[
        "--config",
        cfg.to_str().unwrap(),
        "--events",
        "file.open",
        "--file-include",
        d.to_str().unwrap(),
        "--flush-interval",
        "1ms",
        "--ringbuf-size",
        "1M",
    ]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, f) = (stop.clone(), f.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..1000 {
                    // Written to: read-only opens are left out by default.
                    drop(std::fs::OpenOptions::new().write(true).open(&f));
                }
            }
        })
    };
    let t = Instant::now();
    let m = loop {
        let m = scrape(&addr);
        let lost: f64 = m
            .iter()
            .filter(|(n, l, _)| {
                n == "tprobe_losses_total" && l.get("stage").map(String::as_str) == Some("ringbuf")
            })
            .map(|s| s.2)
            .sum();
        if lost > 0.0 {
            break m;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no ring buffer loss: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let get = |n: &str| sample(&m, n, &[]).unwrap();
    let cap = get("tprobe_pipeline_queue_capacity_events");
    assert_eq!(cap, 2000.0);
    // The drain waits at the bound; one batch (4096 records) may pass it.
    assert!(
        get("tprobe_pipeline_queue_events") <= cap + 4096.0,
        "queue past its bound: {m:?}"
    );
    assert!(
        get("tprobe_pipeline_queue_batches") < get("tprobe_pipeline_queue_capacity_batches"),
        "the bound in events held first: {m:?}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    let reader = read_rest(out);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (st, _) = wait_exit(&mut child, Duration::from_secs(60));
    let err = stderr_of(&mut child);
    assert!(st.success(), "{st:?} {err}");
    let lines: Vec<Value> = reader
        .join()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["seq"], i as u64 + 2, "numbered without a gap");
    }
    let last = lines.last().unwrap();
    assert_eq!(last["kind"], "probe.stop");
    assert!(
        last["probe"]["losses"]["ringbuf"].as_u64().unwrap() > 0,
        "{last}"
    );
    assert!(
        lines.iter().any(|v| v["kind"] == "probe.loss"),
        "the losses were reported as they happened"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A stuck output cannot hold the shutdown past `--shutdown-timeout`.
#[test]
fn shutdown_with_a_stuck_output_ends_within_the_budget() {
    let (mut child, _out, addr) = spawn_unread(&[
        "--events",
        "process",
        "--stall-timeout",
        "1s",
        "--shutdown-timeout",
        "2s",
    ]);
    stall_until(&addr, "sink write blocked", Duration::from_secs(60));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (st, took) = wait_exit(&mut child, Duration::from_secs(15));
    let err = stderr_of(&mut child);
    // The budget is 2 s; the rest is slack for a busy machine (5 s was once missed by 10 ms).
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("shutdown took longer than 2s"), "{err}");
}

/// Events still in the ring buffer when SIGTERM arrives are all written before the exit.
#[test]
fn sigterm_flushes_every_event_still_in_the_ring_buffer() {
    // A long flush interval: nothing is read between ticks of the 1 s loss poll, so the
    // events below are still in the ring buffer when the signal comes.
    let probe = Probe::start(&[
        "--events",
        "process",
        "--flush-interval",
        "1h",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let addr = metrics_addr(&probe.lines()[0]);
    let marker = format!("tprobe-flush-{}", std::process::id());
    let mut pids = Vec::new();
    let mut queued = 0.0;
    // The loss poll drains once a second: retry until a round is caught still queued.
    for _ in 0..5 {
        let round: Vec<u32> = (0..20)
            .map(|i| {
                let mut c = Command::new("/bin/sh")
                    .args(["-c", &format!("exit {}", i % 7), &marker])
                    .spawn()
                    .unwrap();
                let pid = c.id();
                c.wait().unwrap();
                pid
            })
            .collect();
        pids.extend(round);
        queued = sample(&scrape(&addr), "tprobe_ringbuf_used_bytes", &[]).unwrap();
        if queued > 0.0 {
            break;
        }
    }
    assert!(queued > 0.0, "never caught events still in the ring buffer");
    let t = Instant::now();
    let st = probe.stop();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        t.elapsed()
    );
    assert!(st.status.success(), "{:?} {}", st.status, st.stderr);
    for (i, pid) in pids.iter().enumerate() {
        let exec = st
            .lines
            .iter()
            .find(|v| v["kind"] == "process.exec" && v["process"]["pid"] == *pid)
            .unwrap_or_else(|| panic!("exec of {pid} lost"));
        assert_eq!(exec["process"]["args"][3], marker.as_str());
        let exit = st
            .lines
            .iter()
            .find(|v| v["kind"] == "process.exit" && v["process"]["pid"] == *pid)
            .unwrap_or_else(|| panic!("exit of {pid} lost"));
        assert_eq!(exit["exit"]["code"], (i % 20 % 7) as u64);
    }
    let stop = st.lines.last().unwrap();
    assert_eq!(stop["kind"], "probe.stop");
    assert_eq!(stop["probe"]["losses"]["ringbuf"], 0);
    tprobe_tests::assert_seq_contiguous(&st.lines);
}

/// Renders the chart once per `name=values-file` with Helm's engine and validates every object
/// in strict mode (tests/deploy/render_chart.py). Returns name -> (objects, errors).
fn render_chart(sets: &[(&str, &Path)]) -> serde_json::Map<String, Value> {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/deploy/render_chart.py"))
        .arg(root().join("deploy/helm/tprobe"));
    for (name, path) in sets {
        cmd.arg(format!("{name}={}", path.display()));
    }
    let out = cmd.output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "render_chart.py: {e}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v.as_object().unwrap().clone()
}

fn objects<'a>(r: &'a serde_json::Map<String, Value>, set: &str) -> &'a [Value] {
    let errs = r[set]["errors"].as_array().unwrap();
    assert!(errs.is_empty(), "{set}: {errs:#?}");
    r[set]["objects"].as_array().unwrap()
}

fn find<'a>(objs: &'a [Value], kind: &str) -> Option<&'a Value> {
    objs.iter().find(|o| o["kind"] == kind)
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tprobe-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn chart_renders_and_every_object_validates_strictly() {
    let chart = root().join("deploy/helm/tprobe");
    let dir = temp_dir("chart");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "extraEnv:\n  - name: X\n    valu: \"1\"\n").unwrap();
    let unscrapable = dir.join("unscrapable.yaml");
    std::fs::write(
        &unscrapable,
        "metrics:\n  serviceMonitor:\n    enabled: true\n",
    )
    .unwrap();
    let r = render_chart(&[
        ("default", Path::new("-")),
        ("lp", &chart.join("ci/least-privilege-values.yaml")),
        ("full", &chart.join("ci/full-values.yaml")),
        ("bad", &bad),
        ("unscrapable", &unscrapable),
    ]);
    let _ = std::fs::remove_dir_all(&dir);

    let def = objects(&r, "default");
    let ds = find(def, "DaemonSet").expect("a DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{"operator": "Exists"}])
    );
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(c["securityContext"]["privileged"], true);
    assert_eq!(c["env"][0]["name"], "NODE_NAME");
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    for p in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(c[p]["httpGet"]["path"], "/healthz", "{p}");
        assert_eq!(c[p]["httpGet"]["host"], "127.0.0.1", "{p}");
    }
    let mounts = c["volumeMounts"].as_array().unwrap();
    for path in [
        "/sys/kernel/btf",
        "/sys/kernel/tracing",
        "/host/proc",
        "/run/containerd",
        "/etc/passwd",
    ] {
        let m = mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("no mount at {path}"));
        assert_eq!(m["readOnly"], true, "{path}");
    }
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(find(def, "ServiceMonitor").is_none());
    assert!(find(def, "ConfigMap").is_none());
    assert!(
        !c["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("--events")),
        "no --events unless asked: it would override the config file"
    );

    let lp = objects(&r, "lp");
    let sc = &find(lp, "DaemonSet").unwrap()["spec"]["template"]["spec"]["containers"][0]
        ["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        sc["capabilities"]["add"],
        serde_json::json!(["BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE", "SYS_RESOURCE"])
    );

    let full = objects(&r, "full");
    let ds = find(full, "DaemonSet").unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"--config=/etc/tprobe/config.yaml"),
        "{args:?}"
    );
    assert!(args.contains(&"--metrics-addr=$(HOST_IP):9810"), "{args:?}");
    assert!(args.contains(&"--events=process,file"), "{args:?}");
    assert!(
        args.iter().any(|a| a.starts_with("--otlp-endpoint=")),
        "{args:?}"
    );
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    let cm = find(full, "ConfigMap").expect("ConfigMap");
    assert!(cm["data"]["config.yaml"]
        .as_str()
        .unwrap()
        .contains("events: process"));
    let sm = find(full, "ServiceMonitor").expect("ServiceMonitor");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert!(find(full, "Service").is_some());
    // Not loopback: the kubelet probes the pod IP (the node's, with hostNetwork).
    assert!(pod["containers"][0]["livenessProbe"]["httpGet"]
        .get("host")
        .is_none());

    // The validation is strict: an unknown field fails, and so does a ServiceMonitor that
    // could not scrape a loopback address.
    let bad = r["bad"]["errors"].as_array().unwrap();
    assert!(
        bad.iter()
            .any(|e| e.as_str().unwrap().contains("'valu' was unexpected")),
        "{bad:?}"
    );
    let uns = r["unscrapable"]["errors"].as_array().unwrap();
    assert!(
        uns.iter()
            .any(|e| e.as_str().unwrap().contains("cannot be scraped")),
        "{uns:?}"
    );
}

#[test]
fn containerfiles_share_the_final_stage() {
    let tail = |p: &str| -> Vec<String> {
        let s = std::fs::read_to_string(root().join(p)).unwrap();
        s.lines()
            .filter(|l| l.starts_with("ENTRYPOINT") || l.starts_with("CMD"))
            .map(str::to_owned)
            .collect()
    };
    let full = tail("deploy/Containerfile");
    assert_eq!(full.len(), 2);
    assert_eq!(full, tail("deploy/Containerfile.prebuilt"));
    let multi = std::fs::read_to_string(root().join("deploy/Containerfile")).unwrap();
    assert!(multi.contains("AS build") && multi.contains("FROM scratch"));
}

/// The static tprobe binary (`TPROBE_MUSL_BIN`, else built here for the musl target).
fn musl_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TPROBE_MUSL_BIN") {
        return p.into();
    }
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // Build as a plain `cargo build` would, not with this test run's variables.
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
            cmd.env_remove(k);
        }
    }
    let st = cmd
        .args([
            "build",
            "--target",
            "x86_64-unknown-linux-musl",
            "-p",
            "probe-user",
            "--bin",
            "tprobe",
        ])
        .current_dir(root())
        .status()
        .unwrap();
    assert!(st.success(), "musl build failed");
    root().join("target/x86_64-unknown-linux-musl/debug/tprobe")
}

/// `podman run` flags for the rendered DaemonSet's pod: what the kubelet would set up.
fn podman_flags(ds: &Value, scratch: &Path, node: &str) -> (Vec<String>, String, Vec<String>) {
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    let mut f: Vec<String> = Vec::new();
    if pod["hostPID"] == true {
        f.push("--pid=host".into());
    }
    if pod["hostNetwork"] == true {
        f.push("--network=host".into());
    } else {
        f.push("--network=none".into());
    }
    if sc["privileged"] == true {
        f.push("--privileged".into());
    } else {
        f.push("--cap-drop=all".into());
        for cap in sc["capabilities"]["add"].as_array().unwrap() {
            f.push(format!("--cap-add=CAP_{}", cap.as_str().unwrap()));
        }
        if sc["allowPrivilegeEscalation"] == false {
            f.push("--security-opt=no-new-privileges".into());
        }
        if sc["seccompProfile"]["type"] == "Unconfined" {
            f.push("--security-opt=seccomp=unconfined".into());
        }
        if sc["appArmorProfile"]["type"] == "Unconfined" {
            f.push("--security-opt=apparmor=unconfined".into());
        }
    }
    if sc["readOnlyRootFilesystem"] == true {
        f.push("--read-only".into());
    }
    f.push(format!(
        "--user={}:{}",
        sc["runAsUser"].as_u64().unwrap(),
        sc["runAsGroup"].as_u64().unwrap()
    ));
    let volumes = pod["volumes"].as_array().unwrap();
    for m in c["volumeMounts"].as_array().unwrap() {
        let v = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
        let host = v["hostPath"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("only hostPath volumes here: {v}"));
        let mut src = PathBuf::from(host);
        // DirectoryOrCreate on a host without it: a private empty dir instead of creating it.
        if !src.exists() && v["hostPath"]["type"] == "DirectoryOrCreate" {
            src = scratch.join(m["name"].as_str().unwrap());
            std::fs::create_dir_all(&src).unwrap();
        }
        let ro = if m["readOnly"] == true { ":ro" } else { "" };
        f.push(format!(
            "--volume={}:{}{ro}",
            src.display(),
            m["mountPath"].as_str().unwrap()
        ));
    }
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("spec.nodeName") => node.to_owned(),
            Some("status.hostIP") => "127.0.0.1".to_owned(),
            Some(other) => panic!("unexpected fieldRef {other}"),
            None => e["value"].as_str().unwrap().to_owned(),
        };
        f.push(format!("--env={name}={value}"));
    }
    f.push(format!(
        "--stop-timeout={}",
        pod["terminationGracePeriodSeconds"].as_u64().unwrap()
    ));
    let image = c["image"].as_str().unwrap().to_owned();
    let args = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    (f, image, args)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Builds the image from the static binary and runs it as the chart's DaemonSet runs it (default
/// privileged values, then least privilege): a host process shows up with its host pid, the
/// probe itself never does, /healthz answers on the node, and a stop flushes.
#[test]
fn image_runs_like_the_daemonset() {
    let bin = musl_binary();
    let pm = Podman::private("tprobe-image");
    let ctx = pm.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(&bin, ctx.join("tprobe")).unwrap();
    std::fs::copy(
        root().join("deploy/Containerfile.prebuilt"),
        ctx.join("Containerfile"),
    )
    .unwrap();
    // The rule pack goes into the image, and the chart turns it on.
    let rules = ctx.join("rules");
    for f in std::fs::read_dir(root().join("rules")).unwrap().flatten() {
        let sub = rules.join(f.file_name());
        std::fs::create_dir_all(&sub).unwrap();
        for r in std::fs::read_dir(f.path()).unwrap().flatten() {
            std::fs::copy(r.path(), sub.join(r.file_name())).unwrap();
        }
    }

    let chart = root().join("deploy/helm/tprobe");
    for (mode, base) in [
        ("privileged", None),
        (
            "least-privilege",
            Some(chart.join("ci/least-privilege-values.yaml")),
        ),
    ] {
        let port = free_port();
        let mut values = format!("metrics:\n  port: {port}\n");
        if let Some(b) = &base {
            values.push_str(&std::fs::read_to_string(b).unwrap());
        }
        let vfile = pm.dir.join(format!("{mode}.yaml"));
        std::fs::write(&vfile, values).unwrap();
        let r = render_chart(&[(mode, &vfile)]);
        let ds = find(objects(&r, mode), "DaemonSet").unwrap().clone();
        let node = format!("node-{mode}-{}", std::process::id());
        let (flags, image, args) = podman_flags(&ds, &pm.dir, &node);
        // The chart's image name, built here from the host-built binary.
        pm.ok(&["build", "-q", "-t", &image, ctx.to_str().unwrap()]);

        let name = format!("tprobe-{mode}-{}", std::process::id());
        let mut cmd = pm.cmd();
        cmd.args(["run", "--rm", "--name", &name])
            .args(&flags)
            .arg(&image)
            .args(&args);
        let probe = Probe::start_command(cmd);
        let start = probe.lines()[0].clone();
        assert!(
            start["probe"]["analyze"]["rules"].as_u64().unwrap_or(0) >= 30,
            "the image's rule pack is loaded: {}",
            start["probe"]["analyze"]
        );
        assert_eq!(
            start["host"]["name"],
            node.as_str(),
            "NODE_NAME -> host.name"
        );
        // tprobe sees itself with its host pid (host pid namespace), and filters it.
        let host_pid: u64 = pm
            .ok(&["inspect", "--format", "{{.State.Pid}}", &name])
            .parse()
            .unwrap();
        assert_eq!(start["probe"]["pid"], host_pid, "{mode}");
        let hooks = start["probe"]["hooks"].as_array().unwrap();
        // Every hook, but the module hooks of a kernel without module support (this one).
        assert!(
            hooks.iter().all(|h| h["attached"] == true
                || h["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("without module support"))),
            "{mode}: {hooks:?}"
        );

        // The kubelet's probe: /healthz on the node's loopback at the chart's port.
        let t = Instant::now();
        while http_get(&format!("127.0.0.1:{port}"), "/healthz").0 != 200 {
            assert!(t.elapsed() < WAIT, "{mode}: /healthz not ok");
            std::thread::sleep(Duration::from_millis(100));
        }

        let marker = format!("tprobe-image-{mode}");
        // Alive while its exec event is enriched, so `exe` comes from /host/proc.
        let mut child = Command::new("/bin/sh")
            .args(["-c", "sleep 1; exit 3", &marker])
            .spawn()
            .unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let exec = probe
            .wait_for(WAIT, |v| {
                v["kind"] == "process.exec" && v["process"]["pid"] == pid
            })
            .unwrap_or_else(|| panic!("{mode}: no exec event for host pid {pid}"));
        assert_eq!(exec["process"]["args"][3], marker.as_str());
        assert_eq!(
            exec["process"]["exe"], "/usr/bin/dash",
            "{mode}: exe via /host/proc"
        );
        assert_eq!(
            exec["process"]["user"], "root",
            "{mode}: the host's /etc/passwd"
        );
        let exit = probe
            .wait_for(WAIT, |v| {
                v["kind"] == "process.exit" && v["process"]["pid"] == pid
            })
            .unwrap_or_else(|| panic!("{mode}: no exit event for {pid}"));
        assert_eq!(exit["exit"]["code"], 3);

        // What the kubelet does on delete: SIGTERM, then SIGKILL after the grace period.
        let t = Instant::now();
        pm.ok(&["stop", "-t", "30", &name]);
        assert!(
            t.elapsed() < Duration::from_secs(25),
            "{mode}: stop took {:?}",
            t.elapsed()
        );
        let st = probe.finish(Duration::from_secs(30));
        assert_eq!(st.lines.last().unwrap()["kind"], "probe.stop", "{mode}");
        let own: Vec<&Value> = st
            .lines
            .iter()
            .filter(|v| v["process"]["pid"] == host_pid)
            .collect();
        assert!(own.is_empty(), "{mode}: the probe reported itself: {own:?}");
        tprobe_tests::assert_seq_contiguous(&st.lines);
    }
}
