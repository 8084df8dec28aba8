//! JSON helpers the record transforms share (dotted paths, command lines, times). A leaf: no
//! encoder imports another.
use serde_json::{Map, Value};

/// `v` at a dotted path.
pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for p in path.split('.') {
        cur = cur.get(p)?;
    }
    (!cur.is_null()).then_some(cur)
}

pub fn get_str<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// Sets a dotted path, creating objects on the way; `null` is not written.
pub fn set(out: &mut Map<String, Value>, path: &str, val: impl Into<Value>) {
    let val = val.into();
    if val.is_null() {
        return;
    }
    let mut parts = path.split('.').peekable();
    let mut cur = out;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_owned(), val);
            return;
        }
        let next = cur
            .entry(p.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        cur = next.as_object_mut().expect("object just ensured");
    }
}

/// Copies `src_path` of `v` to `dst_path` when present.
pub fn copy(out: &mut Map<String, Value>, v: &Value, src_path: &str, dst_path: &str) {
    if let Some(x) = get(v, src_path) {
        set(out, dst_path, x.clone());
    }
}

/// `category` and `action` of a kind string.
/// The human line of a `probe.loss`: "N events lost (source, kind)".
pub fn loss_message(v: &Value) -> Option<String> {
    let n = get(v, "loss.count")?;
    Some(format!(
        "{n} events lost ({}, {})",
        get_str(v, "loss.source").unwrap_or("?"),
        get_str(v, "loss.kind").unwrap_or("?")
    ))
}

pub fn split_kind(v: &Value) -> (&str, &str) {
    let kind = get_str(v, "kind").unwrap_or("");
    kind.split_once('.').unwrap_or((kind, ""))
}

/// File name and directory of a path.
pub fn base_dir(path: &str) -> (Option<&str>, Option<&str>) {
    match path.rsplit_once('/') {
        Some((d, b)) => (
            (!b.is_empty()).then_some(b),
            Some(if d.is_empty() { "/" } else { d }),
        ),
        None => ((!path.is_empty()).then_some(path), None),
    }
}

/// A shell-like command line from argv (for display and `command_line` fields).
pub fn command_line(args: &Value) -> Option<String> {
    let a = args.as_array()?;
    if a.is_empty() {
        return None;
    }
    Some(
        a.iter()
            .filter_map(Value::as_str)
            .map(|s| {
                if !s.is_empty()
                    && !s.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                {
                    s.to_owned()
                } else {
                    format!("{s:?}")
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// RFC 3339 to milliseconds since the epoch (OCSF `timestamp_t`).
pub fn epoch_ms(ts: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(ts.as_str()?)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let mut m = Map::new();
        set(&mut m, "a.b.c", 1);
        set(&mut m, "a.d", "x");
        set(&mut m, "a.n", Value::Null);
        assert_eq!(
            Value::Object(m.clone()),
            serde_json::json!({"a":{"b":{"c":1},"d":"x"}})
        );
        let v = Value::Object(m);
        assert_eq!(get(&v, "a.b.c"), Some(&Value::from(1)));
        assert_eq!(get(&v, "a.zz"), None);
        assert_eq!(base_dir("/usr/bin/ls"), (Some("ls"), Some("/usr/bin")));
        assert_eq!(base_dir("/x"), (Some("x"), Some("/")));
        assert_eq!(
            command_line(&serde_json::json!(["ls", "-l", "a b", ""])).unwrap(),
            r#"ls -l "a b" """#
        );
        assert_eq!(epoch_ms(&"1970-01-01T00:00:01.5Z".into()), Some(1500));
    }
}
