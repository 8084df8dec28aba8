//! What every pretty line shares: colour, the short time, who acted. A leaf of the folder.
use serde_json::Value;

use crate::encode::json::{get, get_str};

pub(super) fn paint(s: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// hh:mm:ss.mmm of the RFC 3339 time.
pub(super) fn short_time(ts: &str) -> &str {
    ts.get(11..23).unwrap_or(ts)
}

/// `comm[pid]`, the user, a different euid and the container.
pub(super) fn who(v: &Value) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(pid) = get(v, "process.pid") {
        let comm = get_str(v, "process.comm").unwrap_or("");
        parts.push(format!("{comm}[{pid}]"));
        if let Some(u) = get_str(v, "process.user") {
            parts.push(format!("user={u}"));
        }
        if let Some(e) = get(v, "process.euid").filter(|e| Some(*e) != get(v, "process.uid")) {
            parts.push(format!("euid={e}"));
        }
    }
    if let Some(c) = get_str(v, "container.name").or_else(|| get_str(v, "container.id")) {
        parts.push(format!("container={c}"));
    }
    parts
}
