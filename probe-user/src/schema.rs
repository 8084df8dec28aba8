//! Discoverability: the JSON Schema of the native format (`tprobe schema`) and the catalogue of
//! kinds with their fields and hooks (`tprobe events`), both following `shared/schema.md`.
use probe_common::EventKind;

use crate::{config::kinds::is_internal, families};

/// JSON Schema (draft 2020-12) of one native line. Objects allow more properties than they
/// list: fields are added freely, never renamed or retyped.
pub const JSON_SCHEMA: &str = include_str!("schema.json");

/// The fields a kind carries besides the envelope (`ts`, `kind`, `seq`, `host`, `schema`, and
/// `container` when the process runs in a container). By category, so kinds added later in a
/// known category are described too.
pub fn fields_of(kind: &str) -> &'static str {
    let (cat, action) = kind.split_once('.').unwrap_or((kind, ""));
    match (cat, action) {
        ("process", "exec") => {
            "process (after the exec: exe, args, cwd as the kernel read them, hash), parent (with args); exec {filename, interpreter, path, fileless, memfd_name, hash}"
        }
        ("process", "exec_failed") => {
            "process (the caller), parent; exec {filename, args, args_truncated}; result {ok, errno, error}"
        }
        ("process", "fork") => "process (the forking parent), parent; child {pid, tid, entity_id, thread}",
        ("process", "exit") => "process, parent; exit {code, signal, core_dumped, cpu {user_ms, system_ms}}",
        ("process", "setuid") => {
            "process, parent; cred {syscall, uid | ruid, euid, suid | fsuid} (asked for; -1 absent); result"
        }
        ("process", "setgid") => {
            "process, parent; cred {syscall, gid | rgid, egid, sgid | fsgid} (asked for; -1 absent); result"
        }
        ("process", "capset") => {
            "process, parent; caps {effective, permitted, inheritable (CAP_* names), pid, version} or caps_unreadable; result"
        }
        ("process", "ptrace") => {
            "process, parent; ptrace {request (PTRACE_*), target {pid, tid, exe, comm, entity_id, pid_ns}, addr}; result"
        }
        ("process", "vm_write") => {
            "process, parent; target {pid, exe, comm, entity_id, pid_ns}; bytes; result"
        }
        ("process", "signal") => {
            "process, parent; signal {number, name, syscall, target {pid, tid, exe, comm, entity_id}, group}; result"
        }
        ("process", "rename") => "process, parent; rename {old_comm, new_comm, tid}; result",
        ("process", "memfd") => {
            "process, parent; memfd {name, name_truncated, flags (MFD_*)}; result (fd)"
        }
        ("process", "unshare") => "process, parent; ns {flags (CLONE_*)}; result",
        ("process", "setns") => "process, parent; ns {flags (the namespace type, CLONE_NEW*), fd}; result",
        ("process", "dup") => {
            "process, parent; dup {oldfd, newfd (0-2)}; net {transport, family, src, dst} of the socket; result"
        }
        ("process", _) => "process, parent",
        ("file", "mount") => {
            "process, parent; mount {syscall, source, target, fstype, flags (MS_*)}; file {path}; result"
        }
        ("file", "umount") => {
            "process, parent; mount {syscall, target, flags (MNT_*)}; file {path}; result"
        }
        ("file", "utime") => {
            "process, parent; file {path, path_truncated, syscall, flags, fd}; times {atime, mtime} (RFC 3339, now or omit) or times_unreadable; result"
        }
        ("kernel", "module_load") => {
            "process, parent; module {syscall, name, path (finit_module: the file), args}; result"
        }
        ("kernel", "module_unload") => "process, parent; module {syscall, name, flags}; result",
        ("bpf", "load") => {
            "process, parent; bpf {command, prog_type, prog_name, insn_count, attach_type}; result (fd)"
        }
        ("net", "socket") => {
            "process, parent; net {transport, family (packet, ipv4, ipv6), socket_type, protocol, fd}; result"
        }
        ("file", _) => {
            "process, parent; file {path, path_truncated, flags, mode, uid, gid, target_path}; result {ok, errno, error}"
        }
        ("net", "dns") => {
            "process, parent; net {transport, family, src {ip, port}, dst {ip, port}, direction}; dns {query, qtype, server, id} and, for a response, {rcode, answers [{name, type, data, ttl}], answers_truncated}"
        }
        ("net", _) => {
            "process, parent; net {transport, family, src {ip, port}, dst {ip, port, domain}, path, direction}; result {ok, errno, error}"
        }
        ("flow", _) => {
            "flow {iface, transport, src {ip, port, domain}, dst {ip, port, domain}, packets, bytes, tcp_flags, first_seen, last_seen}; process and container when matched to a socket"
        }
        ("probe", "start") => "probe {version, kernel, pid, hooks, config}",
        ("probe", "stop") => {
            "probe {reason, duration_s, events (per kind), lines, losses, filtered, drained, process_table}"
        }
        ("probe", "reload") => "probe {config, warnings}: the config file was reloaded (SIGHUP)",
        ("probe", "loss") => "loss {source, kind, count, since}",
        ("response", _) => {
            "process, parent, container of the target; response {action, target {pid, exe, entity_id | container, iface}, trigger {rule_id, alert_seq}, dry_run, ok, error, reason, in_kernel, latency_us, pids}"
        }
        _ => "see shared/schema.md",
    }
}

/// Kinds made in userspace, with what makes them.
pub const PROBE_KINDS: &[(&str, &str)] = &[
    ("probe.start", "userspace, at start"),
    ("probe.stop", "userspace, at exit"),
    ("probe.reload", "userspace, on SIGHUP"),
    ("probe.loss", "userspace, within a second of a loss"),
    (
        "response.kill",
        "the respond stage (--respond, --deny-exec); a denied exec: the exec hook",
    ),
    (
        "response.freeze",
        "the respond stage (--respond RULE=freeze)",
    ),
    (
        "response.isolate",
        "the respond stage (--respond RULE=isolate)",
    ),
    (
        "response.release",
        "the respond stage (console, end of the run)",
    ),
];

/// `tprobe events`: one block per kind: name, hook(s), fields.
pub fn events_listing() -> String {
    let mut out = String::new();
    out.push_str(
        "Every event: ts, kind, seq, host {name}, schema; container {id, runtime, name, image, labels, pod} when in a container.\n\
         process: pid, tid, ppid, uid, gid, user, comm, exe, args, cwd, start_time, entity_id, cgroup_id, and as the kernel read them at the event\n\
         euid, egid, auid, caps {effective, permitted}, tty, ns {pid, mnt, net, user, uts, ipc, cgroup}; hash {sha256}; ancestors [{pid, exe, args, entity_id, start_time}];\n\
         source \"procfs\" when exe, args and cwd came from /proc. parent: pid, comm, exe, args, entity_id.\n\n",
    );
    for k in EventKind::ALL {
        // Internal record (first packet of a flow), never printed.
        if is_internal(*k) {
            continue;
        }
        let hooks: Vec<String> = families::hooks()
            .filter(|h| h.kinds.contains(k))
            .map(|h| h.attach.describe())
            .collect();
        out.push_str(&format!(
            "{:<16} {}\n    {}\n",
            k.name(),
            if families::flow::KINDS.contains(k) {
                "xdp/<--xdp-iface>".to_owned()
            } else if hooks.is_empty() {
                "(no hook)".to_owned()
            } else {
                hooks.join(", ")
            },
            fields_of(k.name())
        ));
    }
    for (name, from) in PROBE_KINDS {
        out.push_str(&format!("{name:<16} {from}\n    {}\n", fields_of(name)));
    }
    out.push_str(
        "\nCategories select every kind in them: --events process,file.open,net. `tprobe schema` prints the JSON Schema.\n",
    );
    out
}

/// The parsed schema, for field lookups.
static SCHEMA: std::sync::LazyLock<serde_json::Value> =
    std::sync::LazyLock::new(|| serde_json::from_str(JSON_SCHEMA).unwrap_or_default());

/// The top-level objects of a record (`process`, `file`, `bpf`, ...).
pub fn top_level_objects() -> &'static [String] {
    static KEYS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        SCHEMA["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    });
    &KEYS
}

/// Whether a dotted field (`process.exe`, `container.labels.app`, `net.dst.port`) is one the
/// schema describes: what a rule may name. Maps (labels) take any key. Answers are remembered:
/// the Sigma engine asks about the same few names for every event it evaluates.
pub fn has_field(path: &str) -> bool {
    use std::{collections::HashMap, sync::RwLock};
    // Bounded so that names from untrusted input (a rule being checked) cannot grow it forever.
    const MEMO_MAX: usize = 4096;
    static MEMO: std::sync::LazyLock<RwLock<HashMap<Box<str>, bool>>> =
        std::sync::LazyLock::new(Default::default);
    if let Some(&known) = MEMO.read().unwrap_or_else(|e| e.into_inner()).get(path) {
        return known;
    }
    let answer = walk_schema(path);
    let mut memo = MEMO.write().unwrap_or_else(|e| e.into_inner());
    if memo.len() < MEMO_MAX {
        memo.insert(path.into(), answer);
    }
    answer
}

fn walk_schema(path: &str) -> bool {
    let root = &*SCHEMA;
    // `$ref` chains are short; the bound keeps a bad schema from looping.
    let resolve = |mut n: &'static serde_json::Value| {
        for _ in 0..8 {
            match n
                .get("$ref")
                .and_then(|r| r.as_str())
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .and_then(|d| root["$defs"].get(d))
            {
                Some(t) => n = t,
                None => break,
            }
        }
        n
    };
    // A schema and the alternatives it allows (`anyOf` / `oneOf`, e.g. an object or null).
    let variants = |n: &'static serde_json::Value| -> Vec<&'static serde_json::Value> {
        let n = resolve(n);
        let mut v = vec![n];
        for k in ["anyOf", "oneOf"] {
            if let Some(a) = n.get(k).and_then(|a| a.as_array()) {
                v.extend(a.iter().map(resolve));
            }
        }
        v
    };
    let mut nodes = variants(root);
    for seg in path.split('.') {
        let mut next = Vec::new();
        for n in nodes {
            let n = n.get("items").map(resolve).unwrap_or(n);
            if let Some(c) = n.get("properties").and_then(|p| p.get(seg)) {
                next.extend(variants(c));
            } else if let Some(a) = n.get("additionalProperties").filter(|a| a.is_object()) {
                next.extend(variants(a));
            }
        }
        if next.is_empty() {
            return false;
        }
        nodes = next;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_fields_are_checked_against_the_schema() {
        for f in [
            "process.exe",
            "process.args",
            "parent.entity_id",
            "file.path",
            "net.dst.port",
            "container.pod.namespace",
            "container.labels.app",
        ] {
            assert!(has_field(f), "{f}");
        }
        for f in ["process.nope", "file.path.x", "netx.dst", ""] {
            assert!(!has_field(f), "{f}");
        }
    }

    #[test]
    fn schema_is_json_and_lists_every_object() {
        let v: serde_json::Value = serde_json::from_str(JSON_SCHEMA).unwrap();
        for obj in [
            "process",
            "parent",
            "container",
            "exec",
            "child",
            "exit",
            "file",
            "net",
            "dns",
            "flow",
            "result",
            "probe",
            "loss",
            "cred",
            "caps",
            "ptrace",
            "target",
            "signal",
            "rename",
            "memfd",
            "ns",
            "dup",
            "module",
            "bpf",
            "mount",
            "times",
        ] {
            assert!(v["properties"][obj].is_object(), "{obj}");
            assert!(v["$defs"][obj].is_object(), "{obj}");
            assert_ne!(v["$defs"][obj]["additionalProperties"], false, "{obj}");
        }
    }

    #[test]
    fn every_kind_is_listed_with_fields_and_hook() {
        let l = events_listing();
        for k in EventKind::ALL.iter().filter(|k| !is_internal(**k)) {
            assert!(l.contains(k.name()), "{}", k.name());
            assert_ne!(fields_of(k.name()), "see shared/schema.md", "{}", k.name());
        }
        assert!(l.contains("raw_tracepoint/sched_process_exec"));
        assert!(l.contains("probe.loss"));
    }
}
