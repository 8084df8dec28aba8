//! Security events from the real syscalls: privilege changes (set*id, capset), process
//! tampering (ptrace, process_vm_writev, signals), comm changes and memfds. Each test runs real
//! tools (setpriv, strace, bash, kill) or a small Python program making the exact syscall, and
//! finds its events by the pid of the process it started: other tests run at the same time.
use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};
use tprobe_tests::{is, Probe, WAIT};

/// The Python interpreter itself (`python3` may be a wrapper script that execs it).
fn python3() -> &'static str {
    static EXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    })
}

/// Runs `python3 -c CODE ARGS..` to completion; returns its pid and stdout.
fn python(code: &str, args: &[&str]) -> (u32, String) {
    let child = Command::new(python3())
        .arg("-c")
        .arg(code)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 -c {code} failed");
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Common preamble of the Python helpers: libc with errno.
const PY: &str = "import ctypes, os, sys\nlibc = ctypes.CDLL(None, use_errno=True)\n";

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

fn want(probe: &Probe, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    probe
        .wait_for(WAIT, pred)
        .unwrap_or_else(|| panic!("no {what}"))
}

/// The `process.exec` of `pid`: its entity_id is what a target must carry.
fn exec_of(probe: &Probe, pid: u32) -> Value {
    want(probe, &format!("process.exec of {pid}"), |v| {
        is(v, "process.exec", pid)
    })
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn setuid_and_setgid_report_the_ids_asked_for() {
    let probe = Probe::start(&["--events", "process.setuid,process.setgid"]);
    // setpriv drops to uid/gid 1000 with setresgid and setresuid.
    let child = Command::new("setpriv")
        .args([
            "--reuid",
            "1000",
            "--regid",
            "1000",
            "--clear-groups",
            "true",
        ])
        .spawn()
        .unwrap();
    let sp = child.id();
    assert!(child.wait_with_output().unwrap().status.success());
    let u = want(&probe, "setresuid", |v| is(v, "process.setuid", sp));
    assert_eq!(
        u["cred"],
        json!({"syscall": "setresuid", "ruid": 1000, "euid": 1000, "suid": 1000})
    );
    assert_eq!(u["result"], json!({"ok": true}));
    let g = want(&probe, "setresgid", |v| is(v, "process.setgid", sp));
    assert_eq!(
        g["cred"],
        json!({"syscall": "setresgid", "rgid": 1000, "egid": 1000, "sgid": 1000})
    );
    // -1 is "unchanged" and absent; a refused change carries its errno; setfsuid returns the
    // id in force before.
    let (pid, _) = python(
        &format!(
            "{PY}os.setregid(2000, -1)\nos.setreuid(-1, 1000)\n\
             try:\n    os.setuid(4321)\nexcept PermissionError:\n    pass\n\
             libc.setfsuid(4242)"
        ),
        &[],
    );
    let events = probe.wait_n(WAIT, 4, |v| {
        v["process"]["pid"] == pid
            && matches!(
                v["kind"].as_str(),
                Some("process.setuid" | "process.setgid")
            )
    });
    let creds: Vec<(Value, Value)> = events
        .iter()
        .map(|v| (v["cred"].clone(), v["result"].clone()))
        .collect();
    assert_eq!(
        creds,
        vec![
            (
                json!({"syscall": "setregid", "rgid": 2000}),
                json!({"ok": true})
            ),
            (
                json!({"syscall": "setreuid", "euid": 1000}),
                json!({"ok": true})
            ),
            (
                json!({"syscall": "setuid", "uid": 4321}),
                json!({"ok": false, "errno": 1, "error": "EPERM"})
            ),
            // Not allowed to change, so unchanged: setfsuid has no errno, only the old id.
            (
                json!({"syscall": "setfsuid", "fsuid": 4242, "previous": 1000}),
                json!({"ok": true})
            ),
        ]
    );
}

#[test]
fn capset_names_the_sets_asked_for_and_flags_a_bad_pointer() {
    let probe = Probe::start(&["--events", "process.capset"]);
    // Linux capability version 3: two {effective, permitted, inheritable} structs.
    let (pid, _) = python(
        &format!(
            "{PY}hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)\n\
             data = (ctypes.c_uint32 * 6)((1 << 13) | (1 << 5), (1 << 13) | (1 << 5) | (1 << 21), 0, 1 << 7, 1 << 7, 0)\n\
             assert libc.syscall(126, hdr, data) == 0, ctypes.get_errno()\n\
             assert libc.syscall(126, hdr, ctypes.c_void_p(8)) == -1"
        ),
        &[],
    );
    let ok = want(&probe, "capset", |v| {
        is(v, "process.capset", pid) && v["result"]["ok"] == true
    });
    assert_eq!(
        ok["caps"]["effective"],
        json!(["CAP_KILL", "CAP_NET_RAW", "CAP_BPF"])
    );
    assert_eq!(
        ok["caps"]["permitted"],
        json!(["CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_BPF"])
    );
    assert_eq!(ok["caps"]["inheritable"], json!([]));
    assert_eq!(ok["caps"]["version"], "0x20080522");
    let bad = want(&probe, "capset with a bad pointer", |v| {
        is(v, "process.capset", pid) && v["result"]["ok"] == false
    });
    assert_eq!(bad["result"]["error"], "EFAULT");
    assert_eq!(bad["caps_unreadable"], true);
    assert!(bad.get("caps").is_none(), "{bad}");
}

/// ptrace of `target`: attach, wait, poke and peek a word of its stack, detach.
fn ptrace_session(target: u32) -> u32 {
    python(
        &format!(
            "{PY}pid = int(sys.argv[1])\n\
             libc.ptrace.restype = ctypes.c_long\n\
             assert libc.ptrace(16, pid, 0, 0) == 0, ctypes.get_errno()\n\
             os.waitpid(pid, 0)\n\
             regs = (ctypes.c_ulong * 27)()\n\
             assert libc.ptrace(12, pid, 0, regs) == 0\n\
             sp = regs[19]\n\
             word = libc.ptrace(2, pid, ctypes.c_void_p(sp), 0)\n\
             assert libc.ptrace(5, pid, ctypes.c_void_p(sp), ctypes.c_void_p(word)) == 0\n\
             assert libc.ptrace(17, pid, 0, 0) == 0"
        ),
        &[&target.to_string()],
    )
    .0
}

#[test]
fn ptrace_reports_attach_and_pokes_and_peeks_only_when_asked() {
    let probe = Probe::start(&["--events", "process.exec,process.ptrace"]);
    let peeks = Probe::start(&["--events", "process.ptrace", "--ptrace-peeks"]);
    let mut sleep = sleeper();
    let target = exec_of(&probe, sleep.id());
    let tracer = ptrace_session(sleep.id());
    let requests = |p: &Probe, n: usize| -> Vec<String> {
        p.wait_n(WAIT, n, |v| is(v, "process.ptrace", tracer))
            .iter()
            .map(|v| v["ptrace"]["request"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        requests(&probe, 2),
        vec!["PTRACE_ATTACH", "PTRACE_POKEDATA"],
        "peeks, GETREGS and DETACH are not reported by default"
    );
    assert_eq!(
        requests(&peeks, 4),
        vec![
            "PTRACE_ATTACH",
            "PTRACE_GETREGS",
            "PTRACE_PEEKDATA",
            "PTRACE_POKEDATA"
        ]
    );
    let attach = want(&probe, "attach", |v| is(v, "process.ptrace", tracer));
    let t = &attach["ptrace"]["target"];
    assert_eq!(t["pid"], sleep.id());
    assert_eq!(t["exe"], target["process"]["exe"]);
    assert_eq!(t["entity_id"], target["process"]["entity_id"]);
    assert_eq!(attach["result"]["ok"], true);
    // A real tracer: strace seizes the process.
    let strace = Command::new("timeout")
        .args(["2", "strace", "-o", "/dev/null", "-p"])
        .arg(sleep.id().to_string())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = strace.wait_with_output();
    let seize = want(&probe, "strace's PTRACE_SEIZE", |v| {
        v["kind"] == "process.ptrace"
            && v["process"]["comm"] == "strace"
            && v["ptrace"]["request"] == "PTRACE_SEIZE"
            && v["ptrace"]["target"]["pid"] == sleep.id()
    });
    assert_eq!(
        seize["ptrace"]["target"]["entity_id"],
        target["process"]["entity_id"]
    );
    // Refused: the target is gone.
    kill(&mut sleep);
    let (pid, _) = python(
        &format!("{PY}assert libc.ptrace(16, int(sys.argv[1]), 0, 0) == -1"),
        &[&sleep.id().to_string()],
    );
    let failed = want(&probe, "failed attach", |v| is(v, "process.ptrace", pid));
    assert_eq!(failed["result"]["error"], "ESRCH");
    assert_eq!(failed["ptrace"]["target"]["pid"], sleep.id());
}

#[test]
fn process_vm_writev_names_its_target_and_the_bytes() {
    let probe = Probe::start(&["--events", "process.exec,process.vm_write"]);
    // The target prints where its buffer is and waits.
    let mut target = Command::new(python3())
        .arg("-c")
        .arg(
            "import ctypes, time\nb = ctypes.create_string_buffer(64)\n\
             print(ctypes.addressof(b), flush=True)\ntime.sleep(30)",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(target.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let exec = exec_of(&probe, target.id());
    let (writer, _) = python(
        &format!(
            "{PY}class iovec(ctypes.Structure):\n    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]\n\
             data = ctypes.create_string_buffer(b'tprobe')\n\
             local = iovec(ctypes.cast(data, ctypes.c_void_p), 6)\n\
             remote = iovec(int(sys.argv[2]), 6)\n\
             libc.process_vm_writev.restype = ctypes.c_ssize_t\n\
             n = libc.process_vm_writev(int(sys.argv[1]), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)\n\
             assert n == 6, ctypes.get_errno()\n\
             bad = iovec(8, 6)\n\
             assert libc.process_vm_writev(int(sys.argv[1]), ctypes.byref(local), 1, ctypes.byref(bad), 1, 0) == -1"
        ),
        &[&target.id().to_string(), line.trim()],
    );
    let evs = probe.wait_n(WAIT, 2, |v| is(v, "process.vm_write", writer));
    assert_eq!(evs.len(), 2, "{evs:?}");
    let (ok, bad) = (&evs[0], &evs[1]);
    assert_eq!(ok["bytes"], 6);
    assert_eq!(ok["result"], json!({"ok": true}));
    assert_eq!(ok["target"]["pid"], target.id());
    assert_eq!(ok["target"]["exe"], exec["process"]["exe"]);
    assert_eq!(ok["target"]["entity_id"], exec["process"]["entity_id"]);
    assert_eq!(bad["result"]["error"], "EFAULT");
    assert!(bad.get("bytes").is_none());
    kill(&mut target);
}

#[test]
fn signals_to_other_processes_with_their_target_never_to_self() {
    let probe = Probe::start(&["--events", "process.exec,process.signal"]);
    let all = Probe::start(&["--events", "process.signal", "--signals", "all"]);
    let mut a = sleeper();
    let mut b = sleeper();
    let (ea, eb) = (exec_of(&probe, a.id()), exec_of(&probe, b.id()));
    // kill(1) of bash, then SIGUSR1 (not a default signal), then bash signalling itself.
    let sh = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "kill -TERM {}; kill -USR1 {}; trap '' TERM; kill -TERM $$; true",
            a.id(),
            b.id()
        ))
        .spawn()
        .unwrap();
    let shp = sh.id();
    assert!(sh.wait_with_output().unwrap().status.success());
    let term = want(&probe, "SIGTERM", |v| is(v, "process.signal", shp));
    assert_eq!(term["signal"]["number"], 15);
    assert_eq!(term["signal"]["name"], "SIGTERM");
    assert_eq!(term["signal"]["syscall"], "kill");
    assert_eq!(term["signal"]["target"]["pid"], a.id());
    assert_eq!(term["signal"]["target"]["exe"], ea["process"]["exe"]);
    assert_eq!(
        term["signal"]["target"]["entity_id"],
        ea["process"]["entity_id"]
    );
    assert_eq!(term["result"], json!({"ok": true}));
    let usr1 = want(&all, "SIGUSR1 with --signals all", |v| {
        is(v, "process.signal", shp) && v["signal"]["name"] == "SIGUSR1"
    });
    assert_eq!(
        usr1["signal"]["target"]["entity_id"],
        eb["process"]["entity_id"]
    );
    // pidfd_send_signal (SIGSTOP), tgkill (SIGKILL) and a kill of a pid that is gone (reaped:
    // a zombie still takes signals).
    let _ = a.wait();
    let (py, _) = python(
        &format!(
            "{PY}import signal\npid = int(sys.argv[1])\n\
             fd = os.pidfd_open(pid)\nsignal.pidfd_send_signal(fd, signal.SIGSTOP)\n\
             assert libc.syscall(234, pid, pid, 9) == 0\n\
             assert libc.kill(int(sys.argv[2]), 15) == -1"
        ),
        &[&b.id().to_string(), &a.id().to_string()],
    );
    let evs = all.wait_n(WAIT, 3, |v| is(v, "process.signal", py));
    let got: Vec<(String, String, Value)> = evs
        .iter()
        .map(|v| {
            (
                v["signal"]["syscall"].as_str().unwrap().to_owned(),
                v["signal"]["name"].as_str().unwrap().to_owned(),
                v["result"]["error"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("pidfd_send_signal".into(), "SIGSTOP".into(), Value::Null),
            ("tgkill".into(), "SIGKILL".into(), Value::Null),
            ("kill".into(), "SIGTERM".into(), json!("ESRCH")),
        ]
    );
    assert_eq!(evs[0]["signal"]["target"]["pid"], b.id());
    assert_eq!(
        evs[0]["signal"]["target"]["entity_id"],
        eb["process"]["entity_id"]
    );
    assert_eq!(evs[2]["signal"]["target"]["pid"], a.id());
    kill(&mut a);
    kill(&mut b);
    std::thread::sleep(Duration::from_millis(300));
    let st = probe.stop();
    assert!(
        !st.lines
            .iter()
            .any(|v| is(v, "process.signal", shp) && v["signal"]["name"] != "SIGTERM"),
        "SIGUSR1 is not a default signal"
    );
    let self_sent = st
        .lines
        .iter()
        .filter(|v| is(v, "process.signal", shp))
        .count();
    assert_eq!(self_sent, 1, "bash signalling itself is not reported");
}

#[test]
fn comm_changes_by_prctl_and_proc_comm_but_not_by_exec() {
    let probe = Probe::start(&["--events", "process.rename"]);
    let (pid, _) = python(
        &format!("{PY}assert libc.prctl(15, b'kworker/0:7', 0, 0, 0) == 0"),
        &[],
    );
    let ev = want(&probe, "prctl rename", |v| is(v, "process.rename", pid));
    assert_eq!(
        ev["rename"],
        json!({"old_comm": "python3", "new_comm": "kworker/0:7"})
    );
    assert_eq!(ev["result"]["ok"], true);
    let sh = Command::new("bash")
        .arg("-c")
        .arg("printf sshd > /proc/self/comm")
        .spawn()
        .unwrap();
    let shp = sh.id();
    sh.wait_with_output().unwrap();
    let ev = want(&probe, "comm write", |v| is(v, "process.rename", shp));
    assert_eq!(
        ev["rename"],
        json!({"old_comm": "bash", "new_comm": "sshd"})
    );
    std::thread::sleep(Duration::from_millis(300));
    let st = probe.stop();
    let renames: Vec<&Value> = st
        .lines
        .iter()
        .filter(|v| {
            v["kind"] == "process.rename"
                && (v["process"]["pid"] == pid || v["process"]["pid"] == shp)
        })
        .collect();
    assert_eq!(
        renames.len(),
        2,
        "an exec's own rename is not reported: {renames:?}"
    );
}

#[test]
fn memfd_create_with_name_flags_and_a_cut_name() {
    let probe = Probe::start(&["--events", "process.memfd"]);
    let long = "m".repeat(300);
    let (pid, _) = python(
        &format!(
            "{PY}fd = os.memfd_create('tprobe-payload', os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)\n\
             print(fd)\n\
             try:\n    os.memfd_create(sys.argv[1])\nexcept OSError:\n    pass"
        ),
        &[&long],
    );
    let evs = probe.wait_n(WAIT, 2, |v| is(v, "process.memfd", pid));
    assert_eq!(evs.len(), 2, "{evs:?}");
    let m = &evs[0]["memfd"];
    assert_eq!(m["name"], "tprobe-payload");
    assert_eq!(m["flags"], json!(["MFD_CLOEXEC", "MFD_ALLOW_SEALING"]));
    assert!(evs[0]["result"]["fd"].as_i64().unwrap() >= 3);
    // Longer than the kernel allows (249): refused, and cut by the probe at 255 bytes.
    assert_eq!(evs[1]["result"]["error"], "EINVAL");
    assert_eq!(evs[1]["memfd"]["name_truncated"], true);
    assert_eq!(evs[1]["memfd"]["name"], "m".repeat(255));
}
