//! process.exec / process.fork / process.exit from the real tracepoints.
use std::{
    ffi::{OsStr, OsString},
    os::unix::{ffi::OsStrExt as _, fs::PermissionsExt as _},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};
use tprobe_tests::{b64, is, Probe, WAIT};

fn run_quiet(cmd: &mut Command) -> u32 {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn canonical(p: &str) -> String {
    std::fs::canonicalize(p)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The exec event of `pid`, after its exit (so every event of the process has been drained).
fn exec_of(probe: &Probe, pid: u32) -> Value {
    probe
        .wait_for(WAIT, |v| is(v, "process.exit", pid))
        .unwrap_or_else(|| panic!("no process.exit for {pid}"));
    let execs = probe.wait_n(Duration::from_millis(10), 2, |v| is(v, "process.exec", pid));
    assert_eq!(
        execs.len(),
        1,
        "exactly one process.exec for {pid}: {execs:?}"
    );
    execs.into_iter().next().unwrap()
}

#[test]
fn exec_reports_exact_argv_exe_parent_and_user() {
    let probe = Probe::start(&["--events", "process"]);
    let marker = format!("tprobe-argv-{}", std::process::id());
    let args: Vec<OsString> = vec![
        marker.clone().into(),
        "".into(),
        "line1\nline2".into(),
        OsStr::from_bytes(b"\xffbad\xfe").into(),
        "with space and \"quotes\"".into(),
    ];
    let pid = run_quiet(Command::new("/bin/echo").args(&args));
    let ev = exec_of(&probe, pid);
    let p = &ev["process"];
    assert_eq!(
        p["args"],
        json!([
            "/bin/echo",
            marker,
            "",
            "line1\nline2",
            "\u{fffd}bad\u{fffd}",
            "with space and \"quotes\""
        ])
    );
    // The exact bytes of every argument come back through args_b64.
    let exact: Vec<Vec<u8>> = p["args_b64"]
        .as_array()
        .expect("args_b64")
        .iter()
        .map(b64)
        .collect();
    let mut want: Vec<Vec<u8>> = vec![b"/bin/echo".to_vec()];
    want.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    assert_eq!(exact, want);
    assert_eq!(p["args_truncated"], false);
    let exe = p["exe"].as_str().unwrap();
    assert!(
        exe == "/bin/echo" || exe == canonical("/bin/echo"),
        "exe {exe}"
    );
    assert_eq!(p["ppid"], std::process::id());
    assert_eq!(ev["parent"]["pid"], std::process::id());
    assert_eq!(p["uid"], 0);
    assert_eq!(p["user"], "root");
    assert_eq!(p["comm"], "echo");
    assert_eq!(p["pid"], pid);
    assert_eq!(p["tid"], pid);
    assert!(p["cgroup_id"].as_u64().unwrap() > 0);
    assert_eq!(ev["schema"], "tprobe/1");
    assert!(ev["host"]["name"].as_str().is_some_and(|h| !h.is_empty()));
    // RFC 3339 with nanoseconds, UTC.
    let ts = ev["ts"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && ts.len() == "2026-01-01T00:00:00.000000000Z".len(),
        "{ts}"
    );
    assert_eq!(p["entity_id"].as_str().unwrap().len(), 16);
}

#[test]
fn exit_code_and_signal() {
    let probe = Probe::start(&["--events", "process.exit"]);
    let code_pid = run_quiet(Command::new("/bin/sh").args(["-c", "exit 7"]));
    let mut sleeper = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let kill_pid = sleeper.id();
    std::thread::sleep(Duration::from_millis(100));
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();

    let ev = probe
        .wait_for(WAIT, |v| is(v, "process.exit", code_pid))
        .expect("exit 7");
    let status = |v: &Value| json!({"code": v["exit"]["code"], "signal": v["exit"]["signal"], "core_dumped": v["exit"]["core_dumped"]});
    assert_eq!(
        status(&ev),
        json!({"code": 7, "signal": null, "core_dumped": false})
    );
    assert!(ev["exit"]["cpu"]["user_ms"].is_u64());
    let ev = probe
        .wait_for(WAIT, |v| is(v, "process.exit", kill_pid))
        .expect("SIGKILL exit");
    assert_eq!(
        status(&ev),
        json!({"code": null, "signal": 9, "core_dumped": false})
    );
    // Only exits were asked for, yet the process table saw the exec: full metadata.
    assert_eq!(ev["process"]["args"], json!(["/bin/sleep", "30"]));
    assert!(probe.lines().iter().all(|v| v["kind"] != "process.exec"));
}

#[test]
fn fork_links_parent_and_child_identities() {
    let probe = Probe::start(&["--events", "process"]);
    let pid = run_quiet(&mut Command::new("/bin/true"));
    let fork = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.fork" && v["child"]["pid"] == pid
        })
        .expect("process.fork for the child");
    assert_eq!(fork["process"]["pid"], std::process::id());
    assert_eq!(fork["child"]["thread"], false);
    assert_eq!(fork["child"]["tid"], pid);
    let exec = exec_of(&probe, pid);
    // The child's entity id is the same from the fork record and from its own events.
    assert_eq!(fork["child"]["entity_id"], exec["process"]["entity_id"]);
    assert_eq!(exec["parent"]["entity_id"], fork["process"]["entity_id"]);
}

#[test]
fn threads_only_when_asked() {
    let probe = Probe::start(&["--events", "process.fork"]);
    let with_threads = Probe::start(&["--events", "process.fork", "--threads"]);
    // A thread of this test process.
    let me = std::process::id();
    let tid = std::thread::spawn(|| unsafe { libc::gettid() } as u32)
        .join()
        .unwrap();
    let ev = with_threads
        .wait_for(WAIT, |v| {
            v["kind"] == "process.fork" && v["child"]["tid"] == tid
        })
        .expect("thread fork with --threads");
    assert_eq!(ev["child"]["thread"], true);
    assert_eq!(ev["child"]["pid"], me);
    // The probe without --threads has had the same time to see it and did not.
    assert!(probe.lines().iter().all(|v| v["child"]["tid"] != tid));
    // The probe's own threads (pipeline, blocking pool) never show up, even with --threads.
    let own = with_threads.pid();
    let st = with_threads.stop();
    assert!(
        st.lines.iter().all(|v| v["process"]["pid"] != own),
        "probe reported itself"
    );
}

#[test]
fn argv_over_the_limits_is_marked_truncated() {
    let probe = Probe::start(&["--events", "process"]);
    // 100 arguments of 200 bytes: over both the 8 KiB and the 64-argument limits.
    let long: Vec<String> = (0..100)
        .map(|i| format!("{i:03}{}", "a".repeat(197)))
        .collect();
    let pid = run_quiet(Command::new("/bin/true").args(&long));
    let ev = exec_of(&probe, pid);
    let p = &ev["process"];
    assert_eq!(p["args_truncated"], true);
    let args = p["args"].as_array().unwrap();
    assert_eq!(args[0], "/bin/true");
    assert_eq!(args[1], long[0].as_str());
    assert!(args.len() <= 64, "{} args", args.len());
    // NUL-separated in the kernel: the last (cut) argument has no NUL.
    let bytes: usize = args
        .iter()
        .map(|a| a.as_str().unwrap().len() + 1)
        .sum::<usize>()
        - 1;
    assert!(bytes <= 8192, "{bytes} bytes of argv");
    // Every complete argument is exact; only the last may be cut.
    for (i, a) in args[1..args.len() - 1].iter().enumerate() {
        assert_eq!(a, long[i].as_str());
    }
    assert_eq!(p["pid"], pid);
    assert_eq!(p["comm"], "true");

    // Many short arguments: cut at 64 entries.
    let many: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let pid = run_quiet(Command::new("/bin/true").args(&many));
    let ev = exec_of(&probe, pid);
    assert_eq!(ev["process"]["args_truncated"], true);
    assert_eq!(ev["process"]["args"].as_array().unwrap().len(), 64);
}

#[test]
fn scripts_report_interpreter_and_file() {
    let probe = Probe::start(&["--events", "process"]);
    let dir = tempdir();
    let script = format!("{dir}/hello script.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pid = run_quiet(&mut Command::new(&script));
    let ev = exec_of(&probe, pid);
    assert_eq!(ev["exec"]["interpreter"], "/bin/sh");
    assert_eq!(ev["exec"]["filename"], script.as_str());
    assert_eq!(ev["process"]["args"], json!(["/bin/sh", script]));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn processes_started_before_the_probe_are_enriched() {
    let mut sleeper = Command::new("/bin/sleep").arg("31").spawn().unwrap();
    let pid = sleeper.id();
    std::thread::sleep(Duration::from_millis(50));
    let probe = Probe::start(&["--events", "process.exit"]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let ev = probe
        .wait_for(WAIT, |v| is(v, "process.exit", pid))
        .expect("exit");
    let p = &ev["process"];
    assert_eq!(p["args"], json!(["/bin/sleep", "31"]));
    assert_eq!(p["exe"], canonical("/bin/sleep"));
    assert!(p["cwd"].is_string());
    assert_eq!(p["source"], "procfs");
    assert_eq!(ev["parent"]["pid"], std::process::id());
    // The identity is the kernel's at the event, whatever /proc said.
    assert_eq!(p["euid"], 0);
    assert!(p["ns"]["mnt"].as_u64().unwrap() > 0);
}

pub fn tempdir() -> String {
    let d = format!(
        "/tmp/tprobe-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    std::fs::create_dir_all(&d).unwrap();
    d
}
