//! The analyze stage end to end: IoC lists, alerts in every format, `--events alert`, rule
//! reloads, and the errors a bad rule or list gives (tprobe rules check, exit code 2).
use std::{
    net::{TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use probe_user::encode::schema_check::{check_ecs, check_ocsf};
use serde_json::Value;
use tprobe_tests::{tprobe_bin, Probe, WAIT};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tprobe-detect-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(p: &Path, text: &str) -> String {
    std::fs::write(p, text).unwrap();
    p.display().to_string()
}

const WHOAMI_RULE: &str = "title: Whoami run
id: 0d7c0000-7470-4000-8000-00000000000a
status: test
description: whoami was run
logsource:
  product: linux
  category: process_creation
detection:
  selection:
    Image|endswith: '/whoami'
  condition: selection
level: high
tags:
  - attack.discovery
  - attack.t1033
";

fn is_alert(v: &Value, id: &str) -> bool {
    v["kind"] == "alert" && v["alert"]["rule"]["id"] == id
}

/// A listed address and a listed domain each give one `ioc` alert; neighbours do not.
#[test]
fn ioc_lists_match_addresses_and_domains() {
    let d = dir("ioc");
    let list = write(
        &d.join("bad.txt"),
        "# test list\n127.0.0.77,test box\n127.9.0.0/16\nevil.example\nnot*an*indicator\n",
    );
    let probe = Probe::start(&["--ioc", &list, "--events", "alert,net.connect,net.dns"]);
    // Connections to closed loopback ports: refused, but each is a net.connect with its peer.
    for ip in ["127.0.0.77", "127.0.0.78", "127.9.3.4"] {
        let _ = TcpStream::connect_timeout(
            &format!("{ip}:9").parse().unwrap(),
            Duration::from_millis(300),
        );
    }
    // DNS questions to a closed port: the query is what counts.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for name in ["a.evil.example", "notevil.example"] {
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend(label.as_bytes());
        }
        q.extend([0, 0, 1, 0, 1]);
        sock.send_to(&q, "127.0.0.1:53").unwrap();
    }
    probe.wait_n(WAIT, 3, |v| v["kind"] == "alert");
    std::thread::sleep(Duration::from_millis(500));
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let alerts: Vec<&Value> = st.lines.iter().filter(|v| v["kind"] == "alert").collect();
    assert_eq!(alerts.len(), 3, "{alerts:#?}");
    let values: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"]["ioc"]["value"].as_str().unwrap())
        .collect();
    assert!(values.contains(&"127.0.0.77"), "{values:?}");
    assert!(values.contains(&"127.9.3.4"), "{values:?}");
    assert!(values.contains(&"a.evil.example"), "{values:?}");
    for a in &alerts {
        assert_eq!(a["alert"]["source"], "ioc");
        assert!(a["process"]["pid"].is_u64(), "{a}");
        assert!(
            a["net"].is_object(),
            "the matched event's objects come along: {a}"
        );
    }
    let named = alerts
        .iter()
        .find(|a| a["alert"]["ioc"]["value"] == "127.0.0.77")
        .unwrap();
    assert_eq!(named["alert"]["ioc"]["name"], "test box");
    assert!(
        st.stderr.contains("bad.txt:5") && st.stderr.contains("not*an*indicator"),
        "the bad line is named: {}",
        st.stderr
    );
    drop(alerts);
    let _ = std::fs::remove_dir_all(&d);
}

/// `--events alert` shows alerts and probe.* only, and the rule's hook is attached anyway.
#[test]
fn events_alert_shows_only_alerts_and_the_rules_hooks_are_attached() {
    let d = dir("only");
    let rule = write(&d.join("whoami.yml"), WHOAMI_RULE);
    let probe = Probe::start(&["--rules", &rule, "--events", "alert"]);
    let st0 = probe.lines();
    let start = &st0[0];
    assert!(
        start["probe"]["analyze"]["hooks_for_rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "sched_process_exec"),
        "{start}"
    );
    Command::new("whoami").output().unwrap();
    let a = probe
        .wait_for(WAIT, |v| {
            is_alert(v, "0d7c0000-7470-4000-8000-00000000000a")
        })
        .expect("the alert");
    assert_eq!(a["process"]["exe"], "/usr/bin/whoami");
    // Analysed but not shown: the matched event has no seq to point at.
    assert!(a["alert"]["matched"]["seq"].is_null(), "{a}");
    assert_eq!(a["alert"]["matched"]["kind"], "process.exec");
    assert_eq!(a["alert"]["attack"]["techniques"][0], "T1033");
    let st = probe.stop();
    for v in &st.lines {
        let k = v["kind"].as_str().unwrap();
        assert!(k == "alert" || k.starts_with("probe."), "{v}");
    }
    let stop = st.lines.iter().find(|v| v["kind"] == "probe.stop").unwrap();
    assert!(
        stop["probe"]["analyze"]["alerts"].as_u64().unwrap() >= 1,
        "{stop}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

const PTRACE_RULE: &str = "title: A sleeper traced
id: 0d7c0000-7470-4000-8000-00000000000b
status: test
logsource:
  product: linux
  category: process_access
detection:
  selection:
    TargetImage|endswith: '/sleep'
    SourceImage|contains: 'python'
  condition: selection
level: high
tags:
  - attack.privilege_escalation
  - attack.t1055.008
";

/// A process_access rule (Sigma's names for the source and the target) alerts on a real
/// ptrace attach, with only alerts asked for: the ptrace hook is attached for the rule alone.
#[test]
fn a_process_access_rule_attaches_its_hook_and_alerts_on_a_ptrace_attach() {
    let d = dir("access");
    let rule = write(&d.join("ptrace.yml"), PTRACE_RULE);
    let probe = Probe::start(&["--rules", &rule, "--events", "alert"]);
    let start = probe.lines()[0].clone();
    let hooks = start["probe"]["analyze"]["hooks_for_rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        hooks
            .iter()
            .any(|h| h.as_str().is_some_and(|h| h.contains("ptrace"))),
        "{start}"
    );
    let mut sleep = Command::new("sleep").arg("30").spawn().unwrap();
    let code = "import ctypes, os, sys\n\
                libc = ctypes.CDLL(None, use_errno=True)\n\
                pid = int(sys.argv[1])\n\
                assert libc.ptrace(16, pid, 0, 0) == 0, ctypes.get_errno()\n\
                os.waitpid(pid, 0)\n\
                assert libc.ptrace(17, pid, 0, 0) == 0";
    let st = Command::new("python3")
        .args(["-c", code, &sleep.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let a = probe
        .wait_for(WAIT, |v| {
            is_alert(v, "0d7c0000-7470-4000-8000-00000000000b")
        })
        .expect("the alert");
    assert_eq!(a["alert"]["matched"]["kind"], "process.ptrace", "{a}");
    assert_eq!(a["alert"]["attack"]["techniques"][0], "T1055.008", "{a}");
    let _ = sleep.kill();
    let _ = sleep.wait();
    let st = probe.stop();
    assert!(st.status.success(), "{}", st.stderr);
    let _ = std::fs::remove_dir_all(&d);
}

/// Alerts in ECS (event.kind alert, rule.*, threat.*) and OCSF (Detection Finding) conform to
/// the vendored definitions.
#[test]
fn alerts_in_ecs_and_ocsf() {
    let d = dir("formats");
    let rule = write(&d.join("whoami.yml"), WHOAMI_RULE);
    for format in ["ecs", "ocsf"] {
        let ready: fn(&Value) -> bool = if format == "ecs" {
            |v| v["event"]["action"] == "probe.start"
        } else {
            |v| v["metadata"]["event_code"] == "probe.start"
        };
        let probe = Probe::start_ready(
            &[
                "--rules",
                &rule,
                "--events",
                "alert,process.exec",
                "--format",
                format,
            ],
            ready,
        );
        Command::new("whoami").output().unwrap();
        let a = probe
            .wait_for(WAIT, |v| {
                v["event"]["kind"] == "alert" || v["class_uid"] == 2004
            })
            .unwrap_or_else(|| panic!("{format}: no alert"));
        let errs = if format == "ecs" {
            check_ecs(&a)
        } else {
            check_ocsf(&a)
        };
        assert!(errs.is_empty(), "{format}: {errs:?} in {a}");
        if format == "ecs" {
            assert_eq!(a["rule"]["id"], "0d7c0000-7470-4000-8000-00000000000a");
            assert_eq!(a["rule"]["name"], "Whoami run");
            assert_eq!(a["threat"]["framework"], "MITRE ATT&CK");
            assert_eq!(a["threat"]["technique"]["id"][0], "T1033");
            assert_eq!(a["threat"]["tactic"]["name"][0], "Discovery");
            assert_eq!(a["event"]["severity"], 73);
            assert_eq!(a["process"]["executable"], "/usr/bin/whoami");
        } else {
            assert_eq!(a["finding_info"]["title"], "Whoami run");
            assert_eq!(a["finding_info"]["attacks"][0]["technique"]["uid"], "T1033");
            assert_eq!(
                a["finding_info"]["attacks"][0]["tactic"]["name"],
                "Discovery"
            );
            assert_eq!(a["severity_id"], 4);
            assert_eq!(
                a["evidences"][0]["process"]["file"]["path"], "/usr/bin/whoami",
                "{a}"
            );
        }
        let st = probe.stop();
        assert!(st.status.success(), "{}", st.stderr);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A broken rule at start: exit 2 and one line naming the file, the rule and the reason.
#[test]
fn broken_rules_stop_the_start_with_one_line() {
    let d = dir("broken");
    let cases = [
        (
            "field.yml",
            WHOAMI_RULE.replace("Image|endswith", "NoSuchField|endswith"),
            "NoSuchField",
        ),
        (
            "category.yml",
            WHOAMI_RULE.replace("process_creation", "registry_event"),
            "registry_event",
        ),
        (
            "yaml.yml",
            "title: x\ndetection: [unclosed\n".to_string(),
            "YAML",
        ),
        // A name of ours that no exec carries would load and never match.
        (
            "never.yml",
            WHOAMI_RULE.replace("Image|endswith", "file.path|endswith"),
            "file.path",
        ),
    ];
    for (name, text, why) in cases {
        let sub = d.join(name.trim_end_matches(".yml"));
        std::fs::create_dir_all(&sub).unwrap();
        let path = write(&sub.join(name), &text);
        let out = Command::new(tprobe_bin())
            .args(["run", "--rules", &path, "--duration", "1s"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: one line: {err}");
        assert!(err.contains(name) && err.contains(why), "{name}: {err}");
        let check = Command::new(tprobe_bin())
            .args(["rules", "check", &path])
            .output()
            .unwrap();
        assert!(!check.status.success(), "{name}");
        assert!(String::from_utf8_lossy(&check.stdout).contains(why));
    }
    // Duplicate ids: refused, both files named.
    let dup = d.join("dup");
    std::fs::create_dir_all(&dup).unwrap();
    write(&dup.join("a.yml"), WHOAMI_RULE);
    write(
        &dup.join("b.yml"),
        &WHOAMI_RULE.replace("Whoami run", "Whoami again"),
    );
    let check = Command::new(tprobe_bin())
        .args(["rules", "check", dup.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success(), "{text}");
    assert!(
        text.contains("a.yml") && text.contains("b.yml") && text.contains("duplicate"),
        "{text}"
    );
    // A huge file is an error, not a hang.
    let big = d.join("big.yml");
    std::fs::write(&big, "#".repeat(2 << 20)).unwrap();
    let out = Command::new(tprobe_bin())
        .args(["rules", "check", big.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bytes"),
        "{out:?}"
    );
    // The pack itself loads whole.
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let out = Command::new(tprobe_bin())
        .args(["rules", "check", pack.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let list = Command::new(tprobe_bin())
        .args(["rules", "list", pack.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).lines().count() >= 30);
    let _ = std::fs::remove_dir_all(&d);
}

/// SIGHUP reloads rules with the config; a broken set keeps the running one and says why.
#[test]
fn sighup_reloads_rules_and_keeps_them_when_broken() {
    let d = dir("reload");
    let rule = d.join("rules");
    std::fs::create_dir_all(&rule).unwrap();
    write(&rule.join("whoami.yml"), WHOAMI_RULE);
    let cfg = d.join("tprobe.yaml");
    write(&cfg, "events: [alert]\nanalyze:\n  rules: [rules]\n");
    let probe = Probe::start(&["--config", cfg.to_str().unwrap()]);
    Command::new("whoami").output().unwrap();
    probe
        .wait_for(WAIT, |v| {
            is_alert(v, "0d7c0000-7470-4000-8000-00000000000a")
        })
        .expect("alert from the first set");
    // Broken: the running set stays.
    write(
        &rule.join("broken.yml"),
        &WHOAMI_RULE
            .replace("Image|endswith", "Nope|endswith")
            .replace("0000000a", "0000000b"),
    );
    write(
        &cfg,
        "events: [alert]\nanalyze:\n  rules: [rules]\n# edited\n",
    );
    unsafe { libc::kill(probe.pid() as i32, libc::SIGHUP) };
    let r = probe
        .wait_for(WAIT, |v| v["kind"] == "probe.reload")
        .expect("probe.reload");
    let warns = r["probe"]["warnings"].to_string();
    assert!(
        warns.contains("running ones stay") && warns.contains("Nope"),
        "{r}"
    );
    let n = |p: &Probe| {
        p.lines()
            .iter()
            .filter(|v| is_alert(v, "0d7c0000-7470-4000-8000-00000000000a"))
            .count()
    };
    let before = n(&probe);
    Command::new("whoami").output().unwrap();
    probe.wait_n(WAIT, before + 1, |v| {
        is_alert(v, "0d7c0000-7470-4000-8000-00000000000a")
    });
    assert_eq!(n(&probe), before + 1, "the running rules still alert");
    // Fixed, and pointed at another rule: the new set replaces the old.
    std::fs::remove_file(rule.join("broken.yml")).unwrap();
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    write(
        &other.join("id.yml"),
        &WHOAMI_RULE
            .replace("/whoami", "/id")
            .replace("0000000a", "0000000c"),
    );
    write(&cfg, "events: [alert]\nanalyze:\n  rules: [other]\n");
    unsafe { libc::kill(probe.pid() as i32, libc::SIGHUP) };
    probe.wait_n(WAIT, 2, |v| v["kind"] == "probe.reload");
    std::thread::sleep(Duration::from_millis(300));
    Command::new("whoami").output().unwrap();
    Command::new("id").output().unwrap();
    probe
        .wait_for(WAIT, |v| {
            is_alert(v, "0d7c0000-7470-4000-8000-00000000000c")
        })
        .expect("alert from the new set");
    let st = probe.stop();
    let old_after = st
        .lines
        .iter()
        .filter(|v| is_alert(v, "0d7c0000-7470-4000-8000-00000000000a"))
        .count();
    assert_eq!(
        old_after,
        before + 1,
        "the old set is gone after the reload"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Correlations tprobe keeps itself, on real execs: `temporal_ordered` fires when the two
/// programs run in its order (not the other way round), `event_count` when the third run of
/// one comes; both carry the group (the parent's pid) and the seqs of their execs, and the
/// rules they name raise nothing of their own.
#[test]
fn temporal_ordered_and_event_count_correlations_on_real_execs() {
    let d = dir("corr");
    for name in ["tp-corr-first", "tp-corr-then"] {
        std::fs::copy("/bin/true", d.join(name)).unwrap();
    }
    let rules = write(
        &d.join("corr.yml"),
        "title: first
id: 0d7c0000-7470-4000-8000-000000000021
logsource: {product: linux, category: process_creation}
detection: {s: {Image|endswith: /tp-corr-first}, condition: s}
---
title: then
id: 0d7c0000-7470-4000-8000-000000000022
logsource: {product: linux, category: process_creation}
detection: {s: {Image|endswith: /tp-corr-then}, condition: s}
---
title: first then then
id: 0d7c0000-7470-4000-8000-000000000023
correlation:
  type: temporal_ordered
  rules: [0d7c0000-7470-4000-8000-000000000021, 0d7c0000-7470-4000-8000-000000000022]
  group-by: [ParentProcessId]
  timespan: 60s
level: high
---
title: then three times
id: 0d7c0000-7470-4000-8000-000000000024
correlation:
  type: event_count
  rules: [0d7c0000-7470-4000-8000-000000000022]
  group-by: [ParentProcessId]
  timespan: 60s
  condition: {gte: 3}
level: medium
",
    );
    let probe = Probe::start(&["--rules", &rules, "--events", "alert,process.exec"]);
    let run = |name: &str| {
        Command::new(d.join(name)).status().unwrap();
    };
    let me = std::process::id().to_string();
    let execs = |name: &str| {
        probe
            .lines()
            .iter()
            .filter(|v| {
                v["kind"] == "process.exec"
                    && v["process"]["exe"]
                        .as_str()
                        .is_some_and(|e| e.ends_with(name))
            })
            .map(|v| v["seq"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    // The wrong order first: `then` before `first` fires nothing.
    run("tp-corr-then");
    run("tp-corr-first");
    probe
        .wait_for(WAIT, |v| {
            v["process"]["exe"]
                .as_str()
                .is_some_and(|e| e.ends_with("/tp-corr-first"))
        })
        .expect("the exec of tp-corr-first");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !probe
            .lines()
            .iter()
            .any(|v| is_alert(v, "0d7c0000-7470-4000-8000-000000000023")),
        "then before first is not the order"
    );
    // A correlation's alert, grouped by this test's pid (the execs' parent).
    let fired = |id: &str| {
        let a = probe
            .wait_for(WAIT, |v| is_alert(v, id))
            .unwrap_or_else(|| panic!("no alert of {id}"));
        assert_eq!(a["alert"]["group"]["ParentProcessId"], me.as_str(), "{a}");
        a
    };
    run("tp-corr-then");
    let ordered = fired("0d7c0000-7470-4000-8000-000000000023");
    let seqs: Vec<u64> = ordered["alert"]["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    let (first, then) = (execs("/tp-corr-first"), execs("/tp-corr-then"));
    assert!(
        seqs.contains(&first[0]) && seqs.contains(&then[1]),
        "{ordered}"
    );
    // Two runs of `then` so far: the count fires with the third, once.
    assert!(!probe
        .lines()
        .iter()
        .any(|v| is_alert(v, "0d7c0000-7470-4000-8000-000000000024")));
    run("tp-corr-then");
    let counted = fired("0d7c0000-7470-4000-8000-000000000024");
    assert_eq!(
        counted["alert"]["matched"].as_array().unwrap().len(),
        3,
        "{counted}"
    );
    let st = probe.stop();
    for id in ["21", "22"] {
        let id = format!("0d7c0000-7470-4000-8000-0000000000{id}");
        assert!(
            !st.lines.iter().any(|v| is_alert(v, &id)),
            "{id} alerted on its own"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}
