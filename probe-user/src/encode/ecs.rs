//! Elastic Common Schema (ECS 8.11) from the native record. Fields ECS has no place for go under
//! the custom `tprobe.*` namespace (ECS reserves no such name), so nothing is dropped.
//! The mapping table is in docs/formats.md; the field set is checked against `schemas/ecs-fields.json`.
use serde_json::{json, Map, Value};

use super::json::{base_dir, command_line, copy, get, get_str, loss_message, set, split_kind};

pub const ECS_VERSION: &str = "8.11.0";

/// `event.category` and `event.type` for a kind.
pub fn categorize(
    category: &str,
    action: &str,
) -> (&'static [&'static str], &'static [&'static str]) {
    match (category, action) {
        ("process", "exec" | "fork" | "exec_failed") => (&["process"], &["start"]),
        ("process", "exit") => (&["process"], &["end"]),
        ("process", "ptrace" | "vm_write" | "signal") => (&["process"], &["access"]),
        ("process", "setuid" | "setgid" | "capset" | "rename" | "unshare" | "setns" | "dup") => {
            (&["process"], &["change"])
        }
        // Kernel modules and BPF programs are code loaded into the kernel: ECS `driver`.
        ("kernel", "module_load") | ("bpf", "load") => (&["driver"], &["start"]),
        ("kernel", "module_unload") => (&["driver"], &["end"]),
        ("process", _) => (&["process"], &["info"]),
        ("file", "open") => (&["file"], &["access"]),
        ("file", "create" | "mkdir" | "link" | "symlink") => (&["file"], &["creation"]),
        ("file", "unlink" | "rmdir") => (&["file"], &["deletion"]),
        ("file", _) => (&["file"], &["change"]),
        ("net", "connect" | "accept") => (&["network"], &["connection", "start"]),
        ("net", "close") => (&["network"], &["connection", "end"]),
        ("net", "listen" | "bind") => (&["network"], &["start"]),
        ("net", "dns") => (&["network"], &["protocol"]),
        ("net", "socket") => (&["network"], &["start"]),
        ("net", _) => (&["network"], &["info"]),
        ("flow", "end") => (&["network"], &["connection", "end"]),
        ("flow", _) => (&["network"], &["connection", "info"]),
        ("probe", "start") => (&["host"], &["start"]),
        ("probe", "stop") => (&["host"], &["end"]),
        _ => (&["host"], &["info"]),
    }
}

/// `user.*` is the real user (who the process acts for); `process.user` is the effective
/// one, as ECS defines it, with `process.real_user` beside it.
fn users(out: &mut Map<String, Value>, v: &Value) {
    let id = |k: &str| get(v, k).map(|x| x.to_string());
    let (uid, gid) = (id("process.uid"), id("process.gid"));
    let euid = id("process.euid").or_else(|| uid.clone());
    let egid = id("process.egid").or_else(|| gid.clone());
    set(out, "user.id", uid.clone());
    copy(out, v, "process.user", "user.name");
    set(out, "group.id", gid.clone());
    set(out, "process.user.id", euid.clone());
    set(out, "process.group.id", egid.clone());
    set(out, "process.real_user.id", uid);
    set(out, "process.real_group.id", gid);
    if get(v, "process.euid").is_some() {
        set(out, "user.effective.id", euid);
        set(out, "user.effective.group.id", egid);
    }
    if get(v, "process.euid") == get(v, "process.uid") {
        copy(out, v, "process.user", "process.user.name");
    }
}

/// `process.tty`: ECS wants the character device; the name stays under `tprobe.*`.
fn tty(out: &mut Map<String, Value>, v: &Value) {
    let Some(name) = get_str(v, "process.tty") else {
        if get(v, "process.euid").is_some() {
            set(out, "process.interactive", false);
        }
        return;
    };
    set(out, "process.interactive", true);
    set(out, "tprobe.process.tty", name);
    let dev = if let Some(n) = name
        .strip_prefix("pts/")
        .and_then(|n| n.parse::<u32>().ok())
    {
        Some((136 + n / 256, n % 256))
    } else if let Some(n) = name
        .strip_prefix("ttyS")
        .and_then(|n| n.parse::<u32>().ok())
    {
        Some((4, 64 + n))
    } else {
        name.strip_prefix("tty")
            .and_then(|n| n.parse::<u32>().ok())
            .map(|n| (4, n))
    };
    if let Some((major, minor)) = dev {
        set(out, "process.tty.char_device.major", major);
        set(out, "process.tty.char_device.minor", minor);
    }
}

fn process(out: &mut Map<String, Value>, v: &Value) {
    if get(v, "process").is_none() {
        return;
    }
    for (src, dst) in [
        ("process.pid", "process.pid"),
        ("process.tid", "process.thread.id"),
        ("process.comm", "process.name"),
        ("process.exe", "process.executable"),
        ("process.cwd", "process.working_directory"),
        ("process.start_time", "process.start"),
        ("process.entity_id", "process.entity_id"),
        ("process.ppid", "process.parent.pid"),
        ("parent.pid", "process.parent.pid"),
        ("parent.comm", "process.parent.name"),
        ("parent.exe", "process.parent.executable"),
        ("parent.entity_id", "process.parent.entity_id"),
        // no ECS field: kept under tprobe.*
        ("process.cgroup_id", "tprobe.process.cgroup_id"),
        ("process.args_truncated", "tprobe.process.args_truncated"),
        ("process.comm_b64", "tprobe.process.comm_b64"),
        ("process.exe_b64", "tprobe.process.exe_b64"),
        ("process.args_b64", "tprobe.process.args_b64"),
        ("process.cwd_b64", "tprobe.process.cwd_b64"),
        ("parent.exe_b64", "tprobe.parent.exe_b64"),
        ("parent.args_b64", "tprobe.parent.args_b64"),
        ("process.hash.sha256", "process.hash.sha256"),
        ("process.hash_skipped", "tprobe.process.hash_skipped"),
        ("process.hash_error", "tprobe.process.hash_error"),
        (
            "process.caps.effective",
            "process.thread.capabilities.effective",
        ),
        (
            "process.caps.permitted",
            "process.thread.capabilities.permitted",
        ),
        ("process.auid", "tprobe.process.auid"),
        ("process.ns", "tprobe.process.ns"),
        ("process.ancestors", "tprobe.process.ancestors"),
        ("process.source", "tprobe.process.source"),
        ("process.exe_truncated", "tprobe.process.exe_truncated"),
        ("process.cwd_truncated", "tprobe.process.cwd_truncated"),
        ("process.cwd_deleted", "tprobe.process.cwd_deleted"),
    ] {
        copy(out, v, src, dst);
    }
    for (src, dst) in [
        ("process.args", "process"),
        ("parent.args", "process.parent"),
    ] {
        if let Some(args) = get(v, src) {
            if args.as_array().is_some_and(|a| !a.is_empty()) {
                set(out, &format!("{dst}.args"), args.clone());
                set(
                    out,
                    &format!("{dst}.args_count"),
                    args.as_array().map(|a| a.len()).unwrap_or(0),
                );
                set(out, &format!("{dst}.command_line"), command_line(args));
            }
        }
    }
    users(out, v);
    tty(out, v);
}

fn endpoint(out: &mut Map<String, Value>, v: &Value, src: &str, dst: &str) {
    copy(out, v, &format!("{src}.ip"), &format!("{dst}.ip"));
    copy(out, v, &format!("{src}.port"), &format!("{dst}.port"));
    if let Some(ip) = get_str(v, &format!("{src}.ip")) {
        set(out, &format!("{dst}.address"), ip);
    }
}

fn container(out: &mut Map<String, Value>, v: &Value) {
    for (src, dst) in [
        ("container.id", "container.id"),
        ("container.name", "container.name"),
        ("container.image", "container.image.name"),
        ("container.runtime", "container.runtime"),
        ("container.labels", "container.labels"),
        ("container.source", "tprobe.container.source"),
        ("container.pod.name", "orchestrator.resource.name"),
        ("container.pod.namespace", "orchestrator.namespace"),
        ("container.pod.uid", "orchestrator.resource.id"),
    ] {
        copy(out, v, src, dst);
    }
    if get(v, "container.pod").is_some() {
        set(out, "orchestrator.type", "kubernetes");
        set(out, "orchestrator.resource.type", "pod");
        if let Some(l) = get(v, "container.pod.labels").and_then(Value::as_object) {
            let labels: Vec<String> = l
                .iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                .collect();
            set(out, "orchestrator.resource.label", labels);
        }
    }
}

/// ECS `event.severity` for a Sigma level (the scale Elastic's detection rules use).
pub fn severity(level: &str) -> u64 {
    match level {
        "informational" => 1,
        "low" => 21,
        "medium" => 47,
        "high" => 73,
        _ => 99,
    }
}

/// `rule.*`, `threat.*` and the rest of an alert.
fn alert_fields(out: &mut Map<String, Value>, v: &Value) {
    copy(out, v, "alert.rule.id", "rule.id");
    copy(out, v, "alert.rule.id", "rule.uuid");
    copy(out, v, "alert.rule.title", "rule.name");
    copy(out, v, "alert.rule.description", "rule.description");
    if let Some(r) = get(v, "alert.rule.references.0") {
        set(out, "rule.reference", r.clone());
    }
    copy(out, v, "alert.source", "rule.ruleset");
    set(out, "rule.author", "tprobe");
    if let Some(l) = get_str(v, "alert.rule.level") {
        set(out, "event.severity", severity(l));
        set(out, "tprobe.alert.level", l);
    }
    let techniques = get(v, "alert.attack.techniques")
        .cloned()
        .unwrap_or(json!([]));
    let tactics = get(v, "alert.attack.tactics").cloned().unwrap_or(json!([]));
    let has_attack = techniques.as_array().is_some_and(|a| !a.is_empty())
        || tactics.as_array().is_some_and(|a| !a.is_empty());
    if has_attack {
        set(out, "threat.framework", "MITRE ATT&CK");
        set(out, "threat.technique.id", techniques);
        let ids: Vec<&str> = tactics
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| crate::analyze::attack::tactic_id(t.as_str()?))
            .collect();
        set(out, "threat.tactic.name", tactics);
        set(out, "threat.tactic.id", json!(ids));
    }
    for k in [
        "matched",
        "group",
        "ioc",
        "baseline",
        "rule.tags",
        "rule.file",
        "rule.status",
    ] {
        copy(out, v, &format!("alert.{k}"), &format!("tprobe.alert.{k}"));
    }
}

/// `response.*`: a kill ends a process (in the kernel or not), a freeze changes it, an
/// isolation denies network traffic, its release allows it again.
fn response_categories(v: &Value) -> (&'static [&'static str], &'static [&'static str]) {
    match get_str(v, "response.action").unwrap_or("") {
        "kill" | "kill-tree" => (&["process"], &["end"]),
        "isolate" => (&["network"], &["denied"]),
        "release" if get(v, "response.target.iface").is_some() => (&["network"], &["allowed"]),
        _ => (&["process"], &["change"]),
    }
}

/// `event.outcome`, `error.code`, `rule.id` and the whole object under `tprobe.response`.
fn response_fields(out: &mut Map<String, Value>, v: &Value) {
    let ok = get(v, "response.ok").and_then(Value::as_bool) == Some(true);
    set(out, "event.outcome", if ok { "success" } else { "failure" });
    copy(out, v, "response.error", "error.code");
    copy(out, v, "response.reason", "message");
    copy(out, v, "response.trigger.rule_id", "rule.id");
    copy(out, v, "response", "tprobe.response");
}

/// Maps one native record to ECS.
pub fn from_native(v: &Value) -> Value {
    let mut out = Map::new();
    let kind = get_str(v, "kind").unwrap_or("");
    let alert = kind == "alert";
    // An alert maps the matched event's objects as that kind would.
    let (category, action) = match get_str(v, "alert.matched.kind") {
        Some(m) if alert => m.split_once('.').unwrap_or((m, "")),
        _ => split_kind(v),
    };
    copy(&mut out, v, "ts", "@timestamp");
    set(&mut out, "ecs.version", ECS_VERSION);
    let (cats, types) = if category == "response" {
        response_categories(v)
    } else {
        categorize(category, action)
    };
    set(
        &mut out,
        "event.kind",
        if alert { "alert" } else { "event" },
    );
    if alert {
        alert_fields(&mut out, v);
    }
    if category == "response" {
        response_fields(&mut out, v);
    }
    set(&mut out, "event.category", json!(cats));
    set(&mut out, "event.type", json!(types));
    set(&mut out, "event.action", kind);
    set(&mut out, "event.module", "tprobe");
    set(&mut out, "event.dataset", format!("tprobe.{category}"));
    copy(&mut out, v, "seq", "event.sequence");
    copy(&mut out, v, "host.name", "host.name");
    copy(&mut out, v, "host.name", "host.hostname");
    copy(&mut out, v, "schema", "tprobe.schema");
    set(&mut out, "agent.type", "tprobe");
    set(&mut out, "agent.version", env!("CARGO_PKG_VERSION"));
    process(&mut out, v);
    container(&mut out, v);
    if let Some(ok) = get(v, "result.ok").and_then(Value::as_bool) {
        set(
            &mut out,
            "event.outcome",
            if ok { "success" } else { "failure" },
        );
        copy(&mut out, v, "result.error", "error.code");
        copy(&mut out, v, "result.errno", "tprobe.result.errno");
    }
    match category {
        "process" => {
            copy(&mut out, v, "exit.code", "process.exit_code");
            copy(&mut out, v, "exit.signal", "tprobe.exit.signal");
            copy(&mut out, v, "exit.core_dumped", "tprobe.exit.core_dumped");
            copy(&mut out, v, "exit.cpu", "tprobe.exit.cpu");
            if get(v, "exit").is_some() {
                set(
                    &mut out,
                    "process.end",
                    get(v, "ts").cloned().unwrap_or_default(),
                );
            }
            copy(&mut out, v, "child", "tprobe.child");
            copy(&mut out, v, "exec", "tprobe.exec");
            // setuid family: the user the process asks to become.
            for id in ["cred.uid", "cred.euid", "cred.ruid", "cred.fsuid"] {
                if let Some(x) = get(v, id) {
                    set(&mut out, "user.changes.id", x.to_string());
                    break;
                }
            }
            // process.dup: the socket now on stdin/stdout/stderr.
            if get(v, "net").is_some() {
                copy(&mut out, v, "net.transport", "network.transport");
                copy(&mut out, v, "net.family", "network.type");
                endpoint(&mut out, v, "net.src", "source");
                endpoint(&mut out, v, "net.dst", "destination");
            }
        }
        "kernel" => {
            if let Some(p) = get_str(v, "module.path") {
                set(&mut out, "file.path", p);
                let (name, dir) = base_dir(p);
                set(&mut out, "file.name", name);
                set(&mut out, "file.directory", dir);
            }
        }
        "file" => {
            if let Some(p) = get_str(v, "file.path") {
                set(&mut out, "file.path", p);
                let (name, dir) = base_dir(p);
                set(&mut out, "file.name", name);
                set(&mut out, "file.directory", dir);
                if let Some(ext) = name.and_then(|n| n.rsplit_once('.')).map(|x| x.1) {
                    if !ext.is_empty() {
                        set(&mut out, "file.extension", ext);
                    }
                }
            }
            copy(&mut out, v, "file.mode", "file.mode");
            copy(&mut out, v, "file.target_path", "file.target_path");
            for k in ["uid", "gid"] {
                if let Some(x) = get(v, &format!("file.{k}")) {
                    set(&mut out, &format!("file.{k}"), x.to_string());
                }
            }
            set(
                &mut out,
                "file.type",
                match action {
                    "mkdir" | "rmdir" => "dir",
                    "symlink" => "symlink",
                    _ => "file",
                },
            );
            // file.utime: the times set (when they are times, not `now` / `omit`).
            for (src, dst) in [
                ("times.mtime", "file.mtime"),
                ("times.atime", "file.accessed"),
            ] {
                if let Some(t) = get_str(v, src).filter(|t| t.contains('T')) {
                    set(&mut out, dst, t);
                }
            }
            for k in ["flags", "path_truncated", "path_b64", "target_path_b64"] {
                copy(
                    &mut out,
                    v,
                    &format!("file.{k}"),
                    &format!("tprobe.file.{k}"),
                );
            }
        }
        "net" => {
            copy(&mut out, v, "net.transport", "network.transport");
            copy(&mut out, v, "net.family", "network.type");
            copy(&mut out, v, "net.direction", "network.direction");
            endpoint(&mut out, v, "net.src", "source");
            endpoint(&mut out, v, "net.dst", "destination");
            copy(&mut out, v, "net.path", "tprobe.net.path");
            if action == "dns" || get(v, "dns").is_some() {
                set(&mut out, "network.protocol", "dns");
                set(&mut out, "dns.type", "query");
                copy(&mut out, v, "dns.query", "dns.question.name");
                copy(&mut out, v, "dns.qtype", "dns.question.type");
                copy(&mut out, v, "dns.server", "server.address");
                if let Some(answers) = get(v, "dns.answers").and_then(Value::as_array) {
                    set(&mut out, "dns.type", "answer");
                    copy(&mut out, v, "dns.rcode", "dns.response_code");
                    set(&mut out, "dns.answers", answers.clone());
                    copy(
                        &mut out,
                        v,
                        "dns.answers_truncated",
                        "tprobe.dns.answers_truncated",
                    );
                    let ips: Vec<Value> = answers
                        .iter()
                        .filter(|a| matches!(a["type"].as_str(), Some("A" | "AAAA")))
                        .map(|a| a["data"].clone())
                        .collect();
                    if !ips.is_empty() {
                        set(&mut out, "dns.resolved_ip", ips);
                    }
                }
                if let Some(id) = get(v, "dns.id") {
                    set(&mut out, "dns.id", id.to_string());
                }
            }
            copy(&mut out, v, "net.src.domain", "source.domain");
            copy(&mut out, v, "net.dst.domain", "destination.domain");
        }
        "flow" => {
            copy(&mut out, v, "flow.transport", "network.transport");
            endpoint(&mut out, v, "flow.src", "source");
            endpoint(&mut out, v, "flow.dst", "destination");
            copy(&mut out, v, "flow.packets", "network.packets");
            copy(&mut out, v, "flow.bytes", "network.bytes");
            copy(&mut out, v, "flow.iface", "observer.ingress.interface.name");
            copy(&mut out, v, "flow.first_seen", "event.start");
            copy(&mut out, v, "flow.last_seen", "event.end");
            copy(&mut out, v, "flow.tcp_flags", "tprobe.flow.tcp_flags");
            copy(&mut out, v, "flow.src.domain", "source.domain");
            copy(&mut out, v, "flow.dst.domain", "destination.domain");
            if let Some(t) = get_str(v, "flow.src.ip") {
                set(
                    &mut out,
                    "network.type",
                    if t.contains(':') { "ipv6" } else { "ipv4" },
                );
            }
        }
        "probe" => {
            copy(&mut out, v, "probe", "tprobe.probe");
            copy(&mut out, v, "loss", "tprobe.loss");
            if let Some(msg) = loss_message(v) {
                set(&mut out, "message", msg);
            }
        }
        _ => {}
    }
    // Objects of kinds this mapping does not know yet are kept whole.
    if let Some(o) = v.as_object() {
        for (k, x) in o {
            let known = super::NATIVE_KEYS;
            if !known.contains(&k.as_str()) {
                set(&mut out, &format!("tprobe.{k}"), x.clone());
            }
        }
    }
    Value::Object(out)
}
