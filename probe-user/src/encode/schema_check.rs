//! Checks ECS and OCSF records against the field definitions vendored in `schemas/` (small
//! subsets derived from the official schemas). Used by unit and integration tests.
use serde_json::Value;

pub const ECS_FIELDS: &str = include_str!("../../schemas/ecs-fields.json");
pub const OCSF_CLASSES: &str = include_str!("../../schemas/ocsf-classes.json");

fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>, stop_at: &[&str]) {
    match v {
        Value::Object(o) if !stop_at.contains(&prefix) => {
            for (k, x) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(x, &p, out, stop_at);
            }
        }
        _ => out.push((prefix.to_owned(), v.clone())),
    }
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "keyword" | "wildcard" | "match_only_text" | "text" => v.is_string(),
        "long" => v.is_i64() || v.is_u64(),
        "date" => v
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "ip" => v
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "object" => v.is_object(),
        "boolean" => v.is_boolean(),
        _ => false,
    }
}

static ECS: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
static OCSF: std::sync::OnceLock<Value> = std::sync::OnceLock::new();

/// A vendored schema, parsed once however many records are checked.
fn vendored(cell: &'static std::sync::OnceLock<Value>, text: &str) -> &'static Value {
    cell.get_or_init(|| serde_json::from_str(text).expect("vendored schema is JSON"))
}

/// The strings of the array `schema[key]`.
fn strs<'a>(schema: &'a Value, key: &str) -> Vec<&'a str> {
    schema[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Every problem found in an ECS record (empty when it conforms).
pub fn check_ecs(rec: &Value) -> Vec<String> {
    let schema = vendored(&ECS, ECS_FIELDS);
    let fields = &schema["fields"];
    let custom = strs(schema, "custom_namespaces");
    let arrays = strs(schema, "array");
    let objects = strs(schema, "object_fields");
    let mut errs = Vec::new();
    let mut all = Vec::new();
    leaves(rec, "", &mut all, &objects);
    for (path, v) in &all {
        if custom
            .iter()
            .any(|c| path == c || path.starts_with(&format!("{c}.")))
        {
            continue;
        }
        let Some(ty) = fields.get(path.as_str()).and_then(Value::as_str) else {
            errs.push(format!("{path}: not an ECS field"));
            continue;
        };
        let items: Vec<&Value> = match v {
            Value::Array(a) if arrays.contains(&path.as_str()) => a.iter().collect(),
            Value::Array(_) => {
                errs.push(format!("{path}: array where ECS expects one value"));
                continue;
            }
            one => vec![one],
        };
        for x in items {
            if !type_ok(ty, x) {
                errs.push(format!("{path}: {x} is not of ECS type {ty}"));
            }
            if let Some(allowed) = schema["allowed_values"].get(path.as_str()) {
                if !allowed.as_array().is_some_and(|a| a.contains(x)) {
                    errs.push(format!("{path}: {x} is not an allowed value"));
                }
            }
        }
    }
    for req in [
        "@timestamp",
        "ecs.version",
        "event.kind",
        "event.category",
        "event.type",
    ] {
        if !all.iter().any(|(p, _)| p == req) {
            errs.push(format!("{req}: missing"));
        }
    }
    // event.type values must be allowed for each event.category.
    if let (Some(cats), Some(types)) = (
        rec["event"]["category"].as_array(),
        rec["event"]["type"].as_array(),
    ) {
        for c in cats.iter().filter_map(Value::as_str) {
            let ok = &schema["category_types"][c];
            for t in types {
                if !ok.as_array().is_some_and(|a| a.contains(t)) {
                    errs.push(format!("event.type {t} not expected with category {c}"));
                }
            }
        }
    }
    errs
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn check_object(schema: &Value, path: &str, v: &Value, errs: &mut Vec<String>) {
    let Some(ty) = schema["object_of"][path].as_str() else {
        errs.push(format!("{path}: no object type known"));
        return;
    };
    let obj = &schema["objects"][ty];
    let Some(o) = v.as_object() else {
        errs.push(format!("{path}: not an object ({ty})"));
        return;
    };
    let allowed = names(&obj["attributes"]);
    for (k, x) in o {
        if !allowed.contains(&k.as_str()) {
            errs.push(format!("{path}.{k}: not an attribute of {ty}"));
        } else if x.is_object() {
            check_object(schema, &format!("{path}.{k}"), x, errs);
        }
    }
    for r in names(&obj["required"]) {
        if !o.contains_key(r) {
            errs.push(format!("{path}.{r}: required by {ty}"));
        }
    }
}

/// Every problem found in an OCSF record (empty when it conforms).
pub fn check_ocsf(rec: &Value) -> Vec<String> {
    let schema = vendored(&OCSF, OCSF_CLASSES);
    let mut errs = Vec::new();
    let Some(o) = rec.as_object() else {
        return vec!["not an object".into()];
    };
    let class_uid = rec["class_uid"].as_u64().unwrap_or(u64::MAX);
    let Some(class) = schema["classes"].get(class_uid.to_string()) else {
        return vec![format!("class_uid {class_uid} not vendored")];
    };
    let activity = rec["activity_id"].as_u64().unwrap_or(u64::MAX);
    match class["activities"].get(activity.to_string()) {
        Some(name) if rec["activity_name"] == *name => {}
        _ => errs.push(format!(
            "activity {activity} / {} not in class {class_uid}",
            rec["activity_name"]
        )),
    }
    if rec["type_uid"].as_u64() != Some(class_uid * 100 + activity) {
        errs.push(format!(
            "type_uid {} != class_uid*100+activity_id",
            rec["type_uid"]
        ));
    }
    if rec["category_uid"] != class["category_uid"] {
        errs.push("category_uid does not match the class".into());
    }
    if rec["class_name"] != class["name"] {
        errs.push("class_name does not match the class".into());
    }
    if !(1..=6).contains(&rec["severity_id"].as_u64().unwrap_or(0)) {
        errs.push("severity_id out of range".into());
    }
    let mut allowed = names(&schema["base_attributes"]);
    allowed.extend(names(&class["attributes"]));
    for (k, x) in o {
        if !allowed.contains(&k.as_str()) {
            errs.push(format!("{k}: not an attribute of {}", class["name"]));
        } else if x.is_object() && k != "unmapped" {
            check_object(schema, k, x, &mut errs);
        }
    }
    for r in names(&schema["base_required"])
        .into_iter()
        .chain(names(&class["required"]))
    {
        if !o.contains_key(r) {
            errs.push(format!("{r}: required"));
        }
    }
    let one_of = names(&class["at_least_one"]);
    if !one_of.is_empty() && !one_of.iter().any(|k| o.contains_key(*k)) {
        errs.push(format!("one of {one_of:?} required"));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::encode::{ecs, ocsf};

    /// One native record per kind of `shared/schema.md`, with the fields it lists.
    pub fn samples() -> Vec<Value> {
        let env = |kind: &str| {
            json!({"ts": "2024-05-06T07:08:09.123456789Z", "kind": kind, "seq": 42,
                   "host": {"name": "node-1"}, "schema": "tprobe/1"})
        };
        let proc_ = json!({"pid": 100, "tid": 101, "ppid": 1, "uid": 1000, "gid": 1000,
            "user": "alice", "comm": "curl", "exe": "/usr/bin/curl", "args": ["curl", "-s", "a b"],
            "args_truncated": false, "cwd": "/home/alice", "start_time": "2024-05-06T07:08:00Z",
            "entity_id": "e-100", "cgroup_id": 1234, "euid": 0, "egid": 1000, "auid": 1000,
            "caps": {"effective": ["CAP_SYS_ADMIN"], "permitted": ["CAP_SYS_ADMIN", "CAP_NET_RAW"]},
            "tty": "pts/3", "ns": {"pid": 1, "mnt": 2, "net": 3, "user": 4, "uts": 5, "ipc": 6, "cgroup": 7},
            "hash": {"sha256": "ab".repeat(32)},
            "ancestors": [{"pid": 1, "exe": "/bin/bash", "args": ["bash"], "entity_id": "e-1",
                "start_time": "2024-05-06T07:00:00Z"}]});
        let parent = json!({"pid": 1, "comm": "bash", "exe": "/bin/bash", "args": ["bash", "-l"],
            "entity_id": "e-1"});
        let container = json!({"id": "abc", "runtime": "containerd", "name": "web",
            "image": "busybox:latest", "labels": {"app": "demo"}, "source": "cri",
            "pod": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"k": "v"}}});
        let with = |kind: &str, extra: Value| {
            let mut v = env(kind);
            v["process"] = proc_.clone();
            v["parent"] = parent.clone();
            v["container"] = container.clone();
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        let ok = json!({"ok": true, "errno": 0, "error": null});
        let mut out = vec![
            with(
                "process.exec",
                json!({"exec": {"interpreter": "/bin/sh", "filename": "/x.sh"}}),
            ),
            with(
                "process.fork",
                json!({"child": {"pid": 102, "tid": 102, "entity_id": "e-102", "thread": false}}),
            ),
            with(
                "process.exit",
                json!({"exit": {"code": 3, "signal": null, "core_dumped": false,
                    "cpu": {"user_ms": 5, "system_ms": 1}}}),
            ),
            with(
                "process.exec_failed",
                json!({"exec": {"filename": "/tmp/x", "args": ["/tmp/x"], "args_truncated": false},
                    "result": {"ok": false, "errno": 8, "error": "ENOEXEC"}}),
            ),
        ];
        for a in [
            "open", "create", "unlink", "rename", "mkdir", "rmdir", "chmod", "chown", "link",
            "symlink", "truncate",
        ] {
            let mut f = json!({"path": "/etc/app/conf.yaml", "path_truncated": false, "mode": "0644", "uid": 0, "gid": 0});
            if a == "open" {
                f["flags"] = json!(["O_RDONLY", "O_CLOEXEC"]);
            }
            if matches!(a, "rename" | "link" | "symlink") {
                f["target_path"] = json!("/etc/app/conf.yaml.new");
            }
            let res = if a == "unlink" {
                json!({"ok": false, "errno": 2, "error": "ENOENT"})
            } else {
                ok.clone()
            };
            out.push(with(
                &format!("file.{a}"),
                json!({"file": f, "result": res}),
            ));
        }
        for a in ["connect", "accept", "bind", "listen", "close", "dns"] {
            let mut n = json!({"transport": "tcp", "family": "ipv4", "src": {"ip": "10.0.0.1", "port": 40000},
                "dst": {"ip": "10.0.0.2", "port": 443}, "direction": "outbound"});
            let mut extra = json!({"result": ok.clone()});
            if a == "dns" {
                n["transport"] = json!("udp");
                n["dst"]["port"] = json!(53);
                extra["dns"] = json!({"query": "example.com", "qtype": "A", "server": "10.0.0.53"});
            }
            if a == "accept" {
                n["direction"] = json!("inbound");
            }
            if a == "connect" {
                extra["result"] = json!({"ok": false, "errno": 111, "error": "ECONNREFUSED"});
            }
            extra["net"] = n;
            out.push(with(&format!("net.{a}"), extra));
        }
        // The security kinds, with the objects `encode/security.rs` writes.
        let target =
            json!({"pid": 200, "exe": "/usr/sbin/sshd", "comm": "sshd", "entity_id": "e-200"});
        let bad = json!({"ok": false, "errno": 1, "error": "EPERM"});
        for (kind, extra) in [
            (
                "process.setuid",
                json!({"cred": {"syscall": "setresuid", "ruid": 0, "euid": 0}, "result": ok}),
            ),
            (
                "process.setgid",
                json!({"cred": {"syscall": "setgid", "gid": 0}, "result": bad}),
            ),
            (
                "process.capset",
                json!({"caps": {"effective": ["CAP_SYS_ADMIN"], "permitted": [], "inheritable": [], "pid": 0, "version": "0x20080522"}, "result": ok}),
            ),
            (
                "process.ptrace",
                json!({"ptrace": {"request": "PTRACE_ATTACH", "target": target}, "result": ok}),
            ),
            (
                "process.vm_write",
                json!({"target": target, "bytes": 8, "result": ok}),
            ),
            (
                "process.signal",
                json!({"signal": {"number": 9, "name": "SIGKILL", "syscall": "kill", "target": target}, "result": ok}),
            ),
            (
                "process.rename",
                json!({"rename": {"old_comm": "curl", "new_comm": "[kworker/0:1]"}, "result": ok}),
            ),
            (
                "process.memfd",
                json!({"memfd": {"name": "x", "flags": ["MFD_CLOEXEC"]}, "result": ok}),
            ),
            (
                "process.unshare",
                json!({"ns": {"flags": ["CLONE_NEWNS", "CLONE_NEWUSER"]}, "result": ok}),
            ),
            (
                "process.setns",
                json!({"ns": {"flags": ["CLONE_NEWNET"], "fd": 3}, "result": ok}),
            ),
            (
                "process.dup",
                json!({"dup": {"oldfd": 3, "newfd": 0}, "net": {"transport": "tcp", "family": "ipv4",
                "src": {"ip": "10.0.0.1", "port": 40000}, "dst": {"ip": "10.0.0.2", "port": 4444}}, "result": ok}),
            ),
            (
                "file.mount",
                json!({"mount": {"syscall": "mount", "source": "none", "target": "/mnt", "fstype": "tmpfs", "flags": ["MS_NOSUID"]},
                "file": {"path": "/mnt", "path_truncated": false}, "result": ok}),
            ),
            (
                "file.umount",
                json!({"mount": {"syscall": "umount2", "target": "/mnt", "flags": []},
                "file": {"path": "/mnt", "path_truncated": false}, "result": ok}),
            ),
            (
                "file.utime",
                json!({"file": {"path": "/etc/passwd", "path_truncated": false, "syscall": "utimensat"},
                "times": {"atime": "2001-01-01T00:00:00.000000000Z", "mtime": "omit"}, "result": ok}),
            ),
            (
                "net.socket",
                json!({"net": {"transport": "packet", "family": "packet", "socket_type": "raw", "protocol": "ETH_P_ALL", "fd": 3}, "result": ok}),
            ),
            (
                "kernel.module_load",
                json!({"module": {"syscall": "finit_module", "name": "evil", "path": "/tmp/evil.ko"},
                "result": {"ok": false, "errno": 8, "error": "ENOEXEC"}}),
            ),
            (
                "kernel.module_unload",
                json!({"module": {"syscall": "delete_module", "name": "evil", "flags": []}, "result": ok}),
            ),
            (
                "bpf.load",
                json!({"bpf": {"command": "BPF_PROG_LOAD", "prog_type": "BPF_PROG_TYPE_XDP", "prog_name": "x", "insn_count": 2}, "result": ok}),
            ),
        ] {
            out.push(with(kind, extra));
        }
        let mut resp = with(
            "net.dns",
            json!({"net": {"transport": "udp", "family": "ipv4", "src": {"ip": "10.0.0.1", "port": 5353},
                "dst": {"ip": "10.0.0.53", "port": 53}, "direction": "outbound"},
                "dns": {"query": "evil.test", "qtype": "A", "server": "10.0.0.53", "id": 7, "rcode": "NOERROR",
                "answers": [{"name": "evil.test", "type": "A", "data": "10.9.9.9", "ttl": 60}]}}),
        );
        resp["seq"] = json!(44);
        out.push(resp);
        let mut named = with(
            "net.connect",
            json!({"net": {"transport": "tcp", "family": "ipv4", "src": {"ip": "10.0.0.1", "port": 40000},
                "dst": {"ip": "10.9.9.9", "port": 443, "domain": "evil.test"}, "direction": "outbound"}, "result": ok}),
        );
        named["seq"] = json!(45);
        out.push(named);
        let mut unix = with(
            "net.connect",
            json!({"net": {"transport": "unix", "family": "unix", "path": "/run/x.sock", "direction": "outbound"}, "result": ok}),
        );
        unix["seq"] = json!(43);
        out.push(unix);
        for a in ["update", "end"] {
            let mut v = env(&format!("flow.{a}"));
            v["flow"] = json!({"iface": "eth0", "transport": "tcp", "src": {"ip": "fd00::1", "port": 1234},
                "dst": {"ip": "fd00::2", "port": 80}, "packets": 10, "bytes": 1500,
                "tcp_flags": ["SYN", "ACK"], "first_seen": "2024-05-06T07:08:00Z", "last_seen": "2024-05-06T07:08:09Z"});
            out.push(v);
        }
        let mut s = env("probe.start");
        s["probe"] = json!({"version": "0.1.0", "hooks": []});
        out.push(s);
        let mut s = env("probe.stop");
        s["probe"] = json!({"reason": "signal", "losses": {"ringbuf": 0}});
        out.push(s);
        let mut l = env("probe.loss");
        l["loss"] = json!({"source": "queue", "kind": "otlp:http://x", "count": 3, "since": "2024-05-06T07:08:00Z"});
        out.push(l);
        // An alert on a connection: the matched event's objects beside the alert.
        let mut a = with("alert", json!({}));
        a["container"] = container.clone();
        a["net"] = json!({"transport": "tcp", "family": "ipv4", "direction": "outbound",
            "src": {"ip": "10.0.0.2", "port": 40000}, "dst": {"ip": "10.0.0.1", "port": 443}});
        a["result"] = json!({"ok": true});
        a["alert"] = json!({"source": "sigma",
            "rule": {"id": "r-1", "title": "T", "level": "high", "tags": ["attack.t1059.004", "attack.execution"], "references": ["https://x"]},
            "attack": {"tactics": ["Execution"], "techniques": ["T1059.004"]},
            "matched": {"kind": "net.connect", "seq": 41}});
        out.push(a);
        out
    }

    #[test]
    fn every_kind_maps_to_conforming_ecs_and_ocsf() {
        for v in samples() {
            let e = ecs::from_native(&v);
            assert_eq!(
                check_ecs(&e),
                Vec::<String>::new(),
                "ECS for {}: {e:#}",
                v["kind"]
            );
            let o = ocsf::from_native(&v);
            assert_eq!(
                check_ocsf(&o),
                Vec::<String>::new(),
                "OCSF for {}: {o:#}",
                v["kind"]
            );
            assert_eq!(e["event"]["sequence"], v["seq"]);
            assert_eq!(o["metadata"]["sequence"], v["seq"]);
            assert_eq!(o["metadata"]["event_code"], v["kind"]);
            if v["kind"] == "alert" {
                assert_eq!(e["event"]["kind"], "alert");
                assert_eq!(e["threat"]["technique"]["id"][0], "T1059.004");
                assert_eq!(
                    e["destination"]["port"], 443,
                    "the matched connection maps too"
                );
                assert_eq!(o["class_uid"], 2004);
                assert_eq!(
                    o["finding_info"]["attacks"][0]["technique"]["uid"],
                    "T1059.004"
                );
                assert_eq!(o["evidences"][0]["dst_endpoint"]["port"], 443);
            }
        }
    }

    #[test]
    fn process_context_maps_to_ecs_and_ocsf_fields() {
        let exec = samples()
            .into_iter()
            .find(|v| v["kind"] == "process.exec")
            .unwrap();
        let e = ecs::from_native(&exec);
        assert_eq!(e["process"]["parent"]["command_line"], "bash -l");
        assert_eq!(e["process"]["parent"]["args_count"], 2);
        assert_eq!(e["process"]["hash"]["sha256"], "ab".repeat(32));
        // ECS: process.user is the effective user; user.* the real one.
        assert_eq!(e["process"]["user"]["id"], "0");
        assert_eq!(e["process"]["real_user"]["id"], "1000");
        assert_eq!(e["user"]["id"], "1000");
        assert_eq!(e["user"]["effective"]["id"], "0");
        assert_eq!(e["process"]["tty"]["char_device"]["major"], 136);
        assert_eq!(e["process"]["interactive"], true);
        assert_eq!(
            e["process"]["thread"]["capabilities"]["effective"],
            json!(["CAP_SYS_ADMIN"])
        );
        assert_eq!(e["tprobe"]["process"]["ns"]["net"], 3);
        let o = ocsf::from_native(&exec);
        assert_eq!(
            o["process"]["file"]["hashes"][0],
            json!({"algorithm_id": 3, "algorithm": "SHA-256", "value": "ab".repeat(32)})
        );
        assert_eq!(o["process"]["parent_process"]["cmd_line"], "bash -l");
        assert_eq!(o["process"]["lineage"], json!(["/bin/bash"]));
        assert_eq!(o["process"]["user"]["uid"], "0");
        assert_eq!(o["unmapped"]["process"]["auid"], 1000);
        let failed = samples()
            .into_iter()
            .find(|v| v["kind"] == "process.exec_failed")
            .unwrap();
        let o = ocsf::from_native(&failed);
        assert_eq!(
            (o["activity_id"].clone(), o["status_id"].clone()),
            (json!(1), json!(2))
        );
        assert_eq!(ecs::from_native(&failed)["event"]["outcome"], "failure");
    }

    #[test]
    fn chosen_classes_and_activities() {
        let by_kind = |k: &str| {
            samples()
                .into_iter()
                .find(|v| v["kind"] == k)
                .map(|v| ocsf::from_native(&v))
                .unwrap()
        };
        let o = by_kind("process.exec");
        assert_eq!(
            (o["class_uid"].as_u64(), o["type_uid"].as_u64()),
            (Some(1007), Some(100701))
        );
        assert_eq!(o["process"]["cmd_line"], r#"curl -s "a b""#);
        assert_eq!(o["actor"]["process"]["pid"], 1);
        let o = by_kind("process.fork");
        assert_eq!(o["process"]["pid"], 102);
        assert_eq!(o["actor"]["process"]["pid"], 100);
        assert_eq!(by_kind("process.exit")["exit_code"], 3);
        assert_eq!(by_kind("file.rename")["type_uid"], 100105);
        assert_eq!(
            by_kind("file.rename")["file_result"]["name"],
            "conf.yaml.new"
        );
        assert_eq!(by_kind("file.unlink")["status_code"], "ENOENT");
        assert_eq!(by_kind("net.connect")["activity_name"], "Refuse");
        assert_eq!(by_kind("flow.end")["traffic"]["bytes"], 1500);
        assert_eq!(by_kind("probe.loss")["severity_id"], 3);
        let o = by_kind("kernel.module_load");
        assert_eq!(
            (o["class_uid"].as_u64(), o["activity_name"].as_str()),
            (Some(1008), Some("Load"))
        );
        assert_eq!(o["driver"]["file"]["name"], "evil.ko");
        assert_eq!(by_kind("bpf.load")["class_uid"], 1008);
        let o = by_kind("process.ptrace");
        assert_eq!(
            (o["activity_name"].as_str(), o["process"]["pid"].as_u64()),
            (Some("Inject"), Some(200))
        );
        assert_eq!(o["actor"]["process"]["pid"], 100);
        assert_eq!(by_kind("process.signal")["activity_name"], "Terminate");
        assert_eq!(by_kind("process.setuid")["activity_name"], "Set User ID");
        assert_eq!(by_kind("file.mount")["activity_name"], "Mount");
        assert_eq!(
            by_kind("file.utime")["file"]["accessed_time"],
            978_307_200_000i64
        );
        let e =
            |k: &str| ecs::from_native(&samples().into_iter().find(|v| v["kind"] == k).unwrap());
        assert_eq!(
            e("kernel.module_load")["event"]["category"],
            json!(["driver"])
        );
        assert_eq!(
            e("file.utime")["file"]["accessed"],
            "2001-01-01T00:00:00.000000000Z"
        );
        assert_eq!(e("process.setuid")["user"]["changes"]["id"], "0");
        assert_eq!(e("process.dup")["destination"]["port"], 4444);
        let e = ecs::from_native(&samples()[0]);
        assert_eq!(e["process"]["args_count"], 3);
        assert_eq!(e["orchestrator"]["resource"]["label"], json!(["k=v"]));
        assert!(!check_ecs(&json!({"event": {"kind": "nope"}})).is_empty());
        assert!(!check_ocsf(&json!({"class_uid": 1007, "activity_id": 9})).is_empty());
    }
}
