//! Process context a responder can trust: exe, argv and cwd of each exec image as the kernel
//! read them, parent and ancestors, credentials, namespaces, fileless and failed execs, CPU
//! time at exit, and how sockets are named. Real launchers (Python's Popen, env, sh), real
//! setuid binaries and namespaces; assertions on the JSON that comes out.
use std::{
    os::unix::fs::PermissionsExt as _,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};
use tprobe_tests::{Probe, WAIT};

use crate::process::tempdir;

fn canonical(p: &str) -> String {
    std::fs::canonicalize(p)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn quiet(cmd: &mut Command) -> std::process::ExitStatus {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn")
}

/// The events of kind `kind` whose argv contains `marker`.
fn with_arg(probe: &Probe, kind: &'static str, marker: &str, n: usize) -> Vec<Value> {
    let m = marker.to_owned();
    probe.wait_n(WAIT, n, move |v| {
        v["kind"] == kind
            && v["process"]["args"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == m.as_str()))
    })
}

fn ns_inode(pid: &str, ns: &str) -> u64 {
    let l = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
    let s = l.to_string_lossy();
    s.trim_end_matches(']')
        .rsplit('[')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

const NS: [&str; 7] = ["pid", "mnt", "net", "user", "uts", "ipc", "cgroup"];

/// `Popen(cwd=)` children: each exec event carries the directory the child changed to
/// between fork and exec, not the launcher's.
#[test]
fn popen_children_carry_their_own_cwd() {
    let probe = Probe::start(&["--events", "process"]);
    let base = tempdir();
    let marker = format!("tprobe-popen-{}", std::process::id());
    let dirs: Vec<String> = (0..5).map(|i| format!("{base}/d{i}")).collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    let script = format!(
        "import subprocess\nfor d in {dirs:?}:\n    subprocess.run(['/bin/true', '{marker}', d], cwd=d)\n"
    );
    assert!(quiet(Command::new("python3").args(["-c", &script])).success());
    let execs = with_arg(&probe, "process.exec", &marker, 5);
    assert_eq!(execs.len(), 5, "{execs:?}");
    for ev in &execs {
        let d = ev["process"]["args"][2].as_str().unwrap();
        assert_eq!(ev["process"]["cwd"], canonical(d), "{ev}");
        assert_eq!(ev["process"]["exe"], canonical("/bin/true"));
        // The launcher is the parent, with its own command line.
        assert_eq!(ev["parent"]["args"][1], "-c", "{ev}");
        assert!(ev["parent"]["args"][2].as_str().unwrap().contains(&marker));
        assert!(ev["process"]["source"].is_null(), "{ev}");
    }
    let _ = std::fs::remove_dir_all(base);
}

/// `env sh -c '...; exec env sh -c ...'`: one pid, four images. Every event of each image
/// carries that image's exe (symlinks resolved: /bin/sh is /usr/bin/dash), argv and cwd, and
/// `exec.filename` keeps the name as given.
#[test]
fn exec_chains_keep_each_images_context() {
    let probe = Probe::start(&["--events", "process,file", "--file-reads"]);
    let d = tempdir();
    let inner = format!("echo 2 > {d}/two");
    let outer = format!("echo 1 > {d}/one; cd /; exec env sh -c '{inner}'");
    let mut child = Command::new("/usr/bin/env")
        .current_dir(&d)
        .args(["sh", "-c", &outer])
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    probe
        .wait_for(WAIT, |v| tprobe_tests::is(v, "process.exit", pid))
        .expect("exit");
    std::thread::sleep(Duration::from_millis(200));
    let lines = probe.lines();
    let mine: Vec<&Value> = lines
        .iter()
        .filter(|v| v["process"]["pid"] == pid)
        .collect();
    let execs: Vec<&&Value> = mine
        .iter()
        .filter(|v| v["kind"] == "process.exec")
        .collect();
    let exes: Vec<&str> = execs
        .iter()
        .map(|v| v["process"]["exe"].as_str().unwrap())
        .collect();
    let (env, sh) = (canonical("/usr/bin/env"), canonical("/bin/sh"));
    assert_eq!(exes, [&env, &sh, &env, &sh], "{execs:?}");
    assert_eq!(execs[0]["exec"]["filename"], "/usr/bin/env");
    assert_eq!(execs[2]["process"]["cwd"], "/");
    assert_eq!(execs[1]["process"]["cwd"], canonical(&d));
    // Each event belongs to the image of the last exec before it.
    let mut checked = 0;
    for v in &mine {
        let ts = v["ts"].as_str().unwrap();
        let Some(img) = execs.iter().rev().find(|e| e["ts"].as_str().unwrap() <= ts) else {
            continue;
        };
        for f in ["exe", "args", "cwd"] {
            assert_eq!(v["process"][f], img["process"][f], "{f} of {v}");
        }
        checked += 1;
    }
    assert!(checked > 10, "only {checked} events checked");
    let one = mine
        .iter()
        .find(|v| {
            v["kind"] == "file.create" && v["file"]["path"] == format!("{}/one", canonical(&d))
        })
        .expect("file.create of one");
    assert_eq!(one["process"]["exe"], sh.as_str());
    assert_eq!(one["process"]["args"], json!(["sh", "-c", outer]));
    let two = mine
        .iter()
        .find(|v| {
            v["kind"] == "file.create" && v["file"]["path"] == format!("{}/two", canonical(&d))
        })
        .expect("file.create of two");
    assert_eq!(two["process"]["args"], json!(["sh", "-c", inner]));
    // env's own opens (its libraries) carry env, not the sh that came after.
    assert!(mine
        .iter()
        .any(|v| v["kind"] == "file.open" && v["process"]["exe"] == env.as_str()));
    let _ = std::fs::remove_dir_all(d);
}

/// `exec -a name`: argv[0] is what the caller chose, exe the file that runs.
#[test]
fn exec_a_name_keeps_argv0_and_the_real_exe() {
    let probe = Probe::start(&["--events", "process.exec"]);
    let marker = format!("tprobe-exec-a-{}", std::process::id());
    quiet(Command::new("bash").args(["-c", &format!("exec -a fakename /bin/sleep 0 {marker}")]));
    let ev = with_arg(&probe, "process.exec", &marker, 1)
        .pop()
        .expect("exec");
    assert_eq!(ev["process"]["args"][0], "fakename");
    assert_eq!(ev["process"]["exe"], canonical("/bin/sleep"));
    assert_eq!(ev["exec"]["filename"], "/bin/sleep");
}

/// Fifty execs inside one flush interval, each with its own cwd: every one right.
#[test]
fn a_burst_of_execs_in_one_flush_interval() {
    let probe = Probe::start(&["--events", "process", "--flush-interval", "2s"]);
    let base = tempdir();
    let marker = format!("tprobe-burst-{}", std::process::id());
    let script = format!(
        "import os, subprocess\nfor i in range(50):\n    d = '{base}/b%d' % i\n    os.mkdir(d)\n    subprocess.Popen(['/bin/true', '{marker}', d], cwd=d)\n"
    );
    assert!(quiet(Command::new("python3").args(["-c", &script])).success());
    let execs = with_arg(&probe, "process.exec", &marker, 50);
    assert_eq!(execs.len(), 50);
    for ev in &execs {
        let d = ev["process"]["args"][2].as_str().unwrap();
        assert_eq!(ev["process"]["cwd"], canonical(d));
    }
    let exits = with_arg(&probe, "process.exit", &marker, 50);
    assert_eq!(exits.len(), 50);
    let _ = std::fs::remove_dir_all(base);
}

/// A cwd renamed before the exec is reported under its new name; a removed one under the
/// name it had, flagged `cwd_deleted`.
#[test]
fn renamed_and_deleted_cwd() {
    let probe = Probe::start(&["--events", "process.exec"]);
    let d = canonical(&tempdir());
    let m = format!("tprobe-cwd-{}", std::process::id());
    std::fs::create_dir(format!("{d}/a")).unwrap();
    std::fs::create_dir(format!("{d}/c")).unwrap();
    quiet(Command::new("sh").args([
        "-c",
        &format!("cd {d}/a && mv {d}/a {d}/b && exec /bin/true {m} renamed"),
    ]));
    quiet(Command::new("sh").args([
        "-c",
        &format!("cd {d}/c && rmdir {d}/c && exec /bin/true {m} deleted"),
    ]));
    let evs = with_arg(&probe, "process.exec", &m, 2);
    let by = |w: &str| {
        evs.iter()
            .find(|v| v["process"]["args"][2] == w)
            .unwrap_or_else(|| panic!("{w}: {evs:?}"))
    };
    let r = by("renamed");
    assert_eq!(r["process"]["cwd"], format!("{d}/b"));
    assert!(r["process"]["cwd_deleted"].is_null());
    let x = by("deleted");
    assert_eq!(x["process"]["cwd"], format!("{d}/c"));
    assert_eq!(x["process"]["cwd_deleted"], true);
    let _ = std::fs::remove_dir_all(d);
}

/// A cwd deeper than PATH_MAX: the kernel sends its last part, flagged.
#[test]
fn cwd_over_the_limit_is_truncated_and_flagged() {
    let probe = Probe::start(&["--events", "process.exec"]);
    let d = canonical(&tempdir());
    let m = format!("tprobe-deep-{}", std::process::id());
    let script = format!(
        "import os, subprocess\nos.chdir('{d}')\nfor i in range(20):\n    os.mkdir('x' * 250)\n    os.chdir('x' * 250)\nsubprocess.run(['/bin/true', '{m}'])\n"
    );
    assert!(quiet(Command::new("python3").args(["-c", &script])).success());
    let ev = with_arg(&probe, "process.exec", &m, 1).pop().expect("exec");
    let p = &ev["process"];
    assert_eq!(p["cwd_truncated"], true, "{p}");
    let cwd = p["cwd"].as_str().unwrap();
    assert!(cwd.len() < 4096 && cwd.ends_with(&"x".repeat(250)), "{cwd}");
    let _ = std::fs::remove_dir_all(d);
}

/// A setuid-root copy of a binary run by an unprivileged user: uid stays the user's, euid is
/// 0 and the capabilities are root's; the login uid is what the kernel holds.
#[test]
fn setuid_binary_runs_with_euid_0_for_a_user() {
    let probe = Probe::start(&["--events", "process.exec"]);
    let d = tempdir();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = format!("{d}/suid-sleep");
    std::fs::copy("/bin/sleep", &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let m = "0.01";
    assert!(quiet(Command::new("setpriv").args([
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        &bin,
        m
    ]))
    .success());
    let ev = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec" && v["process"]["exe"] == canonical(&bin)
        })
        .expect("exec of the setuid copy");
    let p = &ev["process"];
    assert_eq!(p["uid"], 65534);
    assert_eq!(p["euid"], 0);
    assert_eq!(p["egid"], 65534);
    let caps = p["caps"]["effective"].as_array().unwrap();
    assert!(caps.iter().any(|c| c == "CAP_DAC_OVERRIDE"), "{caps:?}");
    let login: u32 = std::fs::read_to_string("/proc/self/loginuid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if login == u32::MAX {
        assert!(p["auid"].is_null(), "{p}");
    } else {
        assert_eq!(p["auid"], login);
    }
    // The same program run by the user without the bit: no capabilities.
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    quiet(Command::new("setpriv").args([
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        &bin,
        "0.02",
    ]));
    let ev = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec"
                && v["process"]["exe"] == canonical(&bin)
                && v["process"]["args"][1] == "0.02"
        })
        .expect("exec without the bit");
    assert_eq!(ev["process"]["euid"], 65534);
    assert_eq!(ev["process"]["caps"]["effective"], json!([]));
    let _ = std::fs::remove_dir_all(d);
}

/// Namespaces are the kernel's at the event: the host's for a plain child, new ones after
/// `unshare`.
/// A login session's process: a controlling terminal (a pty that Python's `pty.spawn` makes)
/// shows as `process.tty`, and a login uid written the way pam_loginuid does shows as
/// `process.auid`; a process with neither has neither field.
#[test]
fn tty_and_login_uid_of_a_session() {
    let probe = Probe::start(&["--events", "process.exec"]);
    let m = format!("tprobe-tty-{}", std::process::id());
    let code = "import os, pty, sys\n\
                def child():\n\
                \x20   open('/proc/self/loginuid', 'w').write('4242')\n\
                \x20   os.execv('/bin/true', ['/bin/true', sys.argv[1], 'session'])\n\
                pid, fd = pty.fork()\n\
                if pid == 0:\n\
                \x20   child()\n\
                try:\n\
                \x20   while os.read(fd, 1024): pass\n\
                except OSError:\n\
                \x20   pass\n\
                os.waitpid(pid, 0)";
    assert!(quiet(Command::new("python3").args(["-c", code, &m])).success());
    quiet(
        Command::new("/bin/true")
            .args([&m, "plain"])
            .stdin(Stdio::null()),
    );
    // Only /bin/true's own execs (python may come through shims that carry the marker too).
    let mm = m.clone();
    let evs = probe.wait_n(WAIT, 2, move |v| {
        let a = &v["process"]["args"];
        v["kind"] == "process.exec" && a[0] == "/bin/true" && a[1] == mm.as_str()
    });
    let by = |w: &str| {
        evs.iter()
            .find(|v| v["process"]["args"][2] == w)
            .unwrap_or_else(|| panic!("no {w} exec in {evs:?}"))
    };
    let s = &by("session")["process"];
    let tty = s["tty"].as_str().unwrap_or_default();
    assert!(
        tty.strip_prefix("pts/")
            .is_some_and(|n| n.parse::<u32>().is_ok()),
        "{s}"
    );
    assert_eq!(s["auid"], 4242, "{s}");
    let p = &by("plain")["process"];
    // The test runner itself may sit on a terminal; its children then share it.
    let own_tty = std::fs::read_link("/proc/self/fd/0")
        .map(|l| l.to_string_lossy().starts_with("/dev/pts/"))
        .unwrap_or(false);
    if !own_tty {
        assert!(p["tty"].is_null(), "{p}");
    }
    assert_ne!(p["auid"], 4242, "{p}");
}

#[test]
fn namespaces_from_unshare_differ_from_the_hosts() {
    let probe = Probe::start(&["--events", "process.exec"]);
    let m = format!("tprobe-ns-{}", std::process::id());
    quiet(Command::new("/bin/true").args([&m, "host"]));
    quiet(Command::new("unshare").args([
        "--uts",
        "--ipc",
        "--net",
        "--mount",
        "--pid",
        "--fork",
        "/bin/true",
        &m,
        "new",
    ]));
    let by = |w: &'static str| {
        let m = m.clone();
        probe
            .wait_for(WAIT, move |v| {
                v["kind"] == "process.exec"
                    && v["process"]["args"][1] == m.as_str()
                    && v["process"]["args"][2] == w
            })
            .unwrap_or_else(|| panic!("no exec of /bin/true {w}"))
    };
    let (host, new) = (by("host"), by("new"));
    for ns in NS {
        assert_eq!(host["process"]["ns"][ns], ns_inode("self", ns), "{ns}");
    }
    for ns in ["pid", "mnt", "net", "uts", "ipc"] {
        assert_ne!(new["process"]["ns"][ns], host["process"]["ns"][ns], "{ns}");
    }
    for ns in ["user", "cgroup"] {
        assert_eq!(new["process"]["ns"][ns], host["process"]["ns"][ns], "{ns}");
    }
}

/// A script without `#!` (ENOEXEC) and a file without the x bit (EACCES), exec'd directly:
/// `process.exec_failed` with what was asked for, by the image that asked.
#[test]
fn failed_execs_are_reported() {
    let probe = Probe::start(&["--events", "process"]);
    let d = canonical(&tempdir());
    let noshebang = format!("{d}/no-shebang.sh");
    std::fs::write(&noshebang, "echo hi\n").unwrap();
    std::fs::set_permissions(&noshebang, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nox = format!("{d}/no-x");
    std::fs::copy("/bin/true", &nox).unwrap();
    std::fs::set_permissions(&nox, std::fs::Permissions::from_mode(0o644)).unwrap();
    for (path, errno) in [(&noshebang, "ENOEXEC"), (&nox, "EACCES")] {
        let script = format!(
            "import os\ntry:\n    os.execv('{path}', ['{path}', 'payload-arg'])\nexcept OSError:\n    pass\n"
        );
        quiet(Command::new("python3").args(["-c", &script]));
        let ev = probe
            .wait_for(WAIT, |v| {
                v["kind"] == "process.exec_failed" && v["exec"]["filename"] == path.as_str()
            })
            .unwrap_or_else(|| panic!("no exec_failed for {path}"));
        assert_eq!(ev["result"]["ok"], false);
        assert_eq!(ev["result"]["error"], errno);
        assert_eq!(ev["exec"]["args"], json!([path, "payload-arg"]));
        assert_eq!(ev["exec"]["args_truncated"], false);
        assert!(
            ev["process"]["exe"].as_str().unwrap().contains("python"),
            "{ev}"
        );
    }
    // A successful exec is not reported as failed.
    let lines = probe.lines();
    assert!(lines
        .iter()
        .filter(|v| v["kind"] == "process.exec_failed")
        .all(|v| v["result"]["ok"] == false));
    let _ = std::fs::remove_dir_all(d);
}

/// A memfd and a deleted file run through /proc/self/fd: `exec.fileless`, and the memfd's
/// name.
#[test]
fn fileless_execs_are_flagged() {
    let probe = Probe::start(&["--events", "process.exec"]);
    let d = canonical(&tempdir());
    let gone = format!("{d}/gone");
    std::fs::copy("/bin/true", &gone).unwrap();
    let script = format!(
        "import os, subprocess\n\
         fd = os.memfd_create('tprobe-mfd', 0)\n\
         os.write(fd, open('/bin/true', 'rb').read())\n\
         subprocess.run(['/proc/self/fd/%d' % fd, 'memfd-run'], pass_fds=[fd])\n\
         g = os.open('{gone}', os.O_RDONLY)\n\
         os.unlink('{gone}')\n\
         subprocess.run(['/proc/self/fd/%d' % g, 'deleted-run'], pass_fds=[g])\n"
    );
    assert!(quiet(Command::new("python3").args(["-c", &script])).success());
    let mfd = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec" && v["process"]["args"][1] == "memfd-run"
        })
        .expect("memfd exec");
    assert_eq!(mfd["exec"]["fileless"], true, "{mfd}");
    assert_eq!(mfd["exec"]["memfd_name"], "tprobe-mfd");
    assert_eq!(mfd["process"]["exe"], "/memfd:tprobe-mfd");
    let del = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec" && v["process"]["args"][1] == "deleted-run"
        })
        .expect("deleted exec");
    assert_eq!(del["exec"]["fileless"], true, "{del}");
    assert!(del["exec"]["memfd_name"].is_null());
    assert_eq!(del["process"]["exe"], gone.as_str());
    // A plain exec is not fileless.
    let plain = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec"
                && v["process"]["exe"]
                    .as_str()
                    .unwrap_or("")
                    .contains("python")
        })
        .expect("python exec");
    assert!(plain["exec"]["fileless"].is_null());
    let _ = std::fs::remove_dir_all(d);
}

/// `exit.cpu` from the task counters: a busy loop shows its user time.
#[test]
fn exit_reports_cpu_time() {
    let probe = Probe::start(&["--events", "process.exit"]);
    let m = format!("tprobe-cpu-{}", std::process::id());
    // A shell loop: no helper processes that carry the same arguments.
    quiet(Command::new("/bin/sh").args([
        "-c",
        "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done",
        &m,
    ]));
    let ev = with_arg(&probe, "process.exit", &m, 1).pop().expect("exit");
    let cpu = &ev["exit"]["cpu"];
    let user = cpu["user_ms"].as_u64().unwrap();
    let sys = cpu["system_ms"].as_u64().unwrap();
    assert!(user + sys >= 100, "{cpu}");
    assert!(user >= sys, "{cpu}");
}

/// Netlink and packet sockets are named for what they are; `raw` is kept for raw IP sockets.
#[test]
fn socket_families_are_named() {
    let probe = Probe::start(&["--events", "net.bind"]);
    let script = "import socket\n\
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE); s.bind((0, 0))\n\
        p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0); p.bind(('lo', 0))\n\
        r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); r.bind(('127.0.0.1', 0))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    let binds = probe.wait_n(WAIT, 3, |v| tprobe_tests::is(v, "net.bind", pid));
    let pairs: Vec<(Value, Value)> = binds
        .iter()
        .map(|v| (v["net"]["family"].clone(), v["net"]["transport"].clone()))
        .collect();
    assert_eq!(
        pairs,
        [
            (json!("netlink"), json!("netlink")),
            (json!("packet"), json!("packet")),
            (json!("ipv4"), json!("raw"))
        ],
        "{binds:?}"
    );
}

/// `parent.args` and `process.ancestors` follow the real tree (parent first, each with its own
/// command line and entity id), up to `--ancestors`.
#[test]
fn parent_args_and_ancestors_follow_the_tree() {
    let probe = Probe::start(&["--events", "process.exec"]);
    let one = Probe::start(&["--events", "process.exec", "--ancestors", "1"]);
    let none = Probe::start(&["--events", "process.exec", "--ancestors", "0"]);
    let m = format!("tprobe-anc-{}", std::process::id());
    let inner = format!("/bin/true {m}; true");
    let outer = format!("sh -c '{inner}'; true");
    assert!(quiet(Command::new("bash").args(["-c", &outer])).success());
    let find = |p: &Probe| {
        let m = m.clone();
        p.wait_for(WAIT, move |v| {
            v["kind"] == "process.exec" && v["process"]["args"] == json!(["/bin/true", m.as_str()])
        })
        .expect("exec of /bin/true")
    };
    let ev = find(&probe);
    assert_eq!(ev["parent"]["args"], json!(["sh", "-c", inner]));
    let anc = ev["process"]["ancestors"].as_array().unwrap();
    assert!(anc.len() >= 3 && anc.len() <= 5, "{anc:?}");
    assert_eq!(anc[0]["args"], ev["parent"]["args"]);
    assert_eq!(anc[0]["entity_id"], ev["parent"]["entity_id"]);
    assert_eq!(anc[0]["exe"], canonical("/bin/sh"));
    assert_eq!(anc[1]["args"], json!(["bash", "-c", outer]));
    assert_eq!(anc[2]["pid"], std::process::id());
    assert!(anc.iter().all(|a| a["start_time"].is_string()));
    assert_eq!(
        find(&one)["process"]["ancestors"].as_array().unwrap().len(),
        1
    );
    assert!(find(&none)["process"]["ancestors"].is_null());
}
