//! OCSF 1.3.0 from the native record: Process Activity (1007), File System Activity (1001),
//! Kernel Extension Activity (1008, modules and BPF programs), Network Activity (4001) and,
//! for `probe.*`, the Base Event (0). Values OCSF has no attribute
//! for go to the standard `unmapped` object. The mapping table is in docs/formats.md; the attribute
//! sets are checked against `schemas/ocsf-classes.json`.
use serde_json::{json, Map, Value};

use super::json::{
    base_dir, command_line, copy, epoch_ms, get, get_str, loss_message, set, split_kind,
};

pub const OCSF_VERSION: &str = "1.3.0";

/// (class_uid, class_name, category_uid, category_name)
pub fn class_of(category: &str) -> (u32, &'static str, u32, &'static str) {
    match category {
        "process" => (1007, "Process Activity", 1, "System Activity"),
        "file" => (1001, "File System Activity", 1, "System Activity"),
        // Modules and BPF programs: code loaded into the kernel.
        "kernel" | "bpf" => (1008, "Kernel Extension Activity", 1, "System Activity"),
        "net" | "flow" => (4001, "Network Activity", 4, "Network Activity"),
        _ => (0, "Base Event", 0, "Uncategorized"),
    }
}

/// (activity_id, activity_name) of a kind in its class.
pub fn activity_of(
    category: &str,
    action: &str,
    failed_errno: Option<&str>,
) -> (u32, &'static str) {
    match (category, action) {
        ("process", "exec" | "fork" | "exec_failed") => (1, "Launch"),
        ("process", "exit") => (2, "Terminate"),
        ("process", "setuid" | "setgid") => (5, "Set User ID"),
        ("process", "ptrace" | "vm_write") => (4, "Inject"),
        ("kernel", "module_load") | ("bpf", "load") => (1, "Load"),
        ("kernel", "module_unload") => (2, "Unload"),
        ("file", "mount") => (12, "Mount"),
        ("file", "umount") => (13, "Unmount"),
        ("file", "utime") => (6, "Set Attributes"),
        ("file", "create" | "mkdir" | "link" | "symlink") => (1, "Create"),
        ("file", "truncate") => (3, "Update"),
        ("file", "unlink" | "rmdir") => (4, "Delete"),
        ("file", "rename") => (5, "Rename"),
        ("file", "chmod" | "chown") => (7, "Set Security"),
        ("file", "open") => (14, "Open"),
        ("net", "connect") => match failed_errno {
            Some("ECONNREFUSED") => (5, "Refuse"),
            Some(_) => (4, "Fail"),
            None => (1, "Open"),
        },
        ("net", "accept") => (1, "Open"),
        ("net", "close") | ("flow", "end") => (2, "Close"),
        ("net", "listen") => (7, "Listen"),
        ("flow", "update") => (6, "Traffic"),
        _ => (99, "Other"),
    }
}

/// `file` of a process object: its executable, a regular file.
fn exe_file(p: &mut Map<String, Value>, exe: &str) {
    set(p, "file.path", exe);
    let (name, dir) = base_dir(exe);
    set(p, "file.name", name);
    set(p, "file.parent_folder", dir);
    set(p, "file.type_id", 1);
    set(p, "file.type", "Regular File");
}

fn process_obj(v: &Value) -> Option<Value> {
    get(v, "process")?;
    let mut p = Map::new();
    copy(&mut p, v, "process.pid", "pid");
    copy(&mut p, v, "process.tid", "tid");
    copy(&mut p, v, "process.comm", "name");
    copy(&mut p, v, "process.entity_id", "uid");
    copy(&mut p, v, "process.cwd", "working_directory");
    if let Some(exe) = get_str(v, "process.exe") {
        exe_file(&mut p, exe);
        if let Some(h) = get_str(v, "process.hash.sha256") {
            set(&mut p, "file.hashes", sha256_fingerprint(h));
        }
    }
    if let Some(a) = get(v, "process.ancestors").and_then(Value::as_array) {
        let lineage: Vec<&str> = a.iter().filter_map(|x| x["exe"].as_str()).collect();
        set(&mut p, "lineage", json!(lineage));
    }
    if let Some(args) = get(v, "process.args") {
        set(&mut p, "cmd_line", command_line(args));
    }
    if let Some(t) = get(v, "process.start_time").and_then(epoch_ms) {
        set(&mut p, "created_time", t);
    }
    // The user the process runs as: the effective one.
    if let Some(uid) = get(v, "process.euid").or_else(|| get(v, "process.uid")) {
        set(&mut p, "user.uid", uid.to_string());
    }
    if get(v, "process.euid").is_none() || get(v, "process.euid") == get(v, "process.uid") {
        copy(&mut p, v, "process.user", "user.name");
    }
    if let Some(gid) = get(v, "process.egid").or_else(|| get(v, "process.gid")) {
        set(&mut p, "group.uid", gid.to_string());
    }
    if get(v, "parent").is_some() || get(v, "process.ppid").is_some() {
        let mut pp = Map::new();
        copy(&mut pp, v, "process.ppid", "pid");
        copy(&mut pp, v, "parent.pid", "pid");
        copy(&mut pp, v, "parent.comm", "name");
        copy(&mut pp, v, "parent.entity_id", "uid");
        if let Some(exe) = get_str(v, "parent.exe") {
            set(&mut pp, "file.path", exe);
            set(&mut pp, "file.name", base_dir(exe).0);
            set(&mut pp, "file.type_id", 1);
        }
        if let Some(args) = get(v, "parent.args") {
            set(&mut pp, "cmd_line", command_line(args));
        }
        p.insert("parent_process".into(), Value::Object(pp));
    }
    Some(Value::Object(p))
}

fn endpoint(v: &Value, src: &str) -> Option<Value> {
    let e = get(v, src)?;
    let mut m = Map::new();
    copy(&mut m, e, "ip", "ip");
    copy(&mut m, e, "port", "port");
    (!m.is_empty()).then_some(Value::Object(m))
}

fn file_obj(path: &str, action: &str) -> Value {
    let mut f = Map::new();
    set(&mut f, "path", path);
    let (name, dir) = base_dir(path);
    set(&mut f, "name", name.unwrap_or(path));
    set(&mut f, "parent_folder", dir);
    let (id, ty) = match action {
        "mkdir" | "rmdir" => (2, "Folder"),
        "symlink" => (7, "Symbolic Link"),
        _ => (1, "Regular File"),
    };
    set(&mut f, "type_id", id);
    set(&mut f, "type", ty);
    Value::Object(f)
}

/// OCSF `fingerprint` list of one SHA-256 (algorithm_id 3).
fn sha256_fingerprint(h: &str) -> Value {
    json!([{ "algorithm_id": 3, "algorithm": "SHA-256", "value": h }])
}

fn ptrace_peek(v: &Value) -> bool {
    get_str(v, "ptrace.request").is_some_and(|r| r.contains("PEEK") || r.contains("_GET"))
}

/// A signal whose default action ends the receiver.
fn ends_process(v: &Value) -> bool {
    matches!(
        get_str(v, "signal.name"),
        Some("SIGKILL" | "SIGTERM" | "SIGINT" | "SIGQUIT" | "SIGHUP" | "SIGABRT")
    )
}

/// The process a security event acts on (`ptrace.target`, `signal.target`, `target`).
fn target_obj(v: &Value) -> Option<Value> {
    let t = ["ptrace.target", "signal.target", "target"]
        .into_iter()
        .find_map(|p| get(v, p))?;
    let mut p = Map::new();
    copy(&mut p, t, "pid", "pid");
    copy(&mut p, t, "tid", "tid");
    copy(&mut p, t, "comm", "name");
    copy(&mut p, t, "entity_id", "uid");
    if let Some(exe) = get_str(t, "exe") {
        exe_file(&mut p, exe);
    }
    Some(Value::Object(p))
}

/// `driver` of Kernel Extension Activity: the module file, or the BPF program by name.
fn driver_obj(v: &Value) -> Value {
    let mut f = Map::new();
    if let Some(path) = get_str(v, "module.path") {
        set(&mut f, "path", path);
        let (name, dir) = base_dir(path);
        set(&mut f, "name", name.unwrap_or(path));
        set(&mut f, "parent_folder", dir);
        set(&mut f, "type_id", 1);
        set(&mut f, "type", "Regular File");
    } else {
        let name = get_str(v, "module.name")
            .or_else(|| get_str(v, "bpf.prog_name").filter(|n| !n.is_empty()))
            .unwrap_or("unknown");
        set(&mut f, "name", name);
        set(&mut f, "type_id", 0);
        set(&mut f, "type", "Unknown");
    }
    json!({ "file": Value::Object(f) })
}

/// OCSF `severity_id` and name for a Sigma level.
pub fn severity(level: &str) -> (u32, &'static str) {
    match level {
        "informational" => (1, "Informational"),
        "low" => (2, "Low"),
        "medium" => (3, "Medium"),
        "high" => (4, "High"),
        _ => (5, "Critical"),
    }
}

/// An alert as a Detection Finding (2004): the rule in `finding_info`, ATT&CK in
/// `finding_info.attacks`, and the matched event, mapped as its own kind, in `evidences`.
fn detection_finding(v: &Value) -> Value {
    let mut matched = v.clone();
    if let Some(o) = matched.as_object_mut() {
        o.remove("alert");
        let k = get_str(v, "alert.matched.kind").unwrap_or("probe.unknown");
        o.insert("kind".into(), Value::from(k));
    }
    let inner = from_native(&matched);
    let mut out = Map::new();
    for k in [
        "time",
        "time_dt",
        "metadata",
        "device",
        "container",
        "actor",
    ] {
        copy(&mut out, &inner, k, k);
    }
    set(&mut out, "class_uid", 2004);
    set(&mut out, "class_name", "Detection Finding");
    set(&mut out, "category_uid", 2);
    set(&mut out, "category_name", "Findings");
    set(&mut out, "activity_id", 1);
    set(&mut out, "activity_name", "Create");
    set(&mut out, "type_uid", 200401);
    set(&mut out, "type_name", "Detection Finding: Create");
    set(&mut out, "metadata.event_code", "alert");
    set(&mut out, "is_alert", true);
    let (sev_id, sev) = severity(get_str(v, "alert.rule.level").unwrap_or("medium"));
    set(&mut out, "severity_id", sev_id);
    set(&mut out, "severity", sev);
    let rule_id = get_str(v, "alert.rule.id").unwrap_or("");
    let seq = get(v, "seq").and_then(Value::as_u64).unwrap_or(0);
    set(&mut out, "finding_info.uid", format!("{rule_id}:{seq}"));
    copy(&mut out, v, "alert.rule.title", "finding_info.title");
    copy(&mut out, v, "alert.rule.description", "finding_info.desc");
    set(
        &mut out,
        "finding_info.types",
        json!([get_str(v, "alert.source").unwrap_or("sigma")]),
    );
    set(&mut out, "finding_info.analytic.uid", rule_id);
    copy(
        &mut out,
        v,
        "alert.rule.title",
        "finding_info.analytic.name",
    );
    set(&mut out, "finding_info.analytic.type_id", 1);
    set(&mut out, "finding_info.analytic.type", "Rule");
    let tactics: Vec<&str> = get(v, "alert.attack.tactics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let attacks: Vec<Value> = get(v, "alert.attack.techniques")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| {
            let mut a = json!({ "technique": { "uid": t }, "version": "14" });
            if let Some(name) = tactics.first() {
                a["tactic"] = json!({
                    "name": name,
                    "uid": crate::analyze::attack::tactic_id(name),
                });
            }
            a
        })
        .collect();
    if !attacks.is_empty() {
        set(&mut out, "finding_info.attacks", attacks);
    }
    let mut evidence = Map::new();
    for k in [
        "actor",
        "process",
        "file",
        "src_endpoint",
        "dst_endpoint",
        "connection_info",
        "container",
    ] {
        copy(&mut evidence, &inner, k, k);
    }
    if let Some(q) = get_str(v, "dns.query") {
        set(&mut evidence, "query.hostname", q);
    }
    set(&mut out, "evidences", json!([Value::Object(evidence)]));
    let mut unmapped = Map::new();
    for k in ["alert", "schema"] {
        copy(&mut unmapped, v, k, k);
    }
    set(&mut out, "unmapped", Value::Object(unmapped));
    Value::Object(out)
}

/// `response.*`. OCSF 1.3's Remediation classes are not in the class table this encoder is
/// checked against (schemas/ocsf-classes.json), so a response maps to the closest class it
/// has: Process Activity (Terminate for a kill, Other for freeze and release) when the target
/// is a process, else the Base Event; the `response` object goes to `unmapped`
/// (docs/response.md, "OCSF").
fn remediation(v: &Value) -> Value {
    let action = get_str(v, "response.action").unwrap_or("");
    let on_process = get(v, "process").is_some() && get(v, "response.target.pid").is_some();
    let mut base = v.clone();
    if let Some(o) = base.as_object_mut() {
        o.remove("response");
        let k = if on_process {
            "process.exit"
        } else {
            "probe.response"
        };
        o.insert("kind".into(), Value::from(k));
    }
    let mut out = from_native(&base);
    let Some(o) = out.as_object_mut() else {
        return out;
    };
    let (class_uid, class_name) = if on_process {
        (1007u64, "Process Activity")
    } else {
        (0, "Base Event")
    };
    let (activity_id, activity_name) = match action {
        "kill" | "kill-tree" if on_process => (2u64, "Terminate"),
        _ => (99, "Other"),
    };
    let ok = get(v, "response.ok").and_then(Value::as_bool) == Some(true);
    set(o, "activity_id", activity_id);
    set(o, "activity_name", activity_name);
    set(o, "type_uid", class_uid * 100 + activity_id);
    set(o, "type_name", format!("{class_name}: {activity_name}"));
    set(
        o,
        "metadata.event_code",
        get_str(v, "kind").unwrap_or("response"),
    );
    set(o, "status_id", if ok { 1 } else { 2 });
    set(o, "status", if ok { "Success" } else { "Failure" });
    o.remove("status_code");
    o.remove("status_detail");
    if let Some(e) = get_str(v, "response.error") {
        set(o, "status_code", e);
    }
    if let Some(r) = get_str(v, "response.reason") {
        set(o, "status_detail", r);
    }
    set(o, "severity_id", 3);
    set(o, "severity", "Medium");
    copy(o, v, "response", "unmapped.response");
    out
}

/// Maps one native record to OCSF.
pub fn from_native(v: &Value) -> Value {
    if get_str(v, "kind") == Some("alert") {
        return detection_finding(v);
    }
    if get_str(v, "kind").is_some_and(|k| k.starts_with("response.")) {
        return remediation(v);
    }
    let mut out = Map::new();
    let (category, action) = split_kind(v);
    let kind = get_str(v, "kind").unwrap_or("");
    let failed = (get(v, "result.ok").and_then(Value::as_bool) == Some(false))
        .then(|| get_str(v, "result.error").unwrap_or(""));
    let (class_uid, class_name, category_uid, category_name) = class_of(category);
    let (activity_id, activity_name) = match kind {
        // A ptrace peek only reads the tracee: it opens the process rather than injects.
        "process.ptrace" if ptrace_peek(v) => (3, "Open"),
        "process.signal" if ends_process(v) => (2, "Terminate"),
        _ => activity_of(category, action, failed),
    };
    set(&mut out, "class_uid", class_uid);
    set(&mut out, "class_name", class_name);
    set(&mut out, "category_uid", category_uid);
    set(&mut out, "category_name", category_name);
    set(&mut out, "activity_id", activity_id);
    set(&mut out, "activity_name", activity_name);
    set(
        &mut out,
        "type_uid",
        class_uid as u64 * 100 + activity_id as u64,
    );
    set(
        &mut out,
        "type_name",
        format!("{class_name}: {activity_name}"),
    );
    let loss = kind == "probe.loss";
    set(&mut out, "severity_id", if loss { 3 } else { 1 });
    set(
        &mut out,
        "severity",
        if loss { "Medium" } else { "Informational" },
    );
    if let Some(t) = get(v, "ts").and_then(epoch_ms) {
        set(&mut out, "time", t);
    }
    copy(&mut out, v, "ts", "time_dt");
    set(&mut out, "metadata.version", OCSF_VERSION);
    set(&mut out, "metadata.product.name", "tprobe");
    set(&mut out, "metadata.product.vendor_name", "tprobe");
    set(
        &mut out,
        "metadata.product.version",
        env!("CARGO_PKG_VERSION"),
    );
    set(&mut out, "metadata.event_code", kind);
    copy(&mut out, v, "seq", "metadata.sequence");
    copy(&mut out, v, "host.name", "device.hostname");
    set(&mut out, "device.type_id", 0);
    set(&mut out, "device.os.type_id", 200);
    set(&mut out, "device.os.name", "Linux");
    match failed {
        Some(err) => {
            set(&mut out, "status_id", 2);
            set(&mut out, "status", "Failure");
            set(&mut out, "status_code", err);
            copy(&mut out, v, "result.errno", "status_detail");
            if let Some(x) = out.get_mut("status_detail") {
                *x = Value::String(x.to_string());
            }
        }
        None if get(v, "result").is_some() => {
            set(&mut out, "status_id", 1);
            set(&mut out, "status", "Success");
        }
        None => {}
    }
    if get(v, "container").is_some() {
        copy(&mut out, v, "container.id", "container.uid");
        copy(&mut out, v, "container.name", "container.name");
        // OCSF's image object needs an image uid, which runtimes do not always give.
        copy(&mut out, v, "container.image", "unmapped.container.image");
        copy(&mut out, v, "container.runtime", "container.runtime");
        copy(&mut out, v, "container.labels", "unmapped.container.labels");
        copy(&mut out, v, "container.pod", "unmapped.container.pod");
        copy(&mut out, v, "container.source", "unmapped.container.source");
    }
    let proc = process_obj(v);
    let mut unmapped = Map::new();
    for k in [
        "process.args",
        "process.args_truncated",
        "process.cgroup_id",
        "process.comm_b64",
        "process.exe_b64",
        "process.args_b64",
        "process.cwd_b64",
        "parent.exe_b64",
        "parent.args",
        "process.uid",
        "process.gid",
        "process.euid",
        "process.egid",
        "process.auid",
        "process.caps",
        "process.tty",
        "process.ns",
        "process.ancestors",
        "process.source",
        "process.hash_skipped",
        "process.hash_error",
        "process.exe_truncated",
        "process.cwd_truncated",
        "process.cwd_deleted",
    ] {
        copy(&mut unmapped, v, k, k);
    }
    match category {
        "process" => {
            let actor = get(v, "parent").map(|_| {
                let mut a = Map::new();
                if let Some(Value::Object(p)) = &proc {
                    if let Some(pp) = p.get("parent_process") {
                        a.insert("process".into(), pp.clone());
                    }
                }
                Value::Object(a)
            });
            match action {
                "fork" => {
                    // The new process is the child; the forking one is the actor.
                    let mut child = Map::new();
                    copy(&mut child, v, "child.pid", "pid");
                    copy(&mut child, v, "child.tid", "tid");
                    copy(&mut child, v, "child.entity_id", "uid");
                    if let Some(p) = &proc {
                        child.insert("parent_process".into(), p.clone());
                        set(&mut out, "actor.process", p.clone());
                    }
                    set(&mut out, "process", Value::Object(child));
                    copy(&mut unmapped, v, "child.thread", "child.thread");
                }
                "exec" | "exit" => {
                    set(&mut out, "process", proc.clone().unwrap_or(json!({})));
                    set(&mut out, "actor", actor.unwrap_or(json!({})));
                }
                _ => {
                    // Security events: the acting process is the actor; the process acted on
                    // (a tracee, a signal's receiver) is `process`, else the actor itself.
                    let p = proc.clone().unwrap_or(json!({}));
                    set(
                        &mut out,
                        "process",
                        target_obj(v).unwrap_or_else(|| p.clone()),
                    );
                    set(&mut out, "actor.process", p);
                    copy(&mut unmapped, v, "net", "net");
                }
            }
            copy(&mut out, v, "exit.code", "exit_code");
            copy(&mut unmapped, v, "exit", "exit");
            copy(&mut unmapped, v, "exec", "exec");
        }
        "file" => {
            set(&mut out, "actor.process", proc.clone().unwrap_or(json!({})));
            let path = get_str(v, "file.path").unwrap_or("");
            set(&mut out, "file", file_obj(path, action));
            if let Some(t) = get_str(v, "file.target_path") {
                // rename: the new name; link/symlink: what the link points to
                set(&mut out, "file_result", file_obj(t, action));
            }
            for k in ["flags", "mode", "uid", "gid", "path_truncated", "path_b64"] {
                copy(&mut unmapped, v, &format!("file.{k}"), &format!("file.{k}"));
            }
            for (src, dst) in [
                ("times.mtime", "file.modified_time"),
                ("times.atime", "file.accessed_time"),
            ] {
                if let Some(t) = get(v, src).and_then(epoch_ms) {
                    set(&mut out, dst, t);
                }
            }
        }
        "net" | "flow" => {
            let obj = if category == "net" { "net" } else { "flow" };
            if let Some(p) = &proc {
                set(&mut out, "actor.process", p.clone());
            }
            if let Some(e) = endpoint(v, &format!("{obj}.src")) {
                set(&mut out, "src_endpoint", e);
            }
            if let Some(e) = endpoint(v, &format!("{obj}.dst")) {
                set(&mut out, "dst_endpoint", e);
            }
            if !out.contains_key("dst_endpoint") {
                // The class requires dst_endpoint. A bound or listening socket's own address is
                // the endpoint others connect to; a unix socket has only a path (in unmapped).
                let own = match action {
                    "bind" | "listen" => out.remove("src_endpoint"),
                    _ => None,
                };
                set(&mut out, "dst_endpoint", own.unwrap_or(json!({})));
            }
            if let Some(t) = get_str(v, &format!("{obj}.transport")) {
                set(&mut out, "connection_info.protocol_name", t);
                let num = match t {
                    "tcp" => Some(6),
                    "udp" => Some(17),
                    "icmp" => Some(1),
                    _ => None,
                };
                set(&mut out, "connection_info.protocol_num", num);
            }
            let fam = get_str(v, "net.family").map(str::to_owned).or_else(|| {
                get_str(v, &format!("{obj}.src.ip"))
                    .map(|ip| if ip.contains(':') { "ipv6" } else { "ipv4" }.to_owned())
            });
            match fam.as_deref() {
                Some("ipv4") => set(&mut out, "connection_info.protocol_ver_id", 4),
                Some("ipv6") => set(&mut out, "connection_info.protocol_ver_id", 6),
                _ => {}
            }
            match get_str(v, "net.direction") {
                Some("inbound") => {
                    set(&mut out, "connection_info.direction_id", 1);
                    set(&mut out, "connection_info.direction", "Inbound");
                }
                Some("outbound") => {
                    set(&mut out, "connection_info.direction_id", 2);
                    set(&mut out, "connection_info.direction", "Outbound");
                }
                _ => {
                    set(&mut out, "connection_info.direction_id", 0);
                    set(&mut out, "connection_info.direction", "Unknown");
                }
            }
            copy(&mut out, v, "flow.packets", "traffic.packets");
            copy(&mut out, v, "flow.bytes", "traffic.bytes");
            if let Some(t) = get(v, "flow.first_seen").and_then(epoch_ms) {
                set(&mut out, "start_time", t);
            }
            if let Some(t) = get(v, "flow.last_seen").and_then(epoch_ms) {
                set(&mut out, "end_time", t);
            }
            for k in ["net.path", "flow.iface", "flow.tcp_flags", "dns"] {
                copy(&mut unmapped, v, k, k);
            }
            if let Some(q) = get_str(v, "dns.query") {
                set(&mut out, "message", format!("DNS query {q}"));
            }
        }
        "kernel" | "bpf" => {
            set(&mut out, "actor.process", proc.clone().unwrap_or(json!({})));
            set(&mut out, "driver", driver_obj(v));
        }
        _ => {
            copy(&mut unmapped, v, "probe", "probe");
            copy(&mut unmapped, v, "loss", "loss");
            if let Some(msg) = loss_message(v) {
                set(&mut out, "message", msg);
            } else {
                set(&mut out, "message", kind);
            }
        }
    }
    if let Some(o) = v.as_object() {
        let known = super::NATIVE_KEYS;
        for (k, x) in o {
            if !known.contains(&k.as_str()) {
                unmapped.insert(k.clone(), x.clone());
            }
        }
    }
    copy(&mut unmapped, v, "schema", "schema");
    // Merged with what the container mapping already put there.
    for (k, x) in unmapped {
        set(&mut out, &format!("unmapped.{k}"), x);
    }
    Value::Object(out)
}
