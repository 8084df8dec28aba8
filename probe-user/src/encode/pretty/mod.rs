//! `--pretty`: one readable line per event, coloured on a terminal. Built from the native
//! record, so new kinds show their own objects without code here. Values that only restate a
//! default (`core_dumped=false`, a null signal, `*_truncated=false`) are left out; `probe.*`
//! lines are summaries (probe.rs) and alerts stand out (alert.rs).
mod alert;
mod probe;
mod style;

use serde_json::Value;

use self::style::{paint, short_time, who};
use super::json::{command_line, get, get_str, split_kind};

/// Keys whose `false` is news (everything else's `false` is its default and left out).
const FALSE_IS_NEWS: &[&str] = &["path_resolved", "target_path_resolved", "ok"];
/// Keys whose `true` is the default.
const TRUE_IS_DEFAULT: &[&str] = &["path_resolved", "target_path_resolved"];

fn flat(v: &Value, prefix: &str, out: &mut Vec<String>) {
    let key = prefix.rsplit('.').next().unwrap_or(prefix);
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
        Value::Array(a) if a.is_empty() => {}
        Value::Bool(false) if !FALSE_IS_NEWS.contains(&key) => {}
        Value::Bool(true) if TRUE_IS_DEFAULT.contains(&key) => {}
        Value::String(s) => out.push(format!("{prefix}={s:?}")),
        other => out.push(format!("{prefix}={other}")),
    }
}

/// The readable line (no newline).
pub fn line(v: &Value, color: bool) -> String {
    let kind = get_str(v, "kind").unwrap_or("?");
    match kind {
        "probe.start" => return probe::start(v, color),
        "probe.stop" => return probe::stop(v, color),
        "alert" => return alert::line(v, color),
        _ => {}
    }
    let (category, _) = split_kind(v);
    let ts = get_str(v, "ts").unwrap_or("");
    let code = match category {
        "process" => "32",
        "file" => "36",
        "net" => "35",
        "flow" => "34",
        "response" => "1;35",
        _ => "33",
    };
    let mut parts = vec![
        paint(short_time(ts), "2", color),
        paint(&format!("{kind:<14}"), &format!("1;{code}"), color),
    ];
    parts.extend(who(v));
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
mod tests;
