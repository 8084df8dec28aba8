//! Container and pod enrichment against a real containerd (private socket and state), with
//! plain containers (`ctr`) and CRI pods driven through the CRI gRPC API.
use std::{process::Command, time::Duration};

use serde_json::Value;
use tprobe_tests::{
    containerd::{hex_id, unique, Containerd, IMAGE},
    podman::{self, Podman},
    Probe, WAIT,
};

fn in_container(v: &Value, id: &str) -> bool {
    v["kind"] == "process.exec" && v["container"]["id"] == id
}

/// A containerd socket that cannot be used is said once on stderr and counted as an error in
/// `probe.stop`; returns that report.
fn one_unusable_socket_warning(st: &tprobe_tests::Stopped) -> Value {
    let warnings = st
        .stderr
        .lines()
        .filter(|l| l.contains("containerd socket") && l.contains("unusable"))
        .count();
    assert_eq!(warnings, 1, "{}", st.stderr);
    let report = st.lines.last().unwrap()["probe"]["containers"].clone();
    assert!(
        report["containerd_errors"].as_u64().unwrap() >= 1,
        "{report}"
    );
    report
}

fn probe_args<'a>(ctrd: &'a Containerd, sock: &'a str) -> Vec<&'a str> {
    vec![
        "--events",
        "process",
        "--cri-socket",
        sock,
        "--containerd-socket",
        sock,
        "--containerd-namespace",
        &ctrd.ns,
        "--container-sweep-interval",
        "200ms",
        "--docker-socket",
        "none",
    ]
}

/// A process (`/bin/sleep`) in a fresh cgroup `/tprobe-lookalike-<pid>-<n>/<leaf>` of the
/// cgroup2 hierarchy: a path shaped like containerd's `/<namespace>/<id>`. Removed on drop.
struct Lookalike {
    child: std::process::Child,
    top: std::path::PathBuf,
    leaf: String,
    cgroup_id: u64,
}

impl Lookalike {
    fn start(leaf: &str) -> Lookalike {
        use std::os::unix::fs::MetadataExt as _;
        let mount = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .find_map(|l| {
                let (pre, post) = l.split_once(" - ")?;
                post.starts_with("cgroup2 ")
                    .then(|| pre.split(' ').nth(4).map(str::to_owned))?
            })
            .expect("a cgroup2 mount");
        let top = std::path::Path::new(&mount).join(unique("tprobe-lookalike"));
        let dir = top.join(leaf);
        std::fs::create_dir_all(&dir).unwrap();
        let cgroup_id = std::fs::metadata(&dir).unwrap().ino();
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {} && exec /bin/sleep 30",
                dir.join("cgroup.procs").display()
            ))
            .spawn()
            .unwrap();
        Lookalike {
            child,
            top,
            leaf: leaf.to_owned(),
            cgroup_id,
        }
    }
}

impl Drop for Lookalike {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(self.top.join(&self.leaf));
        let _ = std::fs::remove_dir(&self.top);
    }
}

#[test]
fn containers_and_pods_from_a_real_containerd() {
    let mut ctrd = Containerd::start();
    let sock = ctrd.sock.to_str().unwrap().to_owned();
    let probe = Probe::start(&probe_args(&ctrd, &sock));

    // 1. A plain containerd container with labels and a known id.
    let id = unique("tprobe-plain");
    ctrd.ctr(
        &ctrd.ns,
        &[
            "run",
            "-d",
            "--label",
            "app=demo",
            "--label",
            "tier=test",
            IMAGE,
            &id,
            "sh",
            "-c",
            "echo started > /dev/null; exec sleep 600",
        ],
    );
    let sleep = probe
        .wait_for(WAIT, |v| {
            in_container(v, &id) && v["process"]["args"][0] == "sleep"
        })
        .expect("exec of sleep in the plain container");
    assert_eq!(sleep["process"]["pid"], ctrd.task_pid(&id));
    // Every exec of the new container, the very first (runc init) included, carries the
    // runtime's metadata: events wait for the first lookup.
    let execs: Vec<Value> = probe
        .lines()
        .into_iter()
        .filter(|v| in_container(v, &id))
        .collect();
    assert!(execs.len() >= 2, "{execs:?}");
    for ev in &execs {
        let c = &ev["container"];
        assert_eq!(c["runtime"], "containerd", "{ev}");
        assert_eq!(c["source"], "containerd", "{ev}");
        assert_eq!(c["image"], IMAGE, "{ev}");
        assert_eq!(c["labels"]["app"], "demo", "{ev}");
        assert_eq!(c["labels"]["tier"], "test", "{ev}");
        assert!(c.get("pod").is_none(), "{ev}");
        assert!(
            c.get("name").is_none(),
            "containerd has no name apart from the id: {ev}"
        );
    }

    // 2. A CRI pod sandbox and a container in it.
    let (sandbox_id, cid) = ctrd.run_pod(
        &[("app", "web"), ("team", "probe")],
        "app",
        &["sh", "-c", "exec sleep 600"],
    );
    let ev = probe
        .wait_for(WAIT, |v| {
            in_container(v, &cid) && v["process"]["args"][0] == "sleep"
        })
        .expect("exec in the CRI container");
    let c = &ev["container"];
    let pod = ctrd.pod();
    assert_eq!(c["source"], "cri", "{ev}");
    assert_eq!(c["runtime"], "containerd", "{ev}");
    assert_eq!(c["name"], "app", "{ev}");
    assert_eq!(c["image"], IMAGE, "{ev}");
    assert_eq!(c["labels"]["io.kubernetes.container.name"], "app", "{ev}");
    assert_eq!(c["pod"]["name"], pod.name.as_str(), "{ev}");
    assert_eq!(c["pod"]["namespace"], pod.namespace.as_str(), "{ev}");
    assert_eq!(c["pod"]["uid"], pod.uid.as_str(), "{ev}");
    assert_eq!(
        c["pod"]["labels"],
        serde_json::json!({ "app": "web", "team": "probe" }),
        "{ev}"
    );
    // The sandbox's own processes are the pod's, with no container name.
    let ev = probe
        .wait_for(WAIT, |v| in_container(v, &sandbox_id))
        .expect("exec in the pod sandbox");
    assert_eq!(ev["container"]["pod"]["uid"], pod.uid.as_str(), "{ev}");
    assert!(ev["container"].get("name").is_none(), "{ev}");

    // 3. A host process in the same run has no container field.
    let host = Command::new("/bin/true").spawn().unwrap();
    let hpid = host.id();
    let _ = { host }.wait();
    let ev = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec" && v["process"]["pid"] == hpid
        })
        .expect("host exec");
    assert!(ev.get("container").is_none(), "{ev}");
    // A two-level cgroup shaped like containerd's `/<namespace>/<id>` that containerd does not
    // know is not a container either.
    let lookalike = Lookalike::start("job-1");
    let ev = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec"
                && v["process"]["pid"] == lookalike.child.id()
                && v["process"]["args"][0] == "/bin/sleep"
        })
        .expect("exec in the look-alike cgroup");
    assert_eq!(ev["process"]["cgroup_id"], lookalike.cgroup_id, "{ev}");
    assert!(ev.get("container").is_none(), "{ev}");
    drop(lookalike);

    // 4. A container that exits and is removed leaves no cache entry behind.
    let gone = unique("tprobe-gone");
    ctrd.ctr(
        &ctrd.ns,
        &["run", "--rm", IMAGE, &gone, "sh", "-c", "sleep 1"],
    );
    let ev = probe
        .wait_for(WAIT, |v| in_container(v, &gone))
        .expect("exec in the short-lived container");
    assert_eq!(ev["container"]["source"], "containerd", "{ev}");
    // Several sweeps (200 ms apart) later.
    std::thread::sleep(Duration::from_millis(1500));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    // Other probes of the suite may hold the default metrics port; that warning is not ours.
    let warnings: Vec<&str> = st
        .stderr
        .lines()
        .filter(|l| l.contains("WARN") && !l.contains("no /metrics"))
        .collect();
    assert!(warnings.is_empty(), "{}", st.stderr);
    let report = &st.lines.last().unwrap()["probe"]["containers"];
    let cached: Vec<&str> = report["cached_containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        cached.contains(&id.as_str()),
        "running container cached: {report}"
    );
    assert!(cached.contains(&cid.as_str()), "{report}");
    assert!(
        !cached.contains(&gone.as_str()),
        "removed container evicted: {report}"
    );
    assert!(report["evicted"].as_u64().unwrap() >= 1, "{report}");
    // The sandbox's first processes run before CRI lists the sandbox: containerd's own API
    // answers for those (the CRI labels still give the pod).
    assert!(report["found_cri"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        report["found_containerd"].as_u64().unwrap() >= 2,
        "{report}"
    );
    assert_eq!(report["cri_errors"], 0, "{report}");
    assert_eq!(report["containerd_errors"], 0, "{report}");

    ctrd.remove(&id);
    ctrd.remove_pods();
}

/// Runtime sockets that do not answer: one warning each, counters, the cgroup-only object.
#[test]
fn missing_runtime_sockets_give_one_warning_and_cgroup_data() {
    let ctrd = Containerd::start();
    let missing = ctrd.dir.join("nothing-here.sock");
    let missing = missing.to_str().unwrap();
    let probe = Probe::start(&[
        "--events",
        "process.exec",
        "--cri-socket",
        missing,
        "--containerd-socket",
        missing,
        "--container-wait",
        "50ms",
        "--docker-socket",
        "none",
    ]);
    let id = hex_id();
    ctrd.ctr(
        &ctrd.ns,
        &["run", "--rm", IMAGE, &id, "sh", "-c", "true; sleep 1"],
    );
    let evs = probe.wait_n(WAIT, 2, |v| in_container(v, &id));
    assert!(!evs.is_empty());
    for ev in &evs {
        assert_eq!(
            ev["container"],
            serde_json::json!({ "id": id, "runtime": "containerd", "source": "cgroup" }),
            "{ev}"
        );
    }
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    one_unusable_socket_warning(&st);
}

/// podman through its Docker-compatible API on a private socket.
#[test]
fn podman_containers_through_the_docker_api() {
    let mut pm = Podman::start();
    let sock = pm.sock.to_str().unwrap().to_owned();
    let probe = Probe::start(&[
        "--events",
        "process.exec",
        "--docker-socket",
        &sock,
        "--cri-socket",
        "none",
        "--containerd-socket",
        "none",
    ]);
    let name = unique("tprobe-pm");
    let id = pm.run_detached(
        &name,
        &["app=pm", "tier=test"],
        &["sh", "-c", "exec sleep 600"],
    );
    let ev = probe
        .wait_for(WAIT, |v| {
            in_container(v, &id) && v["process"]["args"][0] == "sleep"
        })
        .expect("exec in the podman container");
    let c = &ev["container"];
    assert_eq!(c["runtime"], "podman", "{ev}");
    assert_eq!(c["source"], "docker", "{ev}");
    assert_eq!(c["name"], name.as_str(), "{ev}");
    assert_eq!(c["image"], podman::IMAGE, "{ev}");
    assert_eq!(c["labels"]["app"], "pm", "{ev}");
    assert_eq!(c["labels"]["tier"], "test", "{ev}");
    pm.remove(&id);
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let report = &st.lines.last().unwrap()["probe"]["containers"];
    assert!(report["found_docker"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["docker_errors"], 0, "{report}");
}

/// containerd goes away while the probe runs: one warning, a counter, the cgroup-only object.
#[test]
fn a_runtime_that_dies_gives_one_warning_and_cgroup_data() {
    let ctrd = Containerd::start();
    let sock = ctrd.sock.to_str().unwrap().to_owned();
    let probe = Probe::start(&[
        "--events",
        "process.exec",
        "--cri-socket",
        "none",
        "--containerd-socket",
        &sock,
        "--docker-socket",
        "none",
    ]);
    let id = unique("tprobe-before");
    ctrd.ctr(
        &ctrd.ns,
        &["run", "--rm", IMAGE, &id, "sh", "-c", "sleep 1"],
    );
    let ev = probe
        .wait_for(WAIT, |v| in_container(v, &id))
        .expect("exec while containerd runs");
    assert_eq!(ev["container"]["source"], "containerd", "{ev}");
    // Stop and remove our containerd; then a containerd-shaped cgroup with a full id appears.
    drop(ctrd);
    let hex = hex_id();
    let fake = Lookalike::start(&hex);
    let ev = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec"
                && v["process"]["pid"] == fake.child.id()
                && v["process"]["args"][0] == "/bin/sleep"
        })
        .expect("exec after containerd died");
    assert_eq!(
        ev["container"],
        serde_json::json!({ "id": hex, "runtime": "containerd", "source": "cgroup" }),
        "{ev}"
    );
    drop(fake);
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    assert!(!st.stderr.contains("panicked"), "{}", st.stderr);
    let report = one_unusable_socket_warning(&st);
    assert!(
        report["found_containerd"].as_u64().unwrap() >= 1,
        "{report}"
    );
}

/// The namespaces on a container's events are the container's, read in the kernel; a process
/// that enters the host's namespaces again from inside the container shows the host's; the
/// container's executables are hashed through its own root.
#[test]
fn container_namespaces_and_nsenter_back_to_the_host() {
    let ctrd = Containerd::start();
    let sock = ctrd.sock.to_str().unwrap().to_owned();
    let mut args = probe_args(&ctrd, &sock);
    args.extend(["--hash-wait", "10s"]);
    let probe = Probe::start(&args);
    let id = unique("tprobe-ns");
    ctrd.ctr(
        &ctrd.ns,
        &["run", "-d", IMAGE, &id, "sh", "-c", "exec sleep 600"],
    );
    let sleep = probe
        .wait_for(WAIT, |v| {
            in_container(v, &id) && v["process"]["args"][0] == "sleep"
        })
        .expect("exec of sleep in the container");
    let ns_of = |pid: &str, ns: &str| -> u64 {
        let l = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let s = l.to_string_lossy().into_owned();
        s.trim_end_matches(']')
            .rsplit('[')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    for ns in ["pid", "mnt", "net", "uts", "ipc"] {
        assert_ne!(
            sleep["process"]["ns"][ns],
            ns_of("self", ns),
            "{ns}: {sleep}"
        );
    }
    // busybox in the container: hashed through the container's root, not the host's path.
    assert_eq!(
        sleep["process"]["hash"]["sha256"],
        String::from_utf8_lossy(
            &Command::new("sha256sum")
                .arg("/bin/busybox")
                .output()
                .unwrap()
                .stdout
        )
        .split_whitespace()
        .next()
        .unwrap(),
        "{sleep}"
    );
    // Into the container with the host's namespace files held open, then back into them.
    let pid = ctrd.task_pid(&id);
    let script = format!(
        "exec 3</proc/self/ns/net 4</proc/self/ns/mnt 5</proc/self/ns/uts 6</proc/self/ns/ipc; \
         nsenter -t {pid} -a /bin/busybox nsenter --net=/proc/self/fd/3 --mount=/proc/self/fd/4 \
         --uts=/proc/self/fd/5 --ipc=/proc/self/fd/6 /bin/true tprobe-ns-back"
    );
    let st = Command::new("bash").args(["-c", &script]).status().unwrap();
    assert!(st.success());
    let back = probe
        .wait_for(WAIT, |v| {
            v["kind"] == "process.exec" && v["process"]["args"][1] == "tprobe-ns-back"
        })
        .expect("exec after nsenter back");
    for ns in ["net", "mnt", "uts", "ipc"] {
        assert_eq!(back["process"]["ns"][ns], ns_of("self", ns), "{ns}: {back}");
    }
    // The pid namespace cannot be left: still the container's.
    assert_eq!(back["process"]["ns"]["pid"], sleep["process"]["ns"]["pid"]);
    ctrd.remove(&id);
}
