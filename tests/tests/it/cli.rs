//! Filters (kernel and userspace), the config file and its reload, friendly failures, and the
//! discoverability commands (`events`, `schema`, `check`).
use std::{
    io::Write as _,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tprobe_tests::{assert_seq_contiguous, is, schema_violations, tprobe_bin, Probe, WAIT};

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn dir(tag: &str) -> PathBuf {
    let d = PathBuf::from(format!(
        "/tmp/tprobe-cli-{tag}-{}-{}",
        std::process::id(),
        nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A copy of /bin/true named `name` in `d`: its own comm and exe.
fn copy_true(d: &Path, name: &str) -> String {
    let p = d.join(name);
    std::fs::copy("/bin/true", &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_string_lossy().into_owned()
}

/// Runs `sh -c script` to the end; returns the shell's pid.
fn sh(script: &str) -> u32 {
    let mut c = Command::new("/bin/sh")
        .args(["-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = c.id();
    assert!(c.wait().unwrap().success(), "{script}");
    pid
}

/// A shell that waits for `go` to exist, then runs `then`.
fn gated(go: &Path, then: &str) -> Child {
    Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "while [ ! -e {} ]; do sleep 0.02; done; {then}",
                go.display()
            ),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Events with a process context (not `probe.*`).
fn data(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|v| v["process"].is_object()).collect()
}

fn short_name(tag: &str) -> String {
    // comm holds 15 bytes: keep it short and unique per test run.
    format!("{tag}{}", (nanos() % 100_000_000) as u64)
}

#[test]
fn comm_and_exe_filters_include_and_exclude() {
    let d = dir("comm");
    let name = short_name("tpc");
    let m = copy_true(&d, &name);
    let other = short_name("tpo");
    let o = copy_true(&d, &other);

    let by_comm = Probe::start(&["--events", "process.exec,process.exit", "--comm", &name]);
    let exe_glob = format!("{}/tpc*", d.display());
    let by_exe = Probe::start(&["--events", "process.exec", "--exe", &exe_glob]);
    // The same shell runs matching and non-matching programs.
    let shpid = sh(&format!("{m}; {o}; /bin/true; {m}"));

    let hits = by_comm.wait_n(WAIT, 2, |v| {
        v["kind"] == "process.exit" && v["process"]["comm"] == name && v["process"]["ppid"] == shpid
    });
    assert_eq!(hits.len(), 2, "both runs of {name} reported");
    let hits = by_exe.wait_n(WAIT, 2, |v| {
        v["kind"] == "process.exec" && v["process"]["ppid"] == shpid
    });
    assert_eq!(hits.len(), 2);
    std::thread::sleep(Duration::from_millis(300));

    let st = by_comm.stop();
    let ours = data(&st.lines);
    assert!(ours.len() >= 4, "2 execs and 2 exits: {ours:?}");
    for v in ours {
        assert_eq!(v["process"]["comm"], name.as_str(), "only {name}: {v}");
    }
    assert!(
        st.lines.last().unwrap()["probe"]["filtered"]
            .as_u64()
            .unwrap()
            >= 2
    );
    let st = by_exe.stop();
    for v in data(&st.lines) {
        assert_eq!(v["process"]["exe"], m.as_str(), "only {m}: {v}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn uid_filter_is_decided_in_the_kernel() {
    let probe = Probe::start(&["--events", "process.exec", "--uid", "nobody"]);
    let shpid = sh("setpriv --reuid=65534 --regid=65534 --clear-groups /bin/true; /bin/true");
    let ev = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec" && v["process"]["ppid"] == shpid
        })
        .expect("the exec as nobody");
    assert_eq!(ev["process"]["uid"], 65534);
    assert_eq!(ev["process"]["comm"], "true");
    std::thread::sleep(Duration::from_millis(300));
    let st = probe.stop();
    for v in data(&st.lines) {
        assert_eq!(v["process"]["uid"], 65534, "{v}");
    }
    let start = &st.lines[0]["probe"]["config"]["filters"];
    assert_eq!(start["uids"], json!([65534]));
}

#[test]
fn pid_filter_and_follow_catch_grandchildren() {
    let d = dir("pid");
    // Without --follow: only the shell itself (its forks and its final exec).
    let go = d.join("go1");
    let mut driver = gated(&go, "/bin/sh -c '/bin/true; /bin/true'; exec /bin/true");
    let dpid = driver.id();
    let probe = Probe::start(&["--events", "process", "--pid", &dpid.to_string()]);
    std::fs::write(&go, b"").unwrap();
    let outsider = sh("/bin/true");
    driver.wait().unwrap();
    probe
        .wait_for(WAIT, |v| is(v, "process.exit", dpid))
        .expect("exit of the filtered pid");
    let st = probe.stop();
    let ours = data(&st.lines);
    assert!(ours.iter().any(|v| is(v, "process.exec", dpid)));
    assert!(ours.iter().any(|v| is(v, "process.fork", dpid)));
    for v in &ours {
        assert_eq!(v["process"]["pid"], dpid, "only pid {dpid}: {v}");
    }
    assert!(!ours.iter().any(|v| v["process"]["pid"] == outsider));

    // With --follow: children and grandchildren join in the kernel at fork.
    let go = d.join("go2");
    let mut driver = gated(&go, "/bin/sh -c '/bin/true; /bin/true'; exec /bin/true");
    let dpid = driver.id();
    let probe = Probe::start(&[
        "--events",
        "process",
        "--pid",
        &dpid.to_string(),
        "--follow",
    ]);
    std::fs::write(&go, b"").unwrap();
    let outsider = sh("/bin/true");
    driver.wait().unwrap();
    probe
        .wait_for(WAIT, |v| is(v, "process.exit", dpid))
        .expect("exit of the root");
    std::thread::sleep(Duration::from_millis(300));
    let st = probe.stop();
    let ours = data(&st.lines);
    // The tree from the fork events: root -> inner sh -> /bin/true (grandchildren).
    let mut tree = vec![dpid as u64];
    for v in &ours {
        if v["kind"] == "process.fork" && tree.contains(&v["process"]["pid"].as_u64().unwrap()) {
            tree.push(v["child"]["pid"].as_u64().unwrap());
        }
    }
    for v in &ours {
        let pid = v["process"]["pid"].as_u64().unwrap();
        assert!(
            tree.contains(&pid),
            "{pid} is not in the tree of {dpid}: {v}"
        );
    }
    let inner: Vec<u64> = ours
        .iter()
        .filter(|v| v["kind"] == "process.exec" && v["process"]["ppid"] == dpid)
        .map(|v| v["process"]["pid"].as_u64().unwrap())
        .collect();
    let grandchildren: Vec<&&Value> = ours
        .iter()
        .filter(|v| {
            v["kind"] == "process.exec"
                && v["process"]["comm"] == "true"
                && inner.contains(&v["process"]["ppid"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(grandchildren.len(), 2, "both grandchildren: {ours:?}");
    assert!(!ours.iter().any(|v| v["process"]["pid"] == outsider));
    let _ = std::fs::remove_dir_all(&d);
}

fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("a cgroup2 mount")
}

/// Execs of /bin/true by the children of `ppid` (the gate's `sleep`s are not counted).
fn child_execs(lines: &[Value], ppid: u32) -> usize {
    lines
        .iter()
        .filter(|v| {
            v["kind"] == "process.exec"
                && v["process"]["ppid"] == ppid
                && v["process"]["comm"] == "true"
        })
        .count()
}

#[test]
fn cgroup_and_container_filters() {
    // A container-shaped cgroup of our own: `<top>/docker-<64 hex>.scope`.
    let root = cgroup2_root();
    let top_rel = format!("tprobe-cli-{}-{}", std::process::id(), nanos());
    let id = format!("{:016x}", nanos() as u64).repeat(4);
    let top = root.join(&top_rel);
    let scope = top.join(format!("docker-{id}.scope"));
    std::fs::create_dir_all(&scope).unwrap();
    // Removed even when an assertion fails (once our processes are gone).
    struct Cleanup(Vec<PathBuf>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::fs::remove_dir(p);
            }
        }
    }
    let _cleanup = Cleanup(vec![scope.clone(), top.clone()]);

    let d = dir("cg");
    let go = d.join("go");
    let mut driver = gated(&go, "/bin/true; /bin/true");
    let dpid = driver.id();
    std::fs::write(scope.join("cgroup.procs"), dpid.to_string()).unwrap();

    let cg = format!("/{top_rel}");
    let by_cgroup = Probe::start(&["--events", "process.exec", "--cgroup", &cg]);
    let containers = Probe::start(&["--events", "process.exec", "--containers-only"]);
    let by_id = Probe::start(&["--events", "process.exec", "--container", &id[..12]]);
    let host = Probe::start(&["--events", "process.exec", "--host-only"]);
    let hostpid = std::process::id();
    std::fs::write(&go, b"").unwrap();
    sh("/bin/true");
    driver.wait().unwrap();

    for p in [&by_cgroup, &containers, &by_id] {
        let n = p.wait_n(WAIT, 2, |v| {
            v["kind"] == "process.exec"
                && v["process"]["ppid"] == dpid
                && v["process"]["comm"] == "true"
        });
        assert_eq!(n.len(), 2, "both container execs");
    }
    host.wait_for(WAIT, |v| {
        v["kind"] == "process.exec" && v["process"]["ppid"] == hostpid
    })
    .expect("the host exec");
    std::thread::sleep(Duration::from_millis(300));

    let cgid = std::fs::metadata(&top).map(|m| {
        use std::os::unix::fs::MetadataExt as _;
        m.ino()
    });
    let st = by_cgroup.stop();
    assert_eq!(
        st.lines[0]["probe"]["config"]["filters"]["cgroups"],
        json!([cgid.unwrap()])
    );
    let scope_id = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(&scope).unwrap().ino()
    };
    for v in data(&st.lines) {
        assert_eq!(v["process"]["cgroup_id"], scope_id, "only our cgroup: {v}");
    }
    for p in [containers, by_id] {
        let st = p.stop();
        assert_eq!(child_execs(&st.lines, dpid), 2);
        assert!(
            !st.lines
                .iter()
                .any(|v| v["kind"] == "process.exec" && v["process"]["ppid"] == hostpid),
            "a host process passed a container filter"
        );
    }
    let st = host.stop();
    assert_eq!(
        child_execs(&st.lines, dpid),
        0,
        "container execs passed --host-only"
    );
    assert!(st
        .lines
        .iter()
        .any(|v| v["kind"] == "process.exec" && v["process"]["ppid"] == hostpid));

    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sighup_switches_filters_and_kinds_with_no_seq_gap() {
    let d = dir("hup");
    let (an, bn) = (short_name("tpa"), short_name("tpb"));
    let (a, b) = (copy_true(&d, &an), copy_true(&d, &bn));
    let cfg = d.join("tprobe.yaml");
    std::fs::write(
        &cfg,
        format!("events: [process.exec]\nfilters:\n  comm: [{an}]\n"),
    )
    .unwrap();
    let probe = Probe::start(&["--config", cfg.to_str().unwrap()]);
    let pa1 = sh(&a);
    let pb1 = sh(&b);
    probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec" && v["process"]["ppid"] == pa1
        })
        .expect("exec of a before the reload");

    std::fs::write(
        &cfg,
        format!("events: process.exec, process.exit\nfilters:\n  comm: [{bn}]\n"),
    )
    .unwrap();
    unsafe { libc::kill(probe.pid() as i32, libc::SIGHUP) };
    let reload = probe
        .wait_for(WAIT, |v| v["kind"] == "probe.reload")
        .expect("probe.reload");
    assert_eq!(reload["probe"]["config"]["filters"]["comm"], json!([bn]));
    let pa2 = sh(&a);
    let pb2 = sh(&b);
    probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exit" && v["process"]["ppid"] == pb2
        })
        .expect("exit of b after the reload (a kind enabled by the reload)");
    std::thread::sleep(Duration::from_millis(200));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    assert_seq_contiguous(&st.lines);
    let reload_seq = reload["seq"].as_u64().unwrap();
    let seq_of = |ppid: u32, kind: &str| -> Vec<u64> {
        st.lines
            .iter()
            .filter(|v| v["kind"] == kind && v["process"]["ppid"] == ppid)
            .map(|v| v["seq"].as_u64().unwrap())
            .collect()
    };
    let a1 = seq_of(pa1, "process.exec");
    assert_eq!(a1.len(), 1);
    assert!(a1[0] < reload_seq);
    assert!(
        seq_of(pb1, "process.exec").is_empty(),
        "b filtered out before the reload"
    );
    assert!(
        seq_of(pa2, "process.exec").is_empty(),
        "a filtered out after the reload"
    );
    let b2 = seq_of(pb2, "process.exec");
    assert_eq!(b2.len(), 1);
    assert!(b2[0] > reload_seq);
    assert!(
        seq_of(pa1, "process.exit").is_empty(),
        "exits were off before the reload"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// The complete lines of `p`: while the probe runs, its last line may be
/// half written, so only newline-terminated lines are parsed.
fn read_lines(p: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{p:?}: {e}: {l}")))
        .collect()
}

fn wait_file(p: &Path, pred: impl Fn(&Value) -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if read_lines(p).iter().any(&pred) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn sighup_swaps_the_output_without_losing_lines() {
    let d = dir("out");
    let (f1, f2) = (d.join("one.json"), d.join("two.json"));
    let cfg = d.join("tprobe.yaml");
    let write_cfg = |out: &Path| {
        std::fs::write(
            &cfg,
            format!("events: process.exec\noutput: {}\n", out.display()),
        )
        .unwrap()
    };
    write_cfg(&f1);
    let mut child = Command::new(tprobe_bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_file(&f1, |v| v["kind"] == "probe.start"),
        "start in {f1:?}"
    );
    let p1 = sh("/bin/true");
    assert!(
        wait_file(&f1, |v| v["process"]["ppid"] == p1),
        "the first exec in {f1:?}"
    );
    write_cfg(&f2);
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    assert!(
        wait_file(&f2, |v| v["kind"] == "probe.reload"),
        "reload in {f2:?}"
    );
    let p2 = sh("/bin/true");
    assert!(
        wait_file(&f2, |v| v["process"]["ppid"] == p2),
        "the second exec in {f2:?}"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let (one, two) = (read_lines(&f1), read_lines(&f2));
    assert!(!one.iter().any(|v| v["process"]["ppid"] == p2));
    assert!(!two.iter().any(|v| v["process"]["ppid"] == p1));
    assert_eq!(
        two[0]["kind"], "probe.reload",
        "the new output starts with the reload: {}",
        two[0]
    );
    let all: Vec<Value> = one.into_iter().chain(two).collect();
    assert_seq_contiguous(&all);
    assert_eq!(all.last().unwrap()["kind"], "probe.stop");
    for v in &all {
        assert_eq!(schema_violations(v), None);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `tprobe ARGS` as a finished process: (exit code, stdout, stderr).
fn tprobe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(tprobe_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_config_files_name_the_key_and_exit_2() {
    let d = dir("badcfg");
    let cases: &[(&str, &[&str])] = &[
        ("evnts: all\n", &["unknown key \"evnts\"", "events"]),
        (
            "filters:\n  comand: [x]\n",
            &["in `filters`", "unknown key \"comand\""],
        ),
        ("threads: sometimes\n", &["key `threads`", "wrong type"]),
        ("count: [1]\n", &["key `count`", "wrong type"]),
        (
            "filters:\n  pid: [42, abc]\n",
            &["key `filters.pid`", "bad value", "abc"],
        ),
        (
            "events: [process, nope.x]\n",
            &["key `events`", "bad value", "nope.x"],
        ),
        (
            "ringbuf_size: 3M\n",
            &["key `ringbuf_size`", "bad value", "power of two"],
        ),
        (
            "filters:\n  pod: [justaname]\n",
            &["key `filters.pod`", "NAMESPACE/NAME"],
        ),
        (
            "flush_interval: later\n",
            &["key `flush_interval`", "bad value"],
        ),
        ("events: [process\n", &["not valid YAML"]),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = d.join(format!("bad{i}.yaml"));
        std::fs::write(&f, text).unwrap();
        let (code, out, err) = tprobe(&["run", "--config", f.to_str().unwrap()]);
        assert_eq!(code, 2, "{text:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(f.to_str().unwrap()), "names the file: {err}");
        for w in *want {
            assert!(err.contains(w), "{text:?}: {w:?} not in {err}");
        }
    }
    let (code, _, err) = tprobe(&["run", "--config", "/nonexistent/tprobe.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read it"), "{err}");
    // A flag overrides a bad value? No: the file is validated whole, but a flag given on the
    // command line wins over a good one (see the unit tests); the default file is valid.
    let (code, def, _) = tprobe(&["config", "--default"]);
    assert_eq!(code, 0);
    let f = d.join("default.yaml");
    std::fs::write(&f, &def).unwrap();
    let (code, out, err) = tprobe(&["config", "--check", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ringbuf_bytes"], 8 << 20);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn friendly_failures_have_one_line_and_their_own_exit_code() {
    // Not root: a copy of the binary anyone may run, started as nobody.
    let d = dir("nobody");
    let bin = d.join("tprobe");
    std::fs::copy(tprobe_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&bin)
        .args(["run", "--events", "process"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("CAP_BPF") && err.contains("root"), "{err}");
    // `tprobe check` says the same and fails the same way.
    let out = Command::new(&bin)
        .arg("check")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("FAIL  privileges: missing CAP_BPF"), "{text}");
    assert!(text.contains("cannot run here"), "{text}");
    let _ = std::fs::remove_dir_all(&d);

    // No BTF.
    let (code, _, err) = tprobe(&["run", "--btf", "/nonexistent/vmlinux"]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("CONFIG_DEBUG_INFO_BTF"), "{err}");
    let (code, out, _) = tprobe(&["check", "--btf", "/nonexistent/vmlinux"]);
    assert_eq!(code, 4, "{out}");

    // Bad flags.
    let (code, _, err) = tprobe(&["run", "--pid", "12,abc"]);
    assert_eq!(code, 2);
    assert!(err.contains("--pid") && err.contains("abc"), "{err}");
    let (code, _, err) = tprobe(&["run", "--follow"]);
    assert_eq!(code, 2);
    assert!(err.contains("needs --pid"), "{err}");
}

#[test]
fn summary_on_stderr_only_at_a_terminal() {
    // `script` gives tprobe a terminal; its output is what the terminal showed.
    let cmd = format!(
        "{} run --events process --duration 1s -o /dev/null",
        tprobe_bin().display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("tprobe: ") && shown.contains(" events") && shown.contains("lost: 0"),
        "{shown}"
    );
    // Not a terminal: no summary.
    let (code, _, err) = tprobe(&[
        "run",
        "--events",
        "process",
        "--duration",
        "1s",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(code, 0);
    assert!(!err.contains("lost:"), "{err}");
}

#[test]
fn events_schema_and_check_commands() {
    let (code, out, _) = tprobe(&["events"]);
    assert_eq!(code, 0);
    for k in [
        "process.exec",
        "process.fork",
        "process.exit",
        "probe.loss",
        "probe.reload",
    ] {
        assert!(out.contains(k), "{k} in {out}");
    }
    assert!(out.contains("raw_tracepoint/sched_process_exec"));
    assert!(out.contains("exit {code, signal, core_dumped, cpu {user_ms, system_ms}}"));
    assert!(out.contains("process.exec_failed"));

    let (code, out, err) = tprobe(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok    BPF ring buffer"), "{out}");
    assert!(out.contains("verified and attached"), "{out}");
    assert!(out.contains("XDP"), "{out}");
    assert!(out.trim_end().ends_with("tprobe can run here."), "{out}");

    // The schema is not vacuous: lines that break schema.md are refused.
    let good = json!({"ts": "2026-01-01T00:00:00.000000001Z", "kind": "process.exit", "seq": 3,
        "host": {"name": "h"}, "schema": "tprobe/1", "process": {"pid": 1},
        "exit": {"code": 0, "signal": null, "core_dumped": false}, "extra": {"any": 1}});
    assert_eq!(schema_violations(&good), None);
    let mut bad = good.clone();
    bad["exit"] = Value::Null;
    assert!(schema_violations(&bad).is_some(), "process.exit needs exit");
    for (field, value) in [
        ("seq", json!("3")),
        ("ts", json!("yesterday")),
        ("kind", json!("exit")),
        ("process", json!({"pid": -1})),
        ("container", json!({"name": "no id"})),
        ("file", json!({"path": 3})),
        ("net", json!({"src": {"ip": "127.0.0.1", "port": 70000}})),
        ("result", json!({"errno": 2})),
    ] {
        let mut v = good.clone();
        v[field] = value;
        assert!(schema_violations(&v).is_some(), "{field} {v}");
    }
    let file = json!({"ts": "2026-01-01T00:00:00Z", "kind": "file.open", "seq": 1,
        "host": {"name": "h"}, "schema": "tprobe/1", "process": {"pid": 1},
        "file": {"path": "/etc/passwd", "flags": ["O_RDONLY"], "mode": "0644"},
        "result": {"ok": false, "errno": 2, "error": "ENOENT"}});
    assert_eq!(schema_violations(&file), None);
    let mut nofile = file.clone();
    nofile.as_object_mut().unwrap().remove("file");
    assert!(schema_violations(&nofile).is_some());
    let flow = json!({"ts": "2026-01-01T00:00:00Z", "kind": "flow.end", "seq": 1,
        "host": {"name": "h"}, "schema": "tprobe/1",
        "flow": {"iface": "lo", "transport": "tcp", "src": {"ip": "127.0.0.1", "port": 1},
                 "dst": {"ip": "127.0.0.1", "port": 2}, "packets": 3, "bytes": 180,
                 "tcp_flags": ["SYN", "ACK"], "first_seen": "2026-01-01T00:00:00Z",
                 "last_seen": "2026-01-01T00:00:01Z"}});
    assert_eq!(
        schema_violations(&flow),
        None,
        "flow events have no process"
    );
    let _ = std::io::stdout().flush();
}

#[test]
fn sighup_keeps_followed_descendants_and_survives_a_bad_file() {
    let d = dir("hupfollow");
    let (go1, go2) = (d.join("go1"), d.join("go2"));
    let mut driver = gated(
        &go1,
        &format!(
            "/bin/sh -c 'while [ ! -e {} ]; do sleep 0.02; done; /bin/true'",
            go2.display()
        ),
    );
    let dpid = driver.id();
    let cfg = d.join("tprobe.yaml");
    let write = |events: &str| {
        std::fs::write(
            &cfg,
            format!("events: {events}\nfilters:\n  pid: {dpid}\n  follow: true\n"),
        )
        .unwrap()
    };
    write("[process.exec]");
    let probe = Probe::start(&["--config", cfg.to_str().unwrap()]);
    std::fs::write(&go1, b"").unwrap();
    let inner = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec"
                && v["process"]["ppid"] == dpid
                && v["process"]["comm"] == "sh"
        })
        .expect("exec of the followed child");
    let inner = inner["process"]["pid"].as_u64().unwrap();

    // A file that does not validate: the running config stays, no probe.reload.
    std::fs::write(&cfg, "filters:\n  pid: [nope]\n").unwrap();
    unsafe { libc::kill(probe.pid() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    // The same filters with one more kind: the followed child stays in the kernel set.
    write("[process.exec, process.exit]");
    unsafe { libc::kill(probe.pid() as i32, libc::SIGHUP) };
    probe
        .wait_for(WAIT, |v| v["kind"] == "probe.reload")
        .expect("probe.reload");
    std::fs::write(&go2, b"").unwrap();
    driver.wait().unwrap();
    probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec"
                && v["process"]["ppid"] == inner
                && v["process"]["comm"] == "true"
        })
        .expect("the grandchild, forked after the reload");
    probe
        .wait_for(WAIT, |v| is(v, "process.exit", dpid))
        .expect("exit of the root (exits enabled by the reload)");
    let st = probe.stop();
    assert_seq_contiguous(&st.lines);
    let reloads = st
        .lines
        .iter()
        .filter(|v| v["kind"] == "probe.reload")
        .count();
    assert_eq!(reloads, 1, "the bad file did not reload");
    assert!(
        st.stderr.contains("reload failed") && st.stderr.contains("filters.pid"),
        "{}",
        st.stderr
    );
    let _ = std::fs::remove_dir_all(&d);
}
