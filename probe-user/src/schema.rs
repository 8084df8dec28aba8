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
            "process (after the exec), parent; exec {interpreter, filename} when a script ran"
        }
        ("process", "fork") => "process (the forking parent), parent; child {pid, tid, entity_id, thread}",
        ("process", "exit") => "process, parent; exit {code, signal, core_dumped}",
        ("process", _) => "process, parent",
        ("file", _) => {
            "process, parent; file {path, path_truncated, flags, mode, uid, gid, target_path}; result {ok, errno, error}"
        }
        ("net", "dns") => {
            "process, parent; net {transport, family, src {ip, port}, dst {ip, port}, direction}; dns {query, qtype, server}"
        }
        ("net", _) => {
            "process, parent; net {transport, family, src {ip, port}, dst {ip, port}, path, direction}; result {ok, errno, error}"
        }
        ("flow", _) => {
            "flow {iface, transport, src {ip, port}, dst {ip, port}, packets, bytes, tcp_flags, first_seen, last_seen}; process and container when matched to a socket"
        }
        ("probe", "start") => "probe {version, kernel, pid, hooks, config}",
        ("probe", "stop") => {
            "probe {reason, duration_s, events (per kind), lines, losses, filtered, drained, process_table}"
        }
        ("probe", "reload") => "probe {config, warnings}: the config file was reloaded (SIGHUP)",
        ("probe", "loss") => "loss {source, kind, count, since}",
        _ => "see shared/schema.md",
    }
}

/// Kinds made in userspace, with what makes them.
pub const PROBE_KINDS: &[(&str, &str)] = &[
    ("probe.start", "userspace, at start"),
    ("probe.stop", "userspace, at exit"),
    ("probe.reload", "userspace, on SIGHUP"),
    ("probe.loss", "userspace, within a second of a loss"),
];

/// `tprobe events`: one block per kind: name, hook(s), fields.
pub fn events_listing() -> String {
    let mut out = String::new();
    out.push_str(
        "Every event: ts, kind, seq, host {name}, schema; container {id, runtime, name, image, labels, pod} when in a container.\n\n",
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

/// Whether a dotted field (`process.exe`, `container.labels.app`, `net.dst.port`) is one the
/// schema describes: what a rule may name. Maps (labels) take any key.
pub fn has_field(path: &str) -> bool {
    let root = &*SCHEMA;
    let resolve = |mut n: &'static serde_json::Value| {
        // `$ref` chains are short; the bound keeps a bad schema from looping.
        for _ in 0..8 {
            match n.get("$ref").and_then(|r| r.as_str()) {
                Some(r) => match r
                    .strip_prefix("#/$defs/")
                    .and_then(|d| root["$defs"].get(d))
                {
                    Some(t) => n = t,
                    None => return n,
                },
                None => return n,
            }
        }
        n
    };
    let mut node: &'static serde_json::Value = resolve(root);
    for seg in path.split('.') {
        if let Some(items) = node.get("items") {
            node = resolve(items);
        }
        node = match node.get("properties").and_then(|p| p.get(seg)) {
            Some(n) => resolve(n),
            None => match node.get("additionalProperties") {
                Some(a) if a.is_object() => resolve(a),
                _ => return false,
            },
        };
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
