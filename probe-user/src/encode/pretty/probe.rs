//! `probe.start` and `probe.stop` as one short line each: what a person checks first (version,
//! kernel, hooks attached and the names of those skipped, the metrics address; events per
//! family and the losses), not the full config the JSON record carries.
use std::collections::BTreeMap;

use serde_json::Value;

use super::style::{paint, short_time};
use crate::encode::json::{get, get_str};

pub fn start(v: &Value, color: bool) -> String {
    let ts = get_str(v, "ts").unwrap_or("");
    let mut parts = vec![
        paint(short_time(ts), "2", color),
        paint(&format!("{:<14}", "probe.start"), "1;33", color),
        format!("tprobe {}", get_str(v, "probe.version").unwrap_or("?")),
        format!("kernel {}", get_str(v, "probe.kernel").unwrap_or("?")),
    ];
    if let Some(h) = get(v, "probe.hooks").and_then(Value::as_array) {
        parts.push(hooks(h, color));
    }
    if let Some(r) = get(v, "probe.analyze.rules").and_then(Value::as_u64) {
        parts.push(format!("rules {r}"));
    }
    match get_str(v, "probe.metrics") {
        Some(m) => parts.push(format!("metrics http://{m}/metrics")),
        None => parts.push("metrics off".into()),
    }
    parts.join(" ")
}

/// The reason `load` gives a hook no enabled kind needs: left unattached by choice, so only
/// counted (the others could not be attached here and are named).
const NOT_NEEDED: &str = "no enabled event kind needs it";

fn hooks(h: &[Value], color: bool) -> String {
    let attached = |x: &&Value| x.get("attached").and_then(Value::as_bool) == Some(true);
    let not_needed = |x: &&Value| get_str(x, "reason") == Some(NOT_NEEDED);
    let n = h.iter().filter(attached).count();
    let idle = h.iter().filter(|x| !attached(x) && not_needed(x)).count();
    let skipped: Vec<&str> = h
        .iter()
        .filter(|x| !attached(x) && !not_needed(x))
        .map(|x| {
            let hook = get_str(x, "hook").unwrap_or("?");
            // `tracepoint/syscalls/sys_enter_x` → `sys_enter_x`: the name says it.
            hook.rsplit('/').next().unwrap_or(hook)
        })
        .collect();
    let mut s = format!("hooks {n} attached");
    if idle > 0 {
        s.push_str(&format!(", {idle} not needed"));
    }
    if skipped.is_empty() {
        return s;
    }
    s.push_str(&format!(
        ", {} skipped ({})",
        skipped.len(),
        skipped.join(", ")
    ));
    paint(&s, "33", color)
}

pub fn stop(v: &Value, color: bool) -> String {
    let ts = get_str(v, "ts").unwrap_or("");
    let mut parts = vec![
        paint(short_time(ts), "2", color),
        paint(&format!("{:<14}", "probe.stop"), "1;33", color),
    ];
    if let Some(d) = get(v, "probe.duration_s").and_then(Value::as_f64) {
        parts.push(format!("ran {d:.1}s"));
    }
    if let Some(r) = get_str(v, "probe.reason") {
        parts.push(format!("({r})"));
    }
    // Events per family: the kind's category.
    let mut families: BTreeMap<&str, u64> = BTreeMap::new();
    if let Some(o) = get(v, "probe.events").and_then(Value::as_object) {
        for (k, n) in o {
            let fam = k.split_once('.').map_or(k.as_str(), |(f, _)| f);
            *families.entry(fam).or_default() += n.as_u64().unwrap_or(0);
        }
    }
    let fams: Vec<String> = families
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(f, n)| format!("{f} {n}"))
        .collect();
    parts.push(if fams.is_empty() {
        "no events".into()
    } else {
        format!("events: {}", fams.join(", "))
    });
    if let Some(l) = get(v, "probe.lines").and_then(Value::as_u64) {
        parts.push(format!("lines {l}"));
    }
    let mut lost: Vec<(String, u64)> = Vec::new();
    if let Some(o) = get(v, "probe.losses").and_then(Value::as_object) {
        for (k, n) in o {
            // A sink's losses may be an object per sink.
            match n {
                Value::Object(m) => {
                    for (s, c) in m {
                        lost.push((format!("{k} {s}"), c.as_u64().unwrap_or(0)));
                    }
                }
                n => lost.push((k.clone(), n.as_u64().unwrap_or(0))),
            }
        }
    }
    let total: u64 = lost.iter().map(|(_, n)| n).sum();
    if total == 0 {
        parts.push("lost 0".into());
    } else {
        let each: Vec<String> = lost
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        parts.push(paint(
            &format!("LOST {total} ({})", each.join(", ")),
            "1;31",
            color,
        ));
    }
    parts.join(" ")
}
