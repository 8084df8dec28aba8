//! `--pretty`: one readable line per event, coloured on a terminal. Built from the native
//! record, so new kinds show their own objects without code here.
use serde_json::Value;

use super::json::{command_line, get, get_str, split_kind};

fn paint(s: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

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
        Value::String(s) => out.push(format!("{prefix}={s:?}")),
        other => out.push(format!("{prefix}={other}")),
    }
}

/// The readable line (no newline).
pub fn line(v: &Value, color: bool) -> String {
    let (category, _) = split_kind(v);
    let kind = get_str(v, "kind").unwrap_or("?");
    let ts = get_str(v, "ts").unwrap_or("");
    // hh:mm:ss.mmm of the RFC 3339 time
    let short = ts.get(11..23).unwrap_or(ts);
    let code = match category {
        "process" => "32",
        "file" => "36",
        "net" => "35",
        "flow" => "34",
        _ => "33",
    };
    let mut parts = vec![
        paint(short, "2", color),
        paint(&format!("{kind:<14}"), &format!("1;{code}"), color),
    ];
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
    if kind == "process.exec" {
        if let Some(cl) = get(v, "process.args").and_then(command_line) {
            parts.push(cl);
        }
    }
    if get(v, "result.ok").and_then(Value::as_bool) == Some(false) {
        let e = get_str(v, "result.error").unwrap_or("error");
        parts.push(paint(e, "31", color));
    }
    // The kind's own object(s), flattened.
    let mut rest = Vec::new();
    if let Some(o) = v.as_object() {
        for (k, x) in o {
            if !matches!(
                k.as_str(),
                "ts" | "kind"
                    | "seq"
                    | "host"
                    | "schema"
                    | "process"
                    | "parent"
                    | "container"
                    | "result"
            ) {
                flat(x, k, &mut rest);
            }
        }
    }
    parts.extend(rest);
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable() {
        let v = serde_json::json!({
            "ts": "2024-01-02T03:04:05.123456789Z", "kind": "process.exit", "seq": 1,
            "process": {"pid": 5, "comm": "sh"}, "exit": {"code": 1, "signal": null}
        });
        assert_eq!(
            line(&v, false),
            "03:04:05.123 process.exit   sh[5] exit.code=1"
        );
        assert!(line(&v, true).contains("\x1b[1;32m"));
    }
}
