//! An alert as a line that stands out: its level in colour, the rule's title, who did it and
//! what was touched, the rule id and ATT&CK techniques.
use serde_json::Value;

use super::style::{paint, short_time, who};
use crate::encode::json::{command_line, get, get_str};

pub fn line(v: &Value, color: bool) -> String {
    let ts = get_str(v, "ts").unwrap_or("");
    let level = get_str(v, "alert.rule.level").unwrap_or("?");
    let code = match level {
        "critical" | "high" => "1;97;41",
        "medium" => "1;31",
        _ => "1;33",
    };
    let mut parts = vec![
        paint(short_time(ts), "2", color),
        paint(&format!("{:<14}", format!("ALERT {level}")), code, color),
        paint(get_str(v, "alert.rule.title").unwrap_or("?"), "1", color),
    ];
    parts.push("—".into());
    parts.extend(who(v));
    // What the matched event touched.
    let matched = get_str(v, "alert.matched.kind").unwrap_or("");
    if matched == "process.exec" {
        if let Some(cl) = get(v, "process.args").and_then(command_line) {
            parts.push(cl);
        }
    }
    if let Some(p) = get_str(v, "file.path") {
        parts.push(format!("file={p:?}"));
    }
    if let (Some(ip), Some(port)) = (get_str(v, "net.dst.ip"), get(v, "net.dst.port")) {
        let dom = get_str(v, "net.dst.domain")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        parts.push(format!("dst={ip}:{port}{dom}"));
    }
    if let Some(q) = get_str(v, "dns.query") {
        parts.push(format!("dns={q}"));
    }
    if let Some(id) = get_str(v, "alert.rule.id") {
        parts.push(paint(&format!("rule={id}"), "2", color));
    }
    if !matched.is_empty() {
        parts.push(paint(&format!("on={matched}"), "2", color));
    }
    let techniques: Vec<&str> = get(v, "alert.attack.techniques")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !techniques.is_empty() {
        parts.push(paint(
            &format!("att&ck={}", techniques.join(",")),
            "2",
            color,
        ));
    }
    parts.join(" ")
}
