//! SHA-256 of executables: right for binaries and scripts (the script's own and its
//! interpreter's), cached, and a reason instead of a wrong hash when the file is too large,
//! gone, or out of reach.
use std::{
    os::unix::fs::PermissionsExt as _,
    process::{Command, Stdio},
};

use tprobe_tests::{Probe, WAIT};

use crate::process::tempdir;

fn sha256(path: &str) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn canonical(p: &str) -> String {
    std::fs::canonicalize(p)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn run(cmd: &mut Command) {
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

#[test]
fn binaries_and_scripts_are_hashed_and_cached() {
    let probe = Probe::start(&["--events", "process.exec"]);
    let d = canonical(&tempdir());
    let m = format!("tprobe-hash-{}", std::process::id());
    run(Command::new("/bin/true").args([&m, "first"]));
    run(Command::new("/bin/true").args([&m, "second"]));
    let script = format!("{d}/hello.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    run(Command::new(&script).arg(&m));
    let want = sha256("/bin/true");
    // Both execs, the second answered from the cache.
    for which in ["first", "second"] {
        let (m, w) = (m.clone(), which.to_owned());
        let ev = probe
            .wait_for(WAIT, move |v| {
                let a = &v["process"]["args"];
                v["kind"] == "process.exec" && a[1] == m.as_str() && a[2] == w.as_str()
            })
            .unwrap_or_else(|| panic!("no {which} exec"));
        assert_eq!(ev["process"]["hash"]["sha256"], want.as_str(), "{ev}");
    }
    let s = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec" && v["exec"]["filename"] == script.as_str()
        })
        .expect("script exec");
    // The script's own file, and the interpreter that runs it.
    assert_eq!(s["exec"]["hash"]["sha256"], sha256(&script), "{s}");
    assert_eq!(s["process"]["hash"]["sha256"], sha256("/bin/sh"), "{s}");
    let st = probe.stop();
    let stop = st.lines.last().unwrap();
    let h = &stop["probe"]["hashes"];
    assert!(h["cache_hits"].as_u64().unwrap() >= 1, "{h}");
    assert!(h["cache_hit_rate"].as_f64().unwrap() > 0.0, "{h}");
    let _ = std::fs::remove_dir_all(d);
}

/// A process running before the probe started is known from /proc, and its exe is hashed all
/// the same (through its own root while it runs).
#[test]
fn processes_older_than_the_probe_are_hashed() {
    let d = canonical(&tempdir());
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A copy of sleep of our own, so the hash is of this file and not a cached one.
    let bin = format!("{d}/old-sleeper");
    let mut bytes = std::fs::read("/bin/sleep").unwrap();
    bytes.extend_from_slice(format!("tprobe-{}", std::process::id()).as_bytes());
    std::fs::write(&bin, bytes).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut old = Command::new(&bin).arg("4").spawn().unwrap();
    let pid = old.id();
    let probe = Probe::start(&["--events", "process.exit"]);
    let ev = probe
        .wait_for(WAIT, move |v| {
            v["kind"] == "process.exit" && v["process"]["pid"] == pid
        })
        .expect("the old process's exit");
    let _ = old.wait();
    assert_eq!(ev["process"]["source"], "procfs", "{ev}");
    assert_eq!(ev["process"]["exe"], bin.as_str(), "{ev}");
    assert_eq!(ev["process"]["hash"]["sha256"], sha256(&bin), "{ev}");
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn too_large_deleted_and_unreachable_files_get_a_reason() {
    // Long flush interval: the probe reads the exec events after the processes are gone.
    let probe = Probe::start(&["--events", "process.exec", "--flush-interval", "2s"]);
    let d = canonical(&tempdir());
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let m = format!("tprobe-hashbad-{}", std::process::id());
    // A valid program padded (sparsely) to 1 GiB.
    let big = format!("{d}/big");
    std::fs::copy("/bin/true", &big).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    run(Command::new(&big).arg(&m));
    // Deleted right after it ran (and exited).
    let gone = format!("{d}/gone");
    std::fs::copy("/bin/true", &gone).unwrap();
    run(Command::new(&gone).arg(&m));
    std::fs::remove_file(&gone).unwrap();
    // Run inside a private mount namespace from a tmpfs only it sees; all gone by the time
    // the probe looks.
    let priv_dir = format!("{d}/priv");
    std::fs::create_dir(&priv_dir).unwrap();
    run(Command::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &format!("mount -t tmpfs none {priv_dir} && cp /bin/true {priv_dir}/t && {priv_dir}/t {m} hidden"),
    ]));
    let by = |exe: &str| {
        let e = exe.to_owned();
        probe
            .wait_for(WAIT, move |v| {
                v["kind"] == "process.exec" && v["process"]["exe"] == e.as_str()
            })
            .unwrap_or_else(|| panic!("no exec of {exe}"))
    };
    let b = by(&big);
    assert_eq!(b["process"]["hash_skipped"], "too_large", "{b}");
    assert!(b["process"]["hash"].is_null());
    let g = by(&gone);
    assert_eq!(g["process"]["hash_error"], "not_found", "{g}");
    let h = by(&format!("{priv_dir}/t"));
    assert_eq!(h["process"]["hash_error"], "root_unavailable", "{h}");
    assert!(h["process"]["hash"].is_null());
    let _ = std::fs::remove_dir_all(d);
}
