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
        ("process", "exec") | ("process", "fork") => (&["process"], &["start"]),
        ("process", "exit") => (&["process"], &["end"]),
        ("process", _) => (&["process"], &["info"]),
        ("file", "open") => (&["file"], &["access"]),
        ("file", "create" | "mkdir" | "link" | "symlink") => (&["file"], &["creation"]),
        ("file", "unlink" | "rmdir") => (&["file"], &["deletion"]),
        ("file", _) => (&["file"], &["change"]),
        ("net", "connect" | "accept") => (&["network"], &["connection", "start"]),
        ("net", "close") => (&["network"], &["connection", "end"]),
        ("net", "listen" | "bind") => (&["network"], &["start"]),
        ("net", "dns") => (&["network"], &["protocol"]),
        ("net", _) => (&["network"], &["info"]),
        ("flow", "end") => (&["network"], &["connection", "end"]),
        ("flow", _) => (&["network"], &["connection", "info"]),
        ("probe", "start") => (&["host"], &["start"]),
        ("probe", "stop") => (&["host"], &["end"]),
        _ => (&["host"], &["info"]),
    }
}

fn user(out: &mut Map<String, Value>, v: &Value, prefix: &str) {
    if let Some(uid) = get(v, "process.uid") {
        set(out, &format!("{prefix}user.id"), uid.to_string());
    }
    copy(out, v, "process.user", &format!("{prefix}user.name"));
    if let Some(gid) = get(v, "process.gid") {
        set(out, &format!("{prefix}group.id"), gid.to_string());
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
    ] {
        copy(out, v, src, dst);
    }
    if let Some(args) = get(v, "process.args") {
        if args.as_array().is_some_and(|a| !a.is_empty()) {
            set(out, "process.args", args.clone());
            set(
                out,
                "process.args_count",
                args.as_array().map(|a| a.len()).unwrap_or(0),
            );
            set(out, "process.command_line", command_line(args));
        }
    }
    user(out, v, "process.");
    user(out, v, "");
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
        "rule.tags",
        "rule.file",
        "rule.status",
    ] {
        copy(out, v, &format!("alert.{k}"), &format!("tprobe.alert.{k}"));
    }
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
    let (cats, types) = categorize(category, action);
    set(
        &mut out,
        "event.kind",
        if alert { "alert" } else { "event" },
    );
    if alert {
        alert_fields(&mut out, v);
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
            if get(v, "exit").is_some() {
                set(
                    &mut out,
                    "process.end",
                    get(v, "ts").cloned().unwrap_or_default(),
                );
            }
            copy(&mut out, v, "child", "tprobe.child");
            copy(&mut out, v, "exec", "tprobe.exec");
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
            }
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
