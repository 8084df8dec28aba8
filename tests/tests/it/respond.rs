//! The respond stage end to end: real processes killed (with their children) by a Sigma rule
//! and by an IoC hash, execs denied in the kernel by path and by hash, a dry run, a protected
//! process, a containerd container frozen and released through the control socket, and a
//! network namespace isolated by the TC program. Every action is read back as its
//! `response.*` event.
use std::{
    os::unix::{fs::PermissionsExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tprobe_tests::{
    containerd::{unique, Containerd, IMAGE},
    tprobe_bin, Probe, WAIT,
};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tprobe-respond-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A copy of `src` at `dst` with bytes of its own appended (still a valid ELF): a hash no
/// other program on the machine has, so no one else's process is ever hit.
fn unique_binary(src: &str, dst: &Path) -> String {
    let mut b = std::fs::read(src).unwrap();
    b.extend(format!("tprobe-respond-test {} {:?}", std::process::id(), dst).as_bytes());
    std::fs::write(dst, b).unwrap();
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    dst.display().to_string()
}

fn sha256(p: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(std::fs::read(p).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn rule(d: &Path, id: &str, image_suffix: &str) -> String {
    let p = d.join(format!("{id}.yml"));
    std::fs::write(
        &p,
        format!(
            "title: respond test {id}
id: {id}
status: test
logsource:
  product: linux
  category: process_creation
detection:
  selection:
    Image|endswith: '{image_suffix}'
  condition: selection
level: high
"
        ),
    )
    .unwrap();
    p.display().to_string()
}

fn response(v: &Value, kind: &str) -> bool {
    v["kind"] == kind
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A shell that starts two children, then (after they run) execs `trigger`: the matched
/// process is the tree's root. Returns the kill-tree response.
fn tree_is_killed(probe: &Probe, d: &Path, trigger: &str, rule_id: &str) {
    let mut root = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "sleep 300 & sleep 300 & echo $! > {d}/kids; sleep 0.5; exec {trigger} 300",
            d = d.display()
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let root_pid = root.id();
    let r = probe
        .wait_for(WAIT, |v| {
            response(v, "response.kill") && v["response"]["target"]["pid"] == root_pid
        })
        .expect("a response.kill for the tree's root");
    let resp = &r["response"];
    assert_eq!(resp["action"], "kill-tree", "{resp}");
    assert_eq!(resp["ok"], true, "{resp}");
    assert_eq!(resp["dry_run"], false);
    assert_eq!(resp["in_kernel"], false);
    assert_eq!(resp["trigger"]["rule_id"], rule_id);
    assert!(resp["trigger"]["alert_seq"].as_u64().is_some(), "{resp}");
    assert!(resp["latency_us"].as_u64().is_some(), "{resp}");
    let pids: Vec<u32> = resp["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(pids[0], root_pid);
    assert_eq!(pids.len(), 3, "the root and its two sleeps: {resp}");
    let st = wait_exit(&mut root, WAIT).expect("the root ends");
    assert_eq!(st.signal(), Some(9));
    for p in &pids[1..] {
        assert!(wait_gone(*p, WAIT), "child {p} still runs");
    }
    let kid: u32 = std::fs::read_to_string(d.join("kids"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pids.contains(&kid), "{kid} in {pids:?}");
}

#[test]
fn a_sigma_rule_and_an_ioc_hash_kill_a_process_and_its_children() {
    let d = dir("tree");
    let sigma_bin = unique_binary("/bin/sleep", &d.join("tree-sigma"));
    let ioc_bin = unique_binary("/bin/sleep", &d.join("tree-ioc"));
    let rid = "7e500000-7470-4000-8000-000000000001";
    let rules = rule(&d, rid, "/tree-sigma");
    let list = d.join("bad-hashes.txt");
    std::fs::write(&list, format!("{},test tree\n", sha256(&ioc_bin))).unwrap();
    let probe = Probe::start(&[
        "--events",
        "alert,process.exec",
        "--rules",
        &rules,
        "--ioc",
        list.to_str().unwrap(),
        "--respond",
        &format!("{rid}=kill-tree"),
        "--respond",
        "ioc.bad-hashes=kill-tree",
    ]);
    tree_is_killed(&probe, &d, &sigma_bin, rid);
    tree_is_killed(&probe, &d, &ioc_bin, "ioc.bad-hashes");
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let report = &st.lines.last().unwrap()["probe"]["respond"];
    assert_eq!(report["actions"], 2, "{report}");
    let _ = std::fs::remove_dir_all(d);
}

/// A kill of a process that is already gone is an event with `ok: false` and `ESRCH` (never a
/// signal to whoever has the pid now); past the rule's rate limit the action is refused, as
/// an event too, and counted.
#[test]
fn a_gone_process_is_esrch_and_the_rate_limit_refuses_as_an_event() {
    let d = dir("gone");
    let bin = unique_binary("/bin/true", &d.join("gone-true"));
    let rid = "7e500000-7470-4000-8000-000000000009";
    let rules = rule(&d, rid, "/gone-true");
    let probe = Probe::start(&[
        "--events",
        "process.exec",
        "--rules",
        &rules,
        "--respond",
        &format!("{rid}=kill"),
        "--respond-rate",
        "1/1m",
    ]);
    // Run and reaped before the probe reads the exec (a flush interval later).
    for _ in 0..2 {
        assert!(Command::new(&bin).status().unwrap().success());
    }
    let kills = probe.wait_n(WAIT, 2, |v| {
        response(v, "response.kill") && v["response"]["trigger"]["rule_id"] == rid
    });
    assert_eq!(kills.len(), 2, "{kills:?}");
    let (first, second) = (&kills[0]["response"], &kills[1]["response"]);
    assert_eq!(first["ok"], false, "{first}");
    assert_eq!(first["error"], "ESRCH", "{first}");
    assert_eq!(second["ok"], false, "{second}");
    let why = second.to_string();
    assert!(why.contains("rate limit"), "{second}");
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let report = &st.lines.last().unwrap()["probe"]["respond"];
    assert_eq!(report["rate_limited"], 1, "{report}");
    let _ = std::fs::remove_dir_all(d);
}

/// Runs `bin MARKER`; returns its exit status.
fn run_marker(bin: &str, marker: &Path) -> std::process::ExitStatus {
    Command::new(bin).arg(marker).status().unwrap()
}

#[test]
fn denied_execs_never_run_by_path_and_by_hash() {
    let d = dir("deny");
    // touch: its first act is to create the marker file.
    let by_path = unique_binary("/usr/bin/touch", &d.join("deny-path"));
    let by_hash = unique_binary("/usr/bin/touch", &d.join("deny-hash"));
    let hash = sha256(&by_hash);
    let deny = format!("{by_path},sha256:{hash}");
    let probe = Probe::start(&[
        "--events",
        "process.exec,process.exit",
        "--deny-exec",
        &deny,
    ]);
    assert_eq!(
        probe.lines()[0]["probe"]["respond"]["deny_exec_kernel_entries"],
        1,
        "the path is in the kernel map from the start"
    );

    let m1 = d.join("marker-path");
    let st = run_marker(&by_path, &m1);
    assert_eq!(st.signal(), Some(9), "killed: {st:?}");
    assert!(!m1.exists(), "the denied binary ran");
    let r = probe
        .wait_for(WAIT, |v| {
            response(v, "response.kill") && v["response"]["target"]["exe"] == by_path
        })
        .expect("response.kill for the path");
    assert_eq!(r["response"]["in_kernel"], true, "{r}");
    assert_eq!(r["response"]["ok"], true);
    assert_eq!(
        r["response"]["trigger"]["rule_id"],
        format!("deny-exec:{by_path}")
    );

    // The first exec of a file known only by its hash is killed from userspace, once hashed;
    // from then on the kernel knows its (device, inode).
    let first = run_marker(&by_hash, &d.join("marker-hash-1"));
    assert!(first.signal() == Some(9) || first.success(), "{first:?}");
    let r = probe
        .wait_for(WAIT, |v| {
            response(v, "response.kill") && v["response"]["target"]["exe"] == by_hash
        })
        .expect("response.kill for the first exec by hash");
    assert_eq!(r["response"]["in_kernel"], false, "{r}");
    assert!(r["response"]["latency_us"].as_u64().is_some(), "{r}");
    assert_eq!(
        r["response"]["trigger"]["rule_id"],
        format!("deny-exec:sha256:{hash}")
    );

    let m2 = d.join("marker-hash-2");
    let st = run_marker(&by_hash, &m2);
    assert_eq!(st.signal(), Some(9), "killed in the kernel: {st:?}");
    assert!(!m2.exists(), "the denied binary ran");
    let kills = probe.wait_n(WAIT, 2, |v| {
        response(v, "response.kill") && v["response"]["target"]["exe"] == by_hash
    });
    assert_eq!(kills.len(), 2);
    assert_eq!(kills[1]["response"]["in_kernel"], true, "{}", kills[1]);
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let _ = std::fs::remove_dir_all(d);
}

/// A process the kernel filters leave out (`--uid nobody`, run as root) is still denied, and
/// the kill is still an event.
#[test]
fn a_denied_exec_outside_the_filters_is_still_an_event() {
    let d = dir("deny-filtered");
    let bin = unique_binary("/usr/bin/touch", &d.join("deny-filtered"));
    let probe = Probe::start(&[
        "--events",
        "process.exec",
        "--uid",
        "nobody",
        "--deny-exec",
        &bin,
    ]);
    let m = d.join("marker");
    let st = run_marker(&bin, &m);
    assert_eq!(st.signal(), Some(9), "killed: {st:?}");
    assert!(!m.exists(), "the denied binary ran");
    let r = probe
        .wait_for(WAIT, |v| {
            response(v, "response.kill") && v["response"]["target"]["exe"] == bin
        })
        .expect("response.kill for the filtered process");
    assert_eq!(r["response"]["in_kernel"], true, "{r}");
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_dry_run_changes_nothing_and_protected_processes_are_never_touched() {
    let d = dir("dry");
    let victim = unique_binary("/bin/sleep", &d.join("dry-victim"));
    let denied = unique_binary("/usr/bin/touch", &d.join("dry-denied"));
    let rid = "7e500000-7470-4000-8000-000000000002";
    let rules = rule(&d, rid, "/dry-victim");
    let probe = Probe::start(&[
        "--events",
        "alert,process.exec",
        "--rules",
        &rules,
        "--respond",
        &format!("{rid}=kill"),
        "--deny-exec",
        &denied,
        "--respond-dry-run",
    ]);
    let mut v = Command::new(&victim).arg("30").spawn().unwrap();
    let r = probe
        .wait_for(WAIT, |l| {
            response(l, "response.kill") && l["response"]["target"]["pid"] == v.id()
        })
        .expect("a dry-run response");
    assert_eq!(r["response"]["dry_run"], true, "{r}");
    assert_eq!(r["response"]["ok"], true, "{r}");
    let marker = d.join("dry-marker");
    assert!(run_marker(&denied, &marker).success());
    assert!(marker.exists(), "a dry run denies nothing");
    let r = probe
        .wait_for(WAIT, |l| {
            response(l, "response.kill") && l["response"]["target"]["exe"] == denied
        })
        .expect("a dry-run deny response");
    assert_eq!(r["response"]["dry_run"], true, "{r}");
    assert_eq!(r["response"]["in_kernel"], false, "{r}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        v.try_wait().unwrap().is_none(),
        "the dry run killed the victim"
    );
    let _ = v.kill();
    let _ = v.wait();
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);

    // A protected executable: the rule matches, the action is refused with the reason.
    let prot = unique_binary("/bin/sleep", &d.join("protected-sleep"));
    let rules = rule(&d, rid, "/protected-sleep");
    let probe = Probe::start(&[
        "--events",
        "alert,process.exec",
        "--rules",
        &rules,
        "--respond",
        &format!("{rid}=kill"),
        "--respond-protect",
        &prot,
    ]);
    let mut p = Command::new(&prot).arg("30").spawn().unwrap();
    let r = probe
        .wait_for(WAIT, |l| {
            response(l, "response.kill") && l["response"]["target"]["pid"] == p.id()
        })
        .expect("a refused response");
    assert_eq!(r["response"]["ok"], false, "{r}");
    assert!(
        r["response"]["reason"]
            .as_str()
            .unwrap()
            .contains("protected"),
        "{r}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        p.try_wait().unwrap().is_none(),
        "a protected process was killed"
    );
    let _ = p.kill();
    let _ = p.wait();
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    assert_eq!(st.lines.last().unwrap()["probe"]["respond"]["refused"], 1);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn an_unknown_action_exits_2_with_the_reason() {
    let out = Command::new(tprobe_bin())
        .args(["run", "--respond", "some-rule=explode"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown action \"explode\""), "{err}");
    // No probe answers on a socket nobody serves: a clear error, exit 2.
    let out = Command::new(tprobe_bin())
        .args(["respond", "list", "--socket", "/nonexistent/tprobe.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no probe answers"));
}

fn respond_cli(sock: &Path, args: &[&str]) -> std::process::Output {
    Command::new(tprobe_bin())
        .arg("respond")
        .args(args)
        .arg("--socket")
        .arg(sock)
        .output()
        .unwrap()
}

/// The loop's tick file as the container sees it.
fn tick(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/root/tmp/tick")).unwrap_or_default()
}

#[test]
fn a_container_is_frozen_and_resumes_on_release() {
    let ctrd = Containerd::start();
    let d = dir("freeze");
    let sock_path = d.join("respond.sock");
    let rid = "7e500000-7470-4000-8000-000000000003";
    let rule_file = d.join("freeze.yml");
    std::fs::write(
        &rule_file,
        format!(
            "title: freeze trigger
id: {rid}
logsource: {{product: linux, category: process_creation}}
detection:
  selection:
    CommandLine|contains: 'tprobe-freeze-trigger'
  condition: selection
level: high
"
        ),
    )
    .unwrap();
    let csock = ctrd.sock.to_str().unwrap().to_owned();
    let probe = Probe::start(&[
        "--events",
        "alert,process.exec",
        "--rules",
        rule_file.to_str().unwrap(),
        "--respond",
        &format!("{rid}=freeze"),
        "--respond-socket",
        sock_path.to_str().unwrap(),
        "--containerd-socket",
        &csock,
        "--cri-socket",
        "none",
        "--docker-socket",
        "none",
        "--containerd-namespace",
        &ctrd.ns,
    ]);
    let id = unique("tprobe-freeze");
    ctrd.ctr(
        &ctrd.ns,
        &[
            "run",
            "-d",
            IMAGE,
            &id,
            "sh",
            "-c",
            // The trigger word is put together inside: `ctr`'s own command line must not
            // match the rule (a host process would be frozen).
            "t=tprobe-freeze; i=0; while :; do i=$((i+1)); echo $i > /tmp/tick; \
             [ $i = 5 ] && /bin/cat /dev/null $t-trigger 2>/dev/null; sleep 0.05; done",
        ],
    );
    let pid = ctrd.task_pid(&id);
    let result = (|| {
        let r = probe
            .wait_for(WAIT, |v| response(v, "response.freeze"))
            .ok_or("no response.freeze")?;
        if r["response"]["ok"] != true || r["response"]["target"]["container"] != id.as_str() {
            return Err(format!("bad freeze: {r}"));
        }
        std::thread::sleep(Duration::from_millis(300));
        let a = tick(pid);
        std::thread::sleep(Duration::from_millis(500));
        let b = tick(pid);
        if a != b || a.is_empty() {
            return Err(format!("the loop still runs while frozen: {a:?} -> {b:?}"));
        }
        let list = respond_cli(&sock_path, &["list"]);
        let text = String::from_utf8_lossy(&list.stdout);
        if !list.status.success() || !text.contains(&id) {
            return Err(format!(
                "list: {text} {}",
                String::from_utf8_lossy(&list.stderr)
            ));
        }
        let rel = respond_cli(&sock_path, &["release", &id]);
        if !rel.status.success() {
            return Err(format!("release: {}", String::from_utf8_lossy(&rel.stderr)));
        }
        let r = probe
            .wait_for(WAIT, |v| response(v, "response.release"))
            .ok_or("no response.release")?;
        if r["response"]["ok"] != true {
            return Err(format!("bad release: {r}"));
        }
        std::thread::sleep(Duration::from_millis(500));
        let c = tick(pid);
        if c == b {
            return Err(format!("the loop did not resume: {b:?} -> {c:?}"));
        }
        // Releasing what is not held: a clear error, exit 1.
        let again = respond_cli(&sock_path, &["release", &id]);
        let err = String::from_utf8_lossy(&again.stderr);
        if again.status.code() != Some(1) || !err.contains("nothing is held") {
            return Err(format!("second release: {:?} {err}", again.status));
        }
        // A kill from the console by container id: every process of its cgroup.
        let kill = respond_cli(&sock_path, &["kill", &id]);
        if !kill.status.success() {
            return Err(format!(
                "console kill: {}",
                String::from_utf8_lossy(&kill.stderr)
            ));
        }
        if !wait_gone(pid, WAIT) {
            return Err("the container's init survived the console kill".into());
        }
        let k = probe
            .wait_for(WAIT, |v| {
                response(v, "response.kill") && v["response"]["target"]["container"] == id.as_str()
            })
            .ok_or("no response.kill for the console kill")?;
        if k["response"]["ok"] != true || k["response"]["trigger"]["rule_id"] != "console" {
            return Err(format!("bad console kill: {k}"));
        }
        Ok(())
    })();
    ctrd.remove(&id);
    let st = probe.stop();
    let _ = std::fs::remove_dir_all(&d);
    result.unwrap();
    assert!(st.status.success(), "{}", st.stderr);
}

/// A network namespace with a veth pair, made for one test and removed on drop.
struct NetNs {
    name: String,
    host_if: String,
    host_ip: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl NetNs {
    fn new() -> NetNs {
        let n = std::process::id() % 200 + 20;
        let name = format!("tprobe-iso-{}", std::process::id());
        let host_if = format!("tpiso{n}h");
        let ns_if = format!("tpiso{n}n");
        let host_ip = format!("10.231.{n}.1");
        let ns_ip = format!("10.231.{n}.2");
        let me = NetNs {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip: host_ip.clone(),
        };
        for args in [
            vec!["netns", "add", &name],
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
            vec!["link", "set", &ns_if, "netns", &name],
            vec!["addr", "add", &format!("{host_ip}/24"), "dev", &host_if],
            vec!["link", "set", &host_if, "up"],
            vec![
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ns_ip}/24"),
                "dev",
                &ns_if,
            ],
            vec!["-n", &name, "link", "set", &ns_if, "up"],
            vec!["-n", &name, "link", "set", "lo", "up"],
        ] {
            assert!(ip(&args), "ip {args:?}");
        }
        me
    }

    /// A TCP connect from inside to the host side, within 1 s.
    fn connects(&self, port: u16) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "timeout", "1", "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{}/{port}", self.host_ip))
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn pings(&self) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "ping",
                "-c1",
                "-W1",
                &self.host_ip,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        ip(&["link", "del", &self.host_if]);
        ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn a_network_namespace_is_isolated_except_the_allow_list_and_released() {
    let d = dir("isolate");
    let ns = NetNs::new();
    let open = std::net::TcpListener::bind(format!("{}:0", ns.host_ip)).unwrap();
    let closed = std::net::TcpListener::bind(format!("{}:0", ns.host_ip)).unwrap();
    let (p_open, p_closed) = (
        open.local_addr().unwrap().port(),
        closed.local_addr().unwrap().port(),
    );
    assert!(
        ns.connects(p_closed) && ns.pings(),
        "the namespace reaches the host at first"
    );
    let trigger = unique_binary("/bin/sleep", &d.join("iso-trigger"));
    let host_trigger = unique_binary("/bin/sleep", &d.join("iso-host"));
    let rid = "7e500000-7470-4000-8000-000000000004";
    let rid_host = "7e500000-7470-4000-8000-000000000005";
    let r1 = rule(&d, rid, "/iso-trigger");
    let r2 = rule(&d, rid_host, "/iso-host");
    let sock_path = d.join("respond.sock");
    let probe = Probe::start(&[
        "--events",
        "alert,process.exec",
        "--rules",
        &r1,
        "--rules",
        &r2,
        "--respond",
        &format!("{rid}=isolate"),
        "--respond",
        &format!("{rid_host}=isolate"),
        "--respond-allow",
        &format!("{}:{p_open}", ns.host_ip),
        "--respond-socket",
        sock_path.to_str().unwrap(),
    ]);
    let mut inside = Command::new("ip")
        .args(["netns", "exec", &ns.name, &trigger, "60"])
        .spawn()
        .unwrap();
    let mut host = Command::new(&host_trigger).arg("60").spawn().unwrap();
    let result = (|| {
        let r = probe
            .wait_for(WAIT, |v| {
                response(v, "response.isolate") && v["response"]["trigger"]["rule_id"] == rid
            })
            .ok_or("no response.isolate")?;
        if r["response"]["ok"] != true || r["response"]["target"]["iface"] != ns.host_if.as_str() {
            return Err(format!("bad isolate: {r}"));
        }
        let h = probe
            .wait_for(WAIT, |v| {
                response(v, "response.isolate") && v["response"]["trigger"]["rule_id"] == rid_host
            })
            .ok_or("no response for the host process")?;
        if h["response"]["ok"] != false
            || !h["response"]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("host network")
        {
            return Err(format!("a host-network target must be refused: {h}"));
        }
        if ns.connects(p_closed) {
            return Err("a TCP connect got out of the isolated namespace".into());
        }
        if ns.pings() {
            return Err("a ping got out of the isolated namespace".into());
        }
        if !ns.connects(p_open) {
            return Err("the allow-listed port does not work".into());
        }
        let rel = respond_cli(&sock_path, &["release", &ns.host_if]);
        if !rel.status.success() {
            return Err(format!("release: {}", String::from_utf8_lossy(&rel.stderr)));
        }
        if !ns.connects(p_closed) || !ns.pings() {
            return Err("traffic does not pass after the release".into());
        }
        Ok(())
    })();
    let _ = inside.kill();
    let _ = inside.wait();
    let _ = host.kill();
    let _ = host.wait();
    let st = probe.stop();
    drop(ns);
    let _ = std::fs::remove_dir_all(&d);
    result.unwrap();
    assert!(st.status.success(), "{}", st.stderr);
}

/// `response.kill` in ECS and OCSF, checked against the vendored definitions.
#[test]
fn responses_in_ecs_and_ocsf() {
    use probe_user::encode::schema_check::{check_ecs, check_ocsf};
    let d = dir("formats");
    let bin = unique_binary("/usr/bin/touch", &d.join("fmt-denied"));
    for format in ["ecs", "ocsf"] {
        let ready: fn(&Value) -> bool = if format == "ecs" {
            |v| v["event"]["action"] == "probe.start"
        } else {
            |v| v["metadata"]["event_code"] == "probe.start"
        };
        let probe = Probe::start_ready(
            &[
                "--events",
                "process.exec",
                "--deny-exec",
                &bin,
                "--format",
                format,
            ],
            ready,
        );
        let st = run_marker(&bin, &d.join("fmt-marker"));
        assert_eq!(st.signal(), Some(9));
        let r = probe
            .wait_for(WAIT, |v| {
                v["event"]["action"] == "response.kill"
                    || v["metadata"]["event_code"] == "response.kill"
            })
            .unwrap_or_else(|| panic!("{format}: no response.kill"));
        let errs = if format == "ecs" {
            check_ecs(&r)
        } else {
            check_ocsf(&r)
        };
        assert!(errs.is_empty(), "{format}: {errs:?} in {r}");
        if format == "ecs" {
            assert_eq!(r["event"]["kind"], "event", "{r}");
            assert_eq!(r["event"]["category"][0], "process");
            assert_eq!(r["event"]["type"][0], "end");
            assert_eq!(r["event"]["outcome"], "success");
            assert_eq!(r["tprobe"]["response"]["in_kernel"], true);
        } else {
            assert_eq!(r["class_uid"], 1007, "{r}");
            assert_eq!(r["activity_id"], 2);
            assert_eq!(r["status_id"], 1);
            assert_eq!(r["unmapped"]["response"]["in_kernel"], true);
        }
        let st = probe.stop();
        assert!(st.status.success(), "{}", st.stderr);
    }
    let _ = std::fs::remove_dir_all(&d);
}
