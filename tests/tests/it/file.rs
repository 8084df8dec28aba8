//! file.* events from the real syscall tracepoints: one event per call, with its result,
//! resolved paths and exact odd names; volume controls drop what they should.
use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{json, Value};
use tprobe_tests::{b64, Probe, WAIT};

/// A fresh directory for one test (unique per test process and tag).
fn tmpdir(tag: &str) -> PathBuf {
    let d = PathBuf::from(format!("/tmp/tprobe-file-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    // Traversable by the unprivileged child of the EACCES test.
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    d
}

fn c(p: impl AsRef<[u8]>) -> CString {
    CString::new(p.as_ref()).unwrap()
}

fn cp(p: &Path) -> CString {
    c(p.as_os_str().as_bytes())
}

/// The exact bytes of `file.<field>` (from `<field>_b64` when it is not UTF-8).
fn bytes_of(v: &Value, field: &str) -> Vec<u8> {
    let f = &v["file"];
    match f.get(format!("{field}_b64")) {
        Some(b) => b64(b),
        None => f[field].as_str().unwrap_or_default().as_bytes().to_vec(),
    }
}

fn starts_with(v: &Value, field: &str, dir: &Path) -> bool {
    bytes_of(v, field).starts_with(dir.as_os_str().as_bytes())
}

/// file.* events about paths under `dir`.
fn under(v: &Value, dir: &Path) -> bool {
    v["kind"].as_str().unwrap_or("").starts_with("file.")
        && (starts_with(v, "path", dir) || starts_with(v, "target_path", dir))
}

/// Creates the sentinel `dir/zz-sentinel` (a mkdir) and waits for its event, then returns
/// every file event under `dir` (the sentinel's excluded): the kernel keeps one thread's events
/// in order, so all earlier ones have arrived.
fn settle(probe: &Probe, dir: &Path) -> Vec<Value> {
    let s = dir.join("zz-sentinel");
    std::fs::create_dir(&s).unwrap();
    let sp = s.to_str().unwrap().to_owned();
    probe
        .wait_for(WAIT, |v| {
            v["kind"] == "file.mkdir" && v["file"]["path"] == sp
        })
        .unwrap_or_else(|| panic!("no event for the sentinel {sp}"));
    std::thread::sleep(Duration::from_millis(300));
    probe
        .lines()
        .into_iter()
        .filter(|v| under(v, dir) && v["file"]["path"] != sp)
        .collect()
}

/// Exactly one event of `kind`/`syscall` for `path`; returns it.
fn one(events: &[Value], kind: &str, syscall: &str, path: &Path) -> Value {
    let p = path.as_os_str().as_bytes();
    let m: Vec<&Value> = events
        .iter()
        .filter(|v| {
            v["kind"] == kind && v["file"]["syscall"] == syscall && bytes_of(v, "path") == p
        })
        .collect();
    assert_eq!(
        m.len(),
        1,
        "exactly one {kind} ({syscall}) for {}: {m:#?}\nall: {events:#?}",
        path.display()
    );
    m[0].clone()
}

fn ok(v: &Value) {
    assert_eq!(v["result"]["ok"], true, "{v}");
    assert_eq!(v["file"]["path_resolved"], true, "{v}");
    assert_eq!(v["file"]["path_truncated"], false, "{v}");
    assert_eq!(v["process"]["pid"], std::process::id(), "{v}");
}

fn sys(r: libc::c_long, what: &str) -> libc::c_long {
    assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
    r
}

#[test]
fn every_file_syscall_gives_one_event_with_its_fields() {
    let d = tmpdir("each");
    let probe = Probe::start(&["--events", "file", "--file-include", d.to_str().unwrap()]);
    let p = |n: &str| d.join(n);
    let at = libc::AT_FDCWD as libc::c_long;
    unsafe {
        use libc::*;
        let fd = sys(
            syscall(
                SYS_open,
                cp(&p("open")).as_ptr(),
                O_WRONLY | O_CREAT | O_EXCL,
                0o640,
            ),
            "open",
        );
        close(fd as i32);
        // Read-only opens are off by default: no event.
        close(sys(
            syscall(SYS_open, cp(&p("open")).as_ptr(), O_RDONLY),
            "ro open",
        ) as i32);
        close(sys(
            syscall(SYS_openat, at, cp(&p("open")).as_ptr(), O_WRONLY | O_APPEND),
            "openat",
        ) as i32);
        let how: [u64; 3] = [(O_WRONLY | O_CREAT | O_CLOEXEC) as u64, 0o600, 0];
        close(sys(
            syscall(
                SYS_openat2,
                at,
                cp(&p("openat2")).as_ptr(),
                how.as_ptr(),
                24usize,
            ),
            "openat2",
        ) as i32);
        close(sys(syscall(SYS_creat, cp(&p("creat")).as_ptr(), 0o604), "creat") as i32);
        sys(syscall(SYS_mkdir, cp(&p("dir")).as_ptr(), 0o750), "mkdir");
        sys(
            syscall(SYS_mkdirat, at, cp(&p("dir2")).as_ptr(), 0o700),
            "mkdirat",
        );
        sys(
            syscall(
                SYS_rename,
                cp(&p("open")).as_ptr(),
                cp(&p("renamed")).as_ptr(),
            ),
            "rename",
        );
        sys(
            syscall(
                SYS_renameat,
                at,
                cp(&p("renamed")).as_ptr(),
                at,
                cp(&p("renamed2")).as_ptr(),
            ),
            "renameat",
        );
        sys(
            syscall(
                SYS_renameat2,
                at,
                cp(&p("renamed2")).as_ptr(),
                at,
                cp(&p("f")).as_ptr(),
                1, /* RENAME_NOREPLACE */
            ),
            "renameat2",
        );
        sys(syscall(SYS_chmod, cp(&p("f")).as_ptr(), 0o4755), "chmod");
        sys(
            syscall(SYS_fchmodat, at, cp(&p("f")).as_ptr(), 0o644),
            "fchmodat",
        );
        sys(
            syscall(452 /* fchmodat2 */, at, cp(&p("f")).as_ptr(), 0o640, 0),
            "fchmodat2",
        );
        sys(
            syscall(SYS_chown, cp(&p("f")).as_ptr(), 1234, 5678),
            "chown",
        );
        sys(
            syscall(
                SYS_fchownat,
                at,
                cp(&p("f")).as_ptr(),
                1,
                -1i64 as u32 as c_long,
                AT_SYMLINK_NOFOLLOW,
            ),
            "fchownat",
        );
        sys(
            syscall(SYS_link, cp(&p("f")).as_ptr(), cp(&p("hard")).as_ptr()),
            "link",
        );
        sys(
            syscall(
                SYS_linkat,
                at,
                cp(&p("f")).as_ptr(),
                at,
                cp(&p("hard2")).as_ptr(),
                0,
            ),
            "linkat",
        );
        sys(
            syscall(SYS_symlink, c("f").as_ptr(), cp(&p("soft")).as_ptr()),
            "symlink",
        );
        sys(
            syscall(
                SYS_symlinkat,
                c("../elsewhere").as_ptr(),
                at,
                cp(&p("soft2")).as_ptr(),
            ),
            "symlinkat",
        );
        sys(syscall(SYS_lchown, cp(&p("soft")).as_ptr(), 7, 8), "lchown");
        sys(syscall(SYS_truncate, cp(&p("f")).as_ptr(), 7), "truncate");
        // fd-based calls report the fd's path.
        let fd = sys(
            syscall(SYS_openat, at, cp(&p("hard2")).as_ptr(), O_RDWR),
            "openat rw",
        ) as c_long;
        sys(syscall(SYS_fchmod, fd, 0o600), "fchmod");
        sys(
            syscall(SYS_fchown, fd, 4321, -1i64 as u32 as c_long),
            "fchown",
        );
        sys(syscall(SYS_ftruncate, fd, 3), "ftruncate");
        close(fd as i32);
        sys(syscall(SYS_unlink, cp(&p("hard")).as_ptr()), "unlink");
        sys(
            syscall(SYS_unlinkat, at, cp(&p("soft")).as_ptr(), 0),
            "unlinkat",
        );
        sys(syscall(SYS_rmdir, cp(&p("dir")).as_ptr()), "rmdir");
        sys(
            syscall(SYS_unlinkat, at, cp(&p("dir2")).as_ptr(), AT_REMOVEDIR),
            "unlinkat dir",
        );
    }
    let ev = settle(&probe, &d);
    let s = |v: &Value, f: &str| v["file"][f].clone();

    let v = one(&ev, "file.create", "open", &p("open"));
    ok(&v);
    assert_eq!(s(&v, "flags"), json!(["O_WRONLY", "O_CREAT", "O_EXCL"]));
    assert_eq!(s(&v, "mode"), "0640");
    assert!(v["result"]["fd"].as_i64().unwrap() >= 0);
    assert_eq!(
        v["process"]["args"].as_array().map(|a| !a.is_empty()),
        Some(true)
    );
    let v = one(&ev, "file.open", "openat", &p("open"));
    ok(&v);
    assert_eq!(s(&v, "flags"), json!(["O_WRONLY", "O_APPEND"]));
    assert!(
        v["file"].get("mode").is_none(),
        "no mode without O_CREAT: {v}"
    );
    let v = one(&ev, "file.create", "openat2", &p("openat2"));
    assert_eq!(
        (s(&v, "flags"), s(&v, "mode")),
        (json!(["O_WRONLY", "O_CREAT", "O_CLOEXEC"]), json!("0600"))
    );
    let v = one(&ev, "file.create", "creat", &p("creat"));
    assert_eq!(
        (s(&v, "flags"), s(&v, "mode")),
        (json!(["O_WRONLY", "O_CREAT", "O_TRUNC"]), json!("0604"))
    );
    assert_eq!(
        s(&one(&ev, "file.mkdir", "mkdir", &p("dir")), "mode"),
        "0750"
    );
    assert_eq!(
        s(&one(&ev, "file.mkdir", "mkdirat", &p("dir2")), "mode"),
        "0700"
    );
    let v = one(&ev, "file.rename", "rename", &p("open"));
    ok(&v);
    assert_eq!(s(&v, "target_path"), p("renamed").to_str().unwrap());
    assert_eq!(
        s(
            &one(&ev, "file.rename", "renameat", &p("renamed")),
            "target_path"
        ),
        p("renamed2").to_str().unwrap()
    );
    let v = one(&ev, "file.rename", "renameat2", &p("renamed2"));
    assert_eq!(
        (s(&v, "target_path"), s(&v, "flags")),
        (json!(p("f")), json!(["RENAME_NOREPLACE"]))
    );
    assert_eq!(
        s(&one(&ev, "file.chmod", "chmod", &p("f")), "mode"),
        "04755"
    );
    assert_eq!(
        s(&one(&ev, "file.chmod", "fchmodat", &p("f")), "mode"),
        "0644"
    );
    assert_eq!(
        s(&one(&ev, "file.chmod", "fchmodat2", &p("f")), "mode"),
        "0640"
    );
    let v = one(&ev, "file.chown", "chown", &p("f"));
    assert_eq!((s(&v, "uid"), s(&v, "gid")), (json!(1234), json!(5678)));
    let v = one(&ev, "file.chown", "fchownat", &p("f"));
    assert_eq!(
        (s(&v, "uid"), s(&v, "flags")),
        (json!(1), json!(["AT_SYMLINK_NOFOLLOW"]))
    );
    assert!(
        v["file"].get("gid").is_none(),
        "gid -1 means unchanged: {v}"
    );
    let v = one(&ev, "file.chown", "lchown", &p("soft"));
    assert_eq!((s(&v, "uid"), s(&v, "gid")), (json!(7), json!(8)));
    // link: path is the new name, target_path the existing file.
    assert_eq!(
        s(&one(&ev, "file.link", "link", &p("hard")), "target_path"),
        p("f").to_str().unwrap()
    );
    assert_eq!(
        s(&one(&ev, "file.link", "linkat", &p("hard2")), "target_path"),
        p("f").to_str().unwrap()
    );
    // symlink: target_path is the link's text, as written.
    assert_eq!(
        s(
            &one(&ev, "file.symlink", "symlink", &p("soft")),
            "target_path"
        ),
        "f"
    );
    assert_eq!(
        s(
            &one(&ev, "file.symlink", "symlinkat", &p("soft2")),
            "target_path"
        ),
        "../elsewhere"
    );
    assert_eq!(
        s(&one(&ev, "file.truncate", "truncate", &p("f")), "length"),
        7
    );
    let v = one(&ev, "file.chmod", "fchmod", &p("hard2"));
    ok(&v);
    assert_eq!(
        (s(&v, "mode"), s(&v, "resolved_from")),
        (json!("0600"), json!("kernel"))
    );
    assert!(v["file"]["fd"].as_i64().unwrap() >= 0);
    let v = one(&ev, "file.chown", "fchown", &p("hard2"));
    assert_eq!(s(&v, "uid"), 4321);
    assert_eq!(
        s(
            &one(&ev, "file.truncate", "ftruncate", &p("hard2")),
            "length"
        ),
        3
    );
    one(&ev, "file.unlink", "unlink", &p("hard"));
    one(&ev, "file.unlink", "unlinkat", &p("soft"));
    one(&ev, "file.rmdir", "rmdir", &p("dir"));
    let v = one(&ev, "file.rmdir", "unlinkat", &p("dir2"));
    assert_eq!(s(&v, "flags"), json!(["AT_REMOVEDIR"]));
    // Nothing else: the read-only opens (and nothing twice).
    assert_eq!(
        ev.len(),
        28,
        "one event per call, none for read-only opens: {ev:#?}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Runs `f` in a forked child and waits for it; returns the child's pid. The child does only
/// raw syscalls (safe after fork in a threaded process) and exits at once: its paths must
/// already have been resolved in the kernel.
fn in_child(f: impl FnOnce()) -> u32 {
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            f();
            libc::_exit(0);
        }
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
        assert_eq!(st, 0, "child failed");
        pid as u32
    }
}

#[test]
fn failures_are_reported_with_errno() {
    let d = tmpdir("fail");
    let probe = Probe::start(&[
        "--events",
        "file",
        "--file-reads",
        "--file-include",
        d.to_str().unwrap(),
    ]);
    let missing = d.join("missing/x");
    let secret = d.join("secret");
    std::fs::write(&secret, b"s").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (m, s) = (cp(&missing), cp(&secret));
    unsafe {
        assert!(libc::open(m.as_ptr(), libc::O_RDONLY) < 0);
    }
    // A permission failure as an unprivileged user.
    let child = in_child(|| unsafe {
        if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
            libc::_exit(3);
        }
        if libc::open(s.as_ptr(), libc::O_RDONLY) >= 0 {
            libc::_exit(4);
        }
    });
    let ev = settle(&probe, &d);
    let v = one(&ev, "file.open", "openat", &missing);
    assert_eq!(
        v["result"],
        json!({"ok": false, "errno": 2, "error": "ENOENT"})
    );
    assert_eq!(v["file"]["flags"], json!(["O_RDONLY"]));
    let v = one(&ev, "file.open", "openat", &secret);
    assert_eq!(
        v["result"],
        json!({"ok": false, "errno": 13, "error": "EACCES"})
    );
    assert_eq!(v["process"]["pid"], child);
    assert_eq!(v["process"]["uid"], 65534);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn odd_and_long_names_come_out_exact() {
    let d = tmpdir("odd");
    let probe = Probe::start(&[
        "--events",
        "file.create,file.mkdir",
        "--file-include",
        d.to_str().unwrap(),
    ]);
    let names: Vec<Vec<u8>> = vec![
        b"line1\nline2".to_vec(),
        b"bad\xff\xfename".to_vec(),
        b"with space and \"quotes\"".to_vec(),
    ];
    let mut want = Vec::new();
    for n in &names {
        let mut p = d.as_os_str().as_bytes().to_vec();
        p.push(b'/');
        p.extend(n);
        std::fs::write(std::ffi::OsStr::from_bytes(&p), b"").unwrap();
        want.push(p);
    }
    // A 4000-byte path: nested 200-byte directories, then a file to reach 4000 exactly.
    let mut long = d.clone();
    while long.as_os_str().len() + 201 < 4000 - 10 {
        long.push("d".repeat(200));
        std::fs::create_dir(&long).unwrap();
    }
    let rest = 4000 - long.as_os_str().len() - 1;
    long.push("f".repeat(rest));
    assert_eq!(long.as_os_str().len(), 4000);
    std::fs::write(&long, b"").unwrap();
    // Longer than PATH_MAX: the kernel refuses it, the event says the path was cut.
    let mut huge = long.as_os_str().as_bytes().to_vec();
    huge.extend(b"/".iter().chain([b'x'; 200].iter()));
    let hc = c(&huge);
    unsafe {
        assert!(libc::open(hc.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o600) < 0);
    }
    let ev = settle(&probe, &d);
    for w in &want {
        let m: Vec<&Value> = ev
            .iter()
            .filter(|v| v["kind"] == "file.create" && bytes_of(v, "path") == *w)
            .collect();
        assert_eq!(
            m.len(),
            1,
            "one event for {:?}: {ev:#?}",
            String::from_utf8_lossy(w)
        );
        assert_eq!(m[0]["file"]["path_truncated"], false);
        let lossy = String::from_utf8_lossy(w);
        assert_eq!(m[0]["file"]["path"], lossy.as_ref());
        assert_eq!(
            m[0]["file"].get("path_b64").is_some(),
            std::str::from_utf8(w).is_err()
        );
    }
    let v = one(&ev, "file.create", "openat", &long);
    ok(&v);
    let v: Vec<&Value> = ev
        .iter()
        .filter(|v| v["file"]["path_truncated"] == true)
        .collect();
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0]["result"]["error"], "ENAMETOOLONG");
    assert_eq!(bytes_of(v[0], "path"), huge[..4095].to_vec());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn relative_and_dirfd_paths_are_made_absolute_in_the_kernel() {
    let d = tmpdir("rel");
    std::fs::create_dir(d.join("sub")).unwrap();
    let probe = Probe::start(&["--events", "file", "--file-include", d.to_str().unwrap()]);
    let (dc, sub) = (cp(&d), cp(&d.join("sub")));
    // Short-lived child: by the time userspace reads the event, its cwd and fds are gone.
    let child = in_child(|| unsafe {
        use libc::*;
        if chdir(dc.as_ptr()) != 0 {
            _exit(3);
        }
        close(open(c"rel-file".as_ptr(), O_WRONLY | O_CREAT, 0o600));
        let dfd = open(sub.as_ptr(), O_RDONLY | O_DIRECTORY);
        mkdirat(dfd, c"viafd".as_ptr(), 0o700);
        renameat(dfd, c"viafd".as_ptr(), AT_FDCWD, c"moved".as_ptr());
        linkat(AT_FDCWD, c"rel-file".as_ptr(), dfd, c"hard".as_ptr(), 0);
        fchownat(dfd, c"".as_ptr(), 0, 0, AT_EMPTY_PATH);
        close(open(c"./sub/../dotted".as_ptr(), O_WRONLY | O_CREAT, 0o600));
    });
    let ev = settle(&probe, &d);
    let p = |n: &str| d.join(n);
    for v in &ev {
        assert_eq!(v["process"]["pid"], child, "{v}");
        assert_eq!(v["file"]["path_resolved"], true, "{v}");
        assert_eq!(v["file"]["resolved_from"], "kernel", "{v}");
    }
    one(&ev, "file.create", "openat", &p("rel-file"));
    one(&ev, "file.mkdir", "mkdirat", &p("sub/viafd"));
    let v = one(&ev, "file.rename", "renameat", &p("sub/viafd"));
    assert_eq!(v["file"]["target_path"], p("moved").to_str().unwrap());
    assert_eq!(v["file"]["target_path_resolved"], true);
    let v = one(&ev, "file.link", "linkat", &p("sub/hard"));
    assert_eq!(v["file"]["target_path"], p("rel-file").to_str().unwrap());
    let v = one(&ev, "file.chown", "fchownat", &p("sub"));
    assert_eq!(v["file"]["flags"], json!(["AT_EMPTY_PATH"]));
    // Joined as written, not normalised (symlinks make `..` ambiguous).
    one(&ev, "file.create", "openat", &p("./sub/../dotted"));
    assert_eq!(ev.len(), 6, "{ev:#?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn disabled_kinds_and_excluded_prefixes_produce_nothing() {
    let d = tmpdir("quiet");
    let skip = d.join("skip");
    std::fs::create_dir(&skip).unwrap();
    let mut args = vec![
        "--events".to_owned(),
        "file.mkdir,file.create".to_owned(),
        "--file-include".to_owned(),
        d.display().to_string(),
        "--file-exclude".to_owned(),
        skip.display().to_string(),
    ];
    for n in 1..=8 {
        let s = d.join("s".repeat(n));
        std::fs::create_dir(&s).unwrap();
        args.extend(["--file-exclude".to_owned(), s.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let probe = Probe::start(&args);
    // `d/s…s/../eN` lies outside the excluded `d/s…s` though it starts with it: the kernel must
    // leave it to userspace, whatever byte of an 8-byte word its one `/..` falls on.
    let escapes: Vec<PathBuf> = (1..=8)
        .map(|n| d.join(format!("{}/../e{n}", "s".repeat(n))))
        .collect();
    for e in &escapes {
        std::fs::write(e, b"x").unwrap();
    }
    std::fs::write(skip.join("hidden"), b"x").unwrap(); // excluded prefix
    std::fs::create_dir(skip.join("hidden-dir")).unwrap(); // excluded prefix
    std::fs::write(d.join("skipped-not"), b"x").unwrap(); // `/skip` is not a prefix of it
    std::fs::remove_file(d.join("skipped-not")).unwrap(); // file.unlink is disabled
    std::fs::set_permissions(
        skip.join("hidden"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap(); // disabled
               // Relative paths under the excluded prefix are dropped after resolution.
    let sc = cp(&skip);
    in_child(|| unsafe {
        if libc::chdir(sc.as_ptr()) == 0 {
            libc::close(libc::open(
                c"rel".as_ptr(),
                libc::O_WRONLY | libc::O_CREAT,
                0o600,
            ));
            libc::mkdir(c"../skip/./rel-dir".as_ptr(), 0o700);
        }
    });
    let ev = settle(&probe, &d);
    assert_eq!(
        ev.len(),
        1 + escapes.len(),
        "only the creates outside the excluded prefix: {ev:#?}"
    );
    one(&ev, "file.create", "openat", &d.join("skipped-not"));
    for e in &escapes {
        one(&ev, "file.create", "openat", e);
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn concurrent_threads_each_get_their_own_calls() {
    // Each thread's call is kept in its own task-local record between sys_enter and sys_exit:
    // threads interleaving creates, relative creates (resolved at the exit), mkdirs and
    // unreported read-only opens must each get exactly their own events and results.
    let d = tmpdir("threads");
    let probe = Probe::start(&["--events", "file", "--file-include", d.to_str().unwrap()]);
    const THREADS: usize = 4;
    const EACH: usize = 50;
    let tids: Vec<i64> = (0..THREADS)
        .map(|t| {
            let d = d.clone();
            std::thread::spawn(move || {
                let dfd =
                    unsafe { libc::open(cp(&d).as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
                assert!(dfd >= 0);
                for k in 0..EACH {
                    unsafe {
                        use libc::*;
                        let fd = open(
                            cp(&d.join(format!("t{t}-{k}"))).as_ptr(),
                            O_WRONLY | O_CREAT,
                            0o600,
                        );
                        assert!(fd >= 0);
                        // Read-only: dropped at its entry, between two reported calls.
                        close(open(cp(&d.join(format!("t{t}-{k}"))).as_ptr(), O_RDONLY));
                        close(fd);
                        close(openat(
                            dfd,
                            c(format!("r{t}-{k}")).as_ptr(),
                            O_WRONLY | O_CREAT,
                            0o600,
                        ));
                        assert_eq!(mkdir(cp(&d.join(format!("m{t}-{k}"))).as_ptr(), 0o700), 0);
                    }
                }
                unsafe { libc::close(dfd) };
                unsafe { libc::syscall(libc::SYS_gettid) }
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let ev = settle(&probe, &d);
    for (t, tid) in tids.iter().enumerate() {
        for k in 0..EACH {
            for (kind, name) in [
                ("file.create", format!("t{t}-{k}")),
                ("file.create", format!("r{t}-{k}")),
                ("file.mkdir", format!("m{t}-{k}")),
            ] {
                let sys = if kind == "file.mkdir" {
                    "mkdir"
                } else {
                    "openat"
                };
                let v = one(&ev, kind, sys, &d.join(&name));
                ok(&v);
                assert_eq!(v["process"]["tid"], *tid, "{v}");
                if kind == "file.create" {
                    assert!(v["result"]["fd"].as_i64().is_some_and(|fd| fd >= 0), "{v}");
                }
            }
        }
    }
    assert_eq!(ev.len(), THREADS * EACH * 3, "no other events");
    let _ = std::fs::remove_dir_all(&d);
}
