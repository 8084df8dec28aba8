//! Baselines end to end: a real busybox container under containerd (and a host workload in a
//! cgroup the test makes) learns its normal loop, then the same loop gives no alert, four
//! injected deviations give exactly four alerts, a burst of known connections gives one rate
//! alert, and a second container after a probe restart alerts from the saved profile without
//! learning. Bad profile files, a full disk, a read-only folder and `tprobe baseline
//! show|merge|diff` are checked too.
use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use tprobe_tests::{
    containerd::{unique, Containerd, IMAGE},
    dns::{Answer, Responder},
    tprobe_bin, Probe, Stopped, WAIT,
};

const WORKLOAD: &str = "tprobe.local/busybox";

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tprobe-baseline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An HTTP server on 127.0.0.1 at a port below the ephemeral range (a "known listener"):
/// answers every request with a short 200. Stops on drop.
struct Http {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A free TCP port on 127.0.0.1 below the ephemeral range.
fn low_port(from: u16) -> (u16, TcpListener) {
    let base = from + (std::process::id() % 2000) as u16;
    for p in base..base + 500 {
        if let Ok(l) = TcpListener::bind((Ipv4Addr::LOCALHOST, p)) {
            return (p, l);
        }
    }
    panic!("no free port near {base}");
}

impl Http {
    fn start() -> Http {
        let (port, l) = low_port(21000);
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
                        let mut buf = [0u8; 2048];
                        let _ = c.read(&mut buf);
                        let _ = c.write_all(
                            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Http {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cgroup of the cgroup2 hierarchy made for the test, with a host shell loop in it that
/// sources `script` when it exists. Removed on drop.
struct HostLoop {
    child: std::process::Child,
    dir: PathBuf,
    name: String,
}

fn cgroup2_mount() -> PathBuf {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            post.starts_with("cgroup2 ")
                .then(|| pre.split(' ').nth(4).map(PathBuf::from))?
        })
        .expect("a cgroup2 mount")
}

impl HostLoop {
    fn start(script: &Path) -> HostLoop {
        let name = unique("tprobe-bl-host");
        let dir = cgroup2_mount().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {} && exec /bin/sh -c 'while :; do /bin/true; [ -f {s} ] && . {s}; sleep 0.5; done'",
                dir.join("cgroup.procs").display(),
                s = script.display()
            ))
            .spawn()
            .unwrap();
        HostLoop { child, dir, name }
    }

    fn workload(&self) -> String {
        format!("host:{}", self.name)
    }
}

impl Drop for HostLoop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Children of the loop (a sleep) leave with it; wait for the cgroup to empty.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            if let Ok(p) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
                for pid in p.lines().filter_map(|l| l.parse::<i32>().ok()) {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn is_baseline(v: &Value, workload: &str) -> bool {
    v["kind"] == "alert"
        && v["alert"]["source"] == "baseline"
        && v["alert"]["baseline"]["workload"] == workload
}

fn alerts_of(lines: &[Value], workload: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|v| is_baseline(v, workload))
        .cloned()
        .collect()
}

fn hit(v: &Value) -> (String, String) {
    let b = &v["alert"]["baseline"];
    (
        b["dimension"].as_str().unwrap().to_owned(),
        b["value"].as_str().unwrap().to_owned(),
    )
}

/// The profile of `workload` in `dir`, once it has been written in `state`.
fn wait_profile(dir: &Path, workload: &str, state: &str, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if v["workload"] == workload && v["state"] == state {
                return Some(v);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

/// The workload loop: wget to the local server, a log file with a random name, date, a DNS
/// query for a known name, sleep; and whatever /ctl/go says, when it is there.
fn workload_loop(http: u16, dns: &Responder) -> String {
    format!(
        "while :; do busybox wget -q -O - http://127.0.0.1:{http}/ >/dev/null 2>&1; \
         echo x > /tmp/job-$RANDOM.log; busybox date >/dev/null; \
         busybox nslookup known.test {dns} >/dev/null 2>&1; \
         [ -f /ctl/go ] && . /ctl/go; sleep 1; done",
        dns = dns.addr()
    )
}

fn run_container(ctrd: &Containerd, name: &str, ctl: &Path, script: &str) {
    let mount = format!("type=bind,src={},dst=/ctl,options=rbind:ro", ctl.display());
    ctrd.ctr(
        &ctrd.ns,
        &[
            "run",
            "-d",
            "--net-host",
            "--mount",
            &mount,
            IMAGE,
            name,
            "sh",
            "-c",
            script,
        ],
    );
}

fn probe_args(ctrd: &Containerd, sock: &str, d: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--events",
        "alert",
        "--cri-socket",
        sock,
        "--containerd-socket",
        sock,
        "--containerd-namespace",
        &ctrd.ns,
        "--docker-socket",
        "none",
        "--baseline",
        d.to_str().unwrap(),
        "--learn-for",
        "20s",
        "--baseline-rate-interval",
        "5s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn start(args: &[String]) -> Probe {
    Probe::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn stop_report(st: &Stopped) -> Value {
    st.lines
        .iter()
        .find(|v| v["kind"] == "probe.stop")
        .map(|v| v["probe"]["analyze"]["baseline"].clone())
        .unwrap_or_else(|| panic!("no probe.stop; stderr: {}", st.stderr))
}

/// The four deviations, as the container's loop runs them.
fn deviations(http: u16, new_port: u16, dns: &Responder) -> String {
    format!(
        "busybox nc -w 1 127.0.0.1 {http} </dev/null >/dev/null 2>&1\n\
         busybox wget -q -O - http://127.0.0.1:{new_port}/ >/dev/null 2>&1\n\
         echo bad > /etc/tprobe-evil.conf\n\
         busybox nslookup new.test {} >/dev/null 2>&1\n",
        dns.addr()
    )
}

fn expected(new_port: u16) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("connect", format!("tcp 127.0.0.1:{new_port}")),
        ("dns", "new.test".to_owned()),
        ("exec", "/bin/busybox[nc] <- /bin/busybox[sh]".to_owned()),
        ("file.write", "/etc/tprobe-evil.conf".to_owned()),
    ]
    .into_iter()
    .map(|(d, v)| (d.to_owned(), v))
    .collect();
    v.sort();
    v
}

#[test]
fn a_container_learns_its_loop_then_alerts_once_per_deviation_and_after_a_restart() {
    let ctrd = Containerd::start();
    let sock = ctrd.sock.to_str().unwrap().to_owned();
    let http = Http::start();
    let (new_port, l) = low_port(24000);
    drop(l);
    let dns = Responder::start(HashMap::from([(
        "known.test".to_owned(),
        Answer::CnameA("alias.known.test".into(), Ipv4Addr::new(127, 58, 0, 1)),
    )]));
    let profiles = dir("profiles");
    let ctl = dir("ctl");
    let go = ctl.join("go");
    let host_go = ctl.join("host-go");
    let args = probe_args(&ctrd, &sock, &profiles, &[]);
    let probe = start(&args);
    let host = HostLoop::start(&host_go);
    let c1 = unique("tprobe-bl-c1");
    let script = workload_loop(http.port, &dns);
    run_container(&ctrd, &c1, &ctl, &script);

    // 1. Learning: about 20 s, then the profile is written in watching state.
    let p = wait_profile(&profiles, WORKLOAD, "watching", Duration::from_secs(60))
        .expect("the container's profile, watching");
    let dims = &p["dimensions"];
    assert!(
        dims["exec"]
            .as_object()
            .unwrap()
            .contains_key("/bin/busybox[wget] <- /bin/busybox[sh]"),
        "{p:#}"
    );
    assert!(
        dims["file.write"]
            .as_object()
            .unwrap()
            .contains_key("/tmp/job-#.log"),
        "random names collapse: {p:#}"
    );
    assert!(
        dims["connect"]
            .as_object()
            .unwrap()
            .contains_key(&format!("tcp 127.0.0.1:{}", http.port)),
        "{p:#}"
    );
    assert!(
        dims["dns"].as_object().unwrap().contains_key("known.test"),
        "{p:#}"
    );
    assert!(
        p["rates"]["process.exec"]["mean"].as_f64().unwrap() > 0.0,
        "{p:#}"
    );
    wait_profile(
        &profiles,
        &host.workload(),
        "watching",
        Duration::from_secs(30),
    )
    .expect("the host workload's profile, watching");

    // 2. The same loop, watched: no alert.
    std::thread::sleep(Duration::from_secs(25));
    let quiet = probe.lines();
    assert_eq!(
        alerts_of(&quiet, WORKLOAD),
        Vec::<Value>::new(),
        "no alert for the normal loop"
    );
    assert_eq!(alerts_of(&quiet, &host.workload()), Vec::<Value>::new());

    // 3. Four deviations, each alerted once (the loop repeats them until the script goes).
    std::fs::write(&go, deviations(http.port, new_port, &dns)).unwrap();
    std::fs::write(&host_go, "/usr/bin/uname >/dev/null\n").unwrap();
    probe.wait_n(WAIT + WAIT, 4, |v| is_baseline(v, WORKLOAD));
    probe
        .wait_for(WAIT, |v| is_baseline(v, &host.workload()))
        .expect("the host workload's deviation");
    std::thread::sleep(Duration::from_secs(3));
    std::fs::remove_file(&go).unwrap();
    std::fs::remove_file(&host_go).unwrap();
    let found = alerts_of(&probe.lines(), WORKLOAD);
    let mut got: Vec<(String, String)> = found.iter().map(hit).collect();
    got.sort();
    assert_eq!(got, expected(new_port), "{found:#?}");
    for a in &found {
        assert_eq!(a["alert"]["rule"]["id"], "baseline", "{a}");
        assert_eq!(a["alert"]["baseline"]["state"], "watching", "{a}");
        assert_eq!(a["container"]["image"], IMAGE, "{a}");
        assert_eq!(a["container"]["id"], c1.as_str(), "{a}");
    }
    let by = |d: &str| found.iter().find(|a| hit(a).0 == d).unwrap().clone();
    assert_eq!(by("exec")["alert"]["matched"]["kind"], "process.exec");
    assert_eq!(by("connect")["net"]["dst"]["port"], new_port);
    assert_eq!(by("file.write")["file"]["path"], "/etc/tprobe-evil.conf");
    assert_eq!(by("dns")["dns"]["query"], "new.test");
    let host_hits = alerts_of(&probe.lines(), &host.workload());
    assert_eq!(host_hits.len(), 1, "{host_hits:#?}");
    assert_eq!(
        hit(&host_hits[0]),
        (
            "exec".to_owned(),
            "/usr/bin/uname <- /usr/bin/dash".to_owned()
        )
    );

    // 4. Volume: 300 connects to the known listener in one wget, within a few seconds: one
    //    rate alert, no novelty.
    let urls: Vec<String> = (0..300)
        .map(|_| format!("http://127.0.0.1:{}/", http.port))
        .collect();
    std::fs::write(
        &go,
        format!("busybox wget -q -O - {} >/dev/null 2>&1\n", urls.join(" ")),
    )
    .unwrap();
    let rate = probe
        .wait_for(WAIT + WAIT, |v| {
            is_baseline(v, WORKLOAD) && v["alert"]["baseline"]["dimension"] == "rate"
        })
        .expect("a rate alert");
    std::fs::remove_file(&go).unwrap();
    assert_eq!(rate["alert"]["baseline"]["value"], "net.connect", "{rate}");
    std::thread::sleep(Duration::from_secs(2));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let all = alerts_of(&st.lines, WORKLOAD);
    assert_eq!(all.len(), 5, "four deviations and one rate alert: {all:#?}");
    let report = stop_report(&st);
    let w = &report["per_workload"][WORKLOAD];
    assert_eq!(w["state"], "watching", "{report:#}");
    assert_eq!(w["alerts"], 5, "{report:#}");
    assert!(report["repeats"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(report["write_errors"], 0, "{report:#}");
    ctrd.remove(&c1);

    // 5. After a restart, read-only: a second container of the image starts watching from
    //    the saved profile and alerts on the same deviations, without learning.
    let before = listing(&profiles);
    std::fs::write(&go, deviations(http.port, new_port, &dns)).unwrap();
    let probe = start(&probe_args(
        &ctrd,
        &sock,
        &profiles,
        &["--baseline-read-only"],
    ));
    let c2 = unique("tprobe-bl-c2");
    run_container(&ctrd, &c2, &ctl, &script);
    probe.wait_n(WAIT + WAIT, 4, |v| is_baseline(v, WORKLOAD));
    std::thread::sleep(Duration::from_secs(3));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let found = alerts_of(&st.lines, WORKLOAD);
    let mut got: Vec<(String, String)> = found.iter().map(hit).collect();
    got.sort();
    assert_eq!(got, expected(new_port), "{found:#?}");
    assert!(found.iter().all(|a| a["container"]["id"] == c2.as_str()));
    let start_info = &st.lines[0]["probe"]["analyze"]["baseline"];
    assert!(
        start_info["profiles"].as_u64().unwrap() >= 2,
        "{start_info}"
    );
    assert_eq!(
        stop_report(&st)["per_workload"][WORKLOAD]["state"],
        "watching"
    );
    assert_eq!(
        listing(&profiles),
        before,
        "a read-only folder is not written"
    );
    ctrd.remove(&c2);
    drop(host);
    let _ = std::fs::remove_dir_all(&profiles);
    let _ = std::fs::remove_dir_all(&ctl);
}

/// Names, sizes and modification times of the files in `d`.
fn listing(d: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.len(),
                m.modified().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A tmpfs of 64 KiB mounted at `d`, filled up: every write there fails with ENOSPC.
struct FullDisk(PathBuf);

impl FullDisk {
    fn mount(d: &Path) -> FullDisk {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(d)
            .status()
            .unwrap();
        assert!(ok.success());
        let mut f = std::fs::File::create(d.join("filler")).unwrap();
        let block = [0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        FullDisk(d.to_owned())
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_corrupt_profile_is_renamed_and_relearned_and_a_full_disk_is_counted() {
    let ctl = dir("bad-ctl");
    let host = HostLoop::start(&ctl.join("never"));
    let profiles = dir("bad");
    let file = profiles.join(probe_user::analyze::baseline::store::file_name(
        &host.workload(),
    ));
    std::fs::write(&file, "{\"tprobe_profile\": 1, \"workload\": \"trunc").unwrap();
    let base = [
        "--events",
        "alert",
        "--no-containers",
        "--learn-for",
        "3s",
        "--baseline",
    ];
    let mut args: Vec<&str> = base.to_vec();
    args.push(profiles.to_str().unwrap());
    let probe = Probe::start(&args);
    let start = &probe.lines()[0]["probe"]["analyze"]["baseline"];
    assert_eq!(
        start["bad_profiles"].as_array().unwrap().len(),
        1,
        "{start}"
    );
    let bad = file.with_extension("json.bad");
    assert!(bad.exists(), "renamed .bad");
    // The workload learns again, and its new profile is written when it starts watching.
    let p = wait_profile(
        &profiles,
        &host.workload(),
        "watching",
        Duration::from_secs(30),
    )
    .expect("the relearned profile");
    assert!(p["dimensions"]["exec"].is_object(), "{p:#}");
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    assert!(
        st.stderr.contains("not a tprobe profile") && st.stderr.contains(".bad"),
        "a warning names the file: {}",
        st.stderr
    );
    assert_eq!(stop_report(&st)["bad_profiles"], 1);

    // A full disk: every write fails; warned once per workload, counted, the run goes on.
    let full = dir("full");
    let disk = FullDisk::mount(&full);
    let mut args: Vec<&str> = base.to_vec();
    args.push(full.to_str().unwrap());
    let probe = Probe::start(&args);
    std::thread::sleep(Duration::from_secs(6));
    // Still running and still analysing after the failed writes.
    Command::new("/bin/true").status().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let r = stop_report(&st);
    assert!(r["write_errors"].as_u64().unwrap() >= 1, "{r:#}");
    assert_eq!(
        r["per_workload"][host.workload()]["state"],
        "watching",
        "{r:#}"
    );
    assert!(
        st.stderr.contains("cannot write the profile") && st.stderr.contains("No space left"),
        "{}",
        st.stderr
    );
    drop(disk);
    drop(host);
    let _ = std::fs::remove_dir_all(&profiles);
    let _ = std::fs::remove_dir_all(&full);
    let _ = std::fs::remove_dir_all(&ctl);
}

fn tprobe(args: &[&str]) -> std::process::Output {
    Command::new(tprobe_bin()).args(args).output().unwrap()
}

fn profile_text(workload: &str, dns: &[&str], mean: f64) -> String {
    let vals: Vec<String> = dns
        .iter()
        .map(|n| {
            format!(
                "\"{n}\": {{\"first\": \"2026-01-01T00:00:00Z\", \"last\": \"2026-01-02T00:00:00Z\", \"count\": 2}}"
            )
        })
        .collect();
    format!(
        r#"{{"tprobe_profile": 1, "workload": "{workload}", "state": "watching",
  "learning_since": "2026-01-01T00:00:00Z", "last_new": "2026-01-01T00:05:00Z",
  "rate_interval_s": 60,
  "dimensions": {{"dns": {{ {} }}, "exec": {{"/bin/a <- /bin/sh": {{}} }} }},
  "rates": {{"process.exec": {{"mean": {mean}, "var": 1.0, "n": 10}} }} }}"#,
        vals.join(", ")
    )
}

#[test]
fn baseline_show_merge_and_diff() {
    let d = dir("cmd");
    let a = d.join("a.json");
    let b = d.join("b.json");
    std::fs::write(&a, profile_text("web", &["a.test", "both.test"], 10.0)).unwrap();
    std::fs::write(&b, profile_text("web", &["b.test", "both.test"], 30.0)).unwrap();
    let out = tprobe(&["baseline", "show", a.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("workload  web") && text.contains("a.test"),
        "{text}"
    );
    assert!(
        text.contains("2 times, first 2026-01-01T00:00:00Z"),
        "{text}"
    );

    let out = tprobe(&["baseline", "diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "they differ");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("- dns a.test") && text.contains("+ dns b.test"),
        "{text}"
    );
    assert!(!text.contains("both.test"), "{text}");
    assert!(text.contains("~ rate process.exec: 10.0 -> 30.0"), "{text}");

    let m = d.join("merged.json");
    let out = tprobe(&[
        "baseline",
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
    let dns = v["dimensions"]["dns"].as_object().unwrap();
    assert_eq!(dns.len(), 3, "{v:#}");
    assert_eq!(dns["both.test"]["count"], 4);
    assert_eq!(v["rates"]["process.exec"]["mean"], 20.0);
    let out = tprobe(&["baseline", "diff", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));

    // Profiles of different workloads do not merge; a bad file is named with the problem.
    let c = d.join("c.json");
    std::fs::write(&c, profile_text("db", &["x.test"], 1.0)).unwrap();
    let out = tprobe(&[
        "baseline",
        "merge",
        a.to_str().unwrap(),
        c.to_str().unwrap(),
        "-o",
        d.join("no.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("different workloads"));
    assert!(!d.join("no.json").exists());
    std::fs::write(&c, "{\"tprobe_profile\": 1, \"workload\": 3}").unwrap();
    let out = tprobe(&["baseline", "show", c.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("c.json") && err.contains("workload"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A baseline alert in ECS (`event.kind: alert`, `rule.*`, the hit under `tprobe.alert`) and
/// OCSF (a Detection Finding of type `baseline`) conforms to the vendored definitions.
#[test]
fn baseline_alerts_in_ecs_and_ocsf() {
    use probe_user::encode::schema_check::{check_ecs, check_ocsf};
    let ctl = dir("formats-ctl");
    let script = ctl.join("go");
    let host = HostLoop::start(&script);
    for format in ["ecs", "ocsf"] {
        let profiles = dir(&format!("formats-{format}"));
        let ready: fn(&Value) -> bool = if format == "ecs" {
            |v| v["event"]["action"] == "probe.start"
        } else {
            |v| v["metadata"]["event_code"] == "probe.start"
        };
        let probe = Probe::start_ready(
            &[
                "--events",
                "alert",
                "--no-containers",
                "--learn-for",
                "2s",
                "--baseline",
                profiles.to_str().unwrap(),
                "--format",
                format,
            ],
            ready,
        );
        wait_profile(
            &profiles,
            &host.workload(),
            "watching",
            Duration::from_secs(20),
        )
        .expect("watching");
        std::fs::write(&script, "/usr/bin/uname >/dev/null\n").unwrap();
        let w = host.workload();
        let a = probe
            .wait_for(WAIT, |v| {
                v["tprobe"]["alert"]["baseline"]["workload"] == w.as_str()
                    || v["unmapped"]["alert"]["baseline"]["workload"] == w.as_str()
            })
            .unwrap_or_else(|| panic!("{format}: no baseline alert"));
        std::fs::remove_file(&script).unwrap();
        let errs = if format == "ecs" {
            check_ecs(&a)
        } else {
            check_ocsf(&a)
        };
        assert!(errs.is_empty(), "{format}: {errs:?} in {a}");
        if format == "ecs" {
            assert_eq!(a["event"]["kind"], "alert", "{a}");
            assert_eq!(a["rule"]["id"], "baseline", "{a}");
            assert_eq!(a["rule"]["ruleset"], "baseline", "{a}");
            assert_eq!(a["rule"]["name"], "New executable for workload", "{a}");
            assert_eq!(a["tprobe"]["alert"]["baseline"]["dimension"], "exec", "{a}");
            assert_eq!(a["process"]["executable"], "/usr/bin/uname", "{a}");
        } else {
            assert_eq!(a["class_uid"], 2004, "{a}");
            assert_eq!(a["finding_info"]["types"][0], "baseline", "{a}");
            assert_eq!(
                a["unmapped"]["alert"]["baseline"]["value"], "/usr/bin/uname <- /usr/bin/dash",
                "{a}"
            );
            assert_eq!(
                a["evidences"][0]["process"]["file"]["path"], "/usr/bin/uname",
                "{a}"
            );
        }
        let st = probe.stop();
        assert!(st.status.success(), "{}", st.stderr);
        let _ = std::fs::remove_dir_all(&profiles);
    }
    drop(host);
    let _ = std::fs::remove_dir_all(&ctl);
}
