//! What one process did, grouped by kind: files written, deleted and changed, connections with
//! their domains, DNS names, security events, failed execs. Each group keeps its first N
//! distinct items with counts and counts the rest, so memory stays bounded however busy the
//! process was. Alerts and responses are kept as marks.
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::encode::json::{command_line, get, get_str};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Item {
    pub what: String,
    pub count: u64,
    /// Time of the first one.
    pub first: String,
    /// How many of them failed (`result.ok` false).
    #[serde(skip_serializing_if = "is_zero")]
    pub failed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Group {
    /// Events in this group.
    pub total: u64,
    /// The first distinct items, in the order seen.
    pub items: Vec<Item>,
    /// Distinct items beyond those listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub more: u64,
}

impl Group {
    fn add(&mut self, what: String, ts: &str, failed: bool, limit: usize) {
        self.total += 1;
        if let Some(it) = self.items.iter_mut().find(|i| i.what == what) {
            it.count += 1;
            it.failed += u64::from(failed);
        } else if self.items.len() < limit {
            self.items.push(Item {
                what,
                count: 1,
                first: ts.to_owned(),
                failed: u64::from(failed),
            });
        } else {
            // Counted, not listed; distinct-ness beyond the limit is not tracked (that would
            // cost memory per item).
            self.more += 1;
        }
    }
}

/// The groups, in display order: (JSON key, heading).
pub const GROUPS: &[(&str, &str)] = &[
    ("files_written", "files written"),
    ("files_deleted", "files deleted"),
    ("files_changed", "files changed"),
    ("files_read", "files read"),
    ("connections", "connections"),
    ("dns", "DNS names"),
    ("security", "security events"),
    ("exec_failed", "failed execs"),
];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AlertMark {
    pub seq: Option<u64>,
    pub ts: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The kind of the event that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
}

impl AlertMark {
    pub fn of(v: &Value) -> Self {
        let s = |p: &str| get_str(v, p).map(str::to_owned);
        AlertMark {
            seq: get(v, "seq").and_then(Value::as_u64),
            ts: s("ts").unwrap_or_default(),
            rule_id: s("alert.rule.id"),
            title: s("alert.rule.title"),
            level: s("alert.rule.level"),
            source: s("alert.source"),
            matched: s("alert.matched.kind"),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResponseMark {
    pub ts: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_seq: Option<u64>,
}

impl ResponseMark {
    pub fn of(v: &Value) -> Self {
        let s = |p: &str| get_str(v, p).map(str::to_owned);
        ResponseMark {
            ts: s("ts").unwrap_or_default(),
            kind: s("kind").unwrap_or_default(),
            action: s("response.action"),
            ok: get(v, "response.ok").and_then(Value::as_bool),
            dry_run: get(v, "response.dry_run").and_then(Value::as_bool),
            error: s("response.error"),
            reason: s("response.reason"),
            rule_id: s("response.trigger.rule_id"),
            alert_seq: get(v, "response.trigger.alert_seq").and_then(Value::as_u64),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Activity {
    /// Events of this process by kind.
    pub kinds: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Non-empty groups only, by JSON key.
    pub groups: BTreeMap<&'static str, Group>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertMark>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub responses: Vec<ResponseMark>,
}

/// Marks kept per process beyond which they are only counted in `kinds`.
const MAX_MARKS: usize = 100;

const WRITE_FLAGS: &[&str] = &["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"];

fn is_write_open(v: &Value) -> bool {
    get(v, "file.flags")
        .and_then(Value::as_array)
        .is_some_and(|f| {
            f.iter()
                .any(|x| x.as_str().is_some_and(|s| WRITE_FLAGS.contains(&s)))
        })
}

/// The group an event belongs to, if any.
fn group_of(kind: &str, v: &Value) -> Option<&'static str> {
    let (cat, action) = kind.split_once('.').unwrap_or((kind, ""));
    Some(match (cat, action) {
        ("process", "exec" | "fork" | "exit") => return None,
        ("process", "exec_failed") => "exec_failed",
        ("file", "open") if is_write_open(v) => "files_written",
        ("file", "open") => "files_read",
        ("file", "create" | "truncate") => "files_written",
        ("file", "unlink" | "rmdir") => "files_deleted",
        ("file", "mount" | "umount") => "security",
        ("file", _) => "files_changed",
        ("net", "connect" | "accept" | "bind" | "listen") => "connections",
        ("net", "dns") => "dns",
        ("net", "socket") => "security",
        ("net", _) | ("flow", _) | ("probe", _) | ("alert", _) | ("response", _) => return None,
        _ => "security",
    })
}

fn endpoint(v: Option<&Value>) -> Option<String> {
    let v = v?;
    let ip = get_str(v, "ip")?;
    let port = get(v, "port").map(|p| p.to_string());
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    };
    Some(match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// The text of one item of a group (the key items are counted by).
fn what(kind: &str, group: &str, v: &Value) -> String {
    let path = get_str(v, "file.path").unwrap_or("?");
    match group {
        "files_written" | "files_deleted" | "files_read" => path.to_owned(),
        "files_changed" => {
            let action = kind.split_once('.').map_or(kind, |(_, a)| a);
            match (get_str(v, "file.target_path"), get_str(v, "file.mode")) {
                (Some(t), _) => format!("{action} {path} → {t}"),
                (None, Some(m)) if action == "chmod" => format!("chmod {path} {m}"),
                _ => format!("{action} {path}"),
            }
        }
        "connections" => {
            let action = kind.split_once('.').map_or(kind, |(_, a)| a);
            let t = get_str(v, "net.transport").unwrap_or("");
            let peer = match action {
                "accept" => endpoint(get(v, "net.src")),
                "bind" | "listen" => {
                    endpoint(get(v, "net.src")).or_else(|| endpoint(get(v, "net.dst")))
                }
                _ => endpoint(get(v, "net.dst")),
            }
            .or_else(|| get_str(v, "net.path").map(str::to_owned))
            .unwrap_or_else(|| "?".into());
            let domain = get_str(v, "net.dst.domain")
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            format!("{action} {t} {peer}{domain}").replace("  ", " ")
        }
        "dns" => {
            let q = get_str(v, "dns.query").unwrap_or("?");
            let answers: Vec<&str> = get(v, "dns.answers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| get_str(x, "data")).collect())
                .unwrap_or_default();
            if answers.is_empty() {
                q.to_owned()
            } else {
                format!("{q} → {}", answers.join(", "))
            }
        }
        "exec_failed" => {
            let f = get_str(v, "exec.filename").unwrap_or("?");
            format!("{f} ({})", get_str(v, "result.error").unwrap_or("failed"))
        }
        _ => describe(v),
    }
}

impl Activity {
    /// Adds one event of this process.
    pub fn add(&mut self, v: &Value, limit: usize) {
        let kind = get_str(v, "kind").unwrap_or("?");
        let ts = get_str(v, "ts").unwrap_or("");
        *self.kinds.entry(kind.to_owned()).or_default() += 1;
        if self.first_seen.is_none() {
            self.first_seen = Some(ts.to_owned());
        }
        if self.last_seen.as_deref().is_none_or(|l| l < ts) {
            self.last_seen = Some(ts.to_owned());
        }
        if kind == "alert" {
            if self.alerts.len() < MAX_MARKS {
                self.alerts.push(AlertMark::of(v));
            }
            return;
        }
        if kind.starts_with("response.") {
            if self.responses.len() < MAX_MARKS {
                self.responses.push(ResponseMark::of(v));
            }
            return;
        }
        if let Some(g) = group_of(kind, v) {
            // A non-blocking connect that is under way has not failed.
            let failed = get(v, "result.ok").and_then(Value::as_bool) == Some(false)
                && get_str(v, "result.error") != Some("EINPROGRESS");
            let w = what(kind, g, v);
            self.groups.entry(g).or_default().add(w, ts, failed, limit);
        }
    }
}

/// Top-level keys every event shares (left out of a description).
const ENVELOPE: &[&str] = &[
    "ts",
    "kind",
    "seq",
    "host",
    "schema",
    "process",
    "parent",
    "container",
    "result",
];

fn flat(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flat(x, &p, out);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push(format!("{prefix}={s}")),
        Value::Array(a) => out.push(format!(
            "{prefix}={}",
            a.iter()
                .map(|x| x
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| x.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        )),
        other => out.push(format!("{prefix}={other}")),
    }
}

/// One short line for any event (timelines and security items): the kind's own objects.
pub fn describe(v: &Value) -> String {
    let kind = get_str(v, "kind").unwrap_or("?");
    let text = match kind {
        "process.exec" => get(v, "process.args")
            .and_then(command_line)
            .or_else(|| get_str(v, "process.exe").map(str::to_owned))
            .unwrap_or_default(),
        "process.exit" => match (get(v, "exit.code"), get(v, "exit.signal")) {
            (_, Some(s)) => format!("killed by signal {s}"),
            (Some(c), None) => format!("exit {c}"),
            _ => String::new(),
        },
        "process.fork" => format!(
            "child {}",
            get(v, "child.pid")
                .map(|p| p.to_string())
                .unwrap_or_default()
        ),
        "alert" => format!(
            "[{}] {} ({})",
            get_str(v, "alert.rule.level").unwrap_or("?"),
            get_str(v, "alert.rule.title").unwrap_or("?"),
            get_str(v, "alert.rule.id").unwrap_or("?"),
        ),
        "probe.loss" => crate::encode::json::loss_message(v).unwrap_or_default(),
        _ => {
            let kind_group = group_of(kind, v);
            match kind_group {
                Some(g) if g != "security" => what(kind, g, v),
                _ => {
                    let mut parts = Vec::new();
                    if let Some(o) = v.as_object() {
                        for (k, x) in o {
                            if !ENVELOPE.contains(&k.as_str()) {
                                flat(x, k, &mut parts);
                            }
                        }
                    }
                    parts.join(" ")
                }
            }
        }
    };
    match get(v, "result.ok").and_then(Value::as_bool) {
        Some(false) => format!(
            "{text} ({})",
            get_str(v, "result.error").unwrap_or("failed")
        ),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn groups_count_and_stop_listing_at_the_limit() {
        let mut a = Activity::default();
        for i in 0..5 {
            a.add(
                &json!({"ts": format!("t{i}"), "kind": "file.open",
                        "file": {"path": format!("/tmp/f{}", i % 3), "flags": ["O_WRONLY", "O_CREAT"]},
                        "result": {"ok": i != 4}}),
                2,
            );
        }
        a.add(
            &json!({"ts": "t9", "kind": "file.unlink", "file": {"path": "/tmp/f0"}}),
            2,
        );
        a.add(
            &json!({"ts": "t9", "kind": "net.connect",
                    "net": {"transport": "tcp", "dst": {"ip": "127.0.0.1", "port": 80, "domain": "example.test"}},
                    "result": {"ok": false, "error": "ECONNREFUSED"}}),
            2,
        );
        a.add(
            &json!({"ts": "t9", "kind": "net.dns", "dns": {"query": "example.test",
                      "answers": [{"data": "127.0.0.1"}]}}),
            2,
        );
        a.add(
            &json!({"ts": "t9", "kind": "process.ptrace",
                      "ptrace": {"request": "PTRACE_ATTACH", "target": {"pid": 7}}}),
            2,
        );
        let w = &a.groups["files_written"];
        assert_eq!(w.total, 5);
        assert_eq!(w.items.len(), 2);
        assert_eq!((w.items[0].what.as_str(), w.items[0].count), ("/tmp/f0", 2));
        assert_eq!(w.items[1].failed, 1, "the fifth open, of f1, failed");
        assert_eq!(w.more, 1);
        assert_eq!(a.groups["files_deleted"].items[0].what, "/tmp/f0");
        assert_eq!(
            a.groups["connections"].items[0].what,
            "connect tcp 127.0.0.1:80 (example.test)"
        );
        assert_eq!(a.groups["connections"].items[0].failed, 1);
        assert_eq!(a.groups["dns"].items[0].what, "example.test → 127.0.0.1");
        assert_eq!(
            a.groups["security"].items[0].what,
            "ptrace.request=PTRACE_ATTACH ptrace.target.pid=7"
        );
        assert_eq!(a.kinds["file.open"], 5);
        assert_eq!(a.first_seen.as_deref(), Some("t0"));
    }
}
