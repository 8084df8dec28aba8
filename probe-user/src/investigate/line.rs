//! One input line: a quick look (kind and acting process) that costs a few substring searches
//! on the native encoder's field order, and the full parse when a line matters. The quick look
//! is only a shortcut: a line it cannot read is parsed in full, so other field orders (a record
//! passed through jq, say) give the same answer, more slowly.
use memchr::memmem;
use serde::Serialize;
use serde_json::Value;

/// What kind of line this was, for the counts of lines left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Not a JSON object.
    NotJson,
    /// An Elastic Common Schema record (`--format ecs`).
    Ecs,
    /// An OCSF record (`--format ocsf`).
    Ocsf,
    /// JSON, but not a tprobe event (no `kind`/`ts`).
    Foreign,
}

/// Lines left out, by reason.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct BadCounts {
    pub not_json: u64,
    pub ecs: u64,
    pub ocsf: u64,
    pub foreign: u64,
}

impl BadCounts {
    pub fn add(&mut self, b: Bad) {
        match b {
            Bad::NotJson => self.not_json += 1,
            Bad::Ecs => self.ecs += 1,
            Bad::Ocsf => self.ocsf += 1,
            Bad::Foreign => self.foreign += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.not_json + self.ecs + self.ocsf + self.foreign
    }
}

/// The quick look at a native line.
#[derive(Debug, PartialEq, Eq)]
pub struct Quick<'a> {
    pub kind: &'a [u8],
    /// `process.entity_id`, None when the line has no process.
    pub entity: Option<&'a [u8]>,
}

static PROCESS: std::sync::OnceLock<memmem::Finder<'static>> = std::sync::OnceLock::new();
static ENTITY: std::sync::OnceLock<memmem::Finder<'static>> = std::sync::OnceLock::new();

/// The string value that starts at `b[0]` (after its opening quote), if it has no escapes.
fn plain_str(b: &[u8]) -> Option<&[u8]> {
    let end = memchr::memchr2(b'"', b'\\', b)?;
    (b[end] == b'"').then(|| &b[..end])
}

/// Kind and acting entity of a line in the native encoder's layout
/// (`{"ts":"..","kind":"..",...,"process":{...,"entity_id":"..",...`); None when the line is
/// laid out otherwise (then it is parsed in full).
pub fn quick(line: &[u8]) -> Option<Quick<'_>> {
    let rest = line.strip_prefix(b"{\"ts\":\"")?;
    if line.last() != Some(&b'}') {
        return None;
    }
    let ts_end = memchr::memchr(b'"', rest)?;
    let rest = rest[ts_end..].strip_prefix(b"\",\"kind\":\"")?;
    let kind = plain_str(rest)?;
    let rest = &rest[kind.len()..];
    let process = PROCESS.get_or_init(|| memmem::Finder::new(b"\"process\":{"));
    let Some(p) = process.find(rest) else {
        return Some(Quick { kind, entity: None });
    };
    let rest = &rest[p..];
    // In the encoder's order, the first `entity_id` key after `process` is the process's own:
    // the fields before it are numbers, strings and arrays of strings, and a key can never be
    // mistaken for text inside a string (its quotes would be escaped there).
    let entity = ENTITY.get_or_init(|| memmem::Finder::new(b"\"entity_id\":\""));
    let e = entity.find(rest)?;
    let id = plain_str(&rest[e + 13..])?;
    Some(Quick {
        kind,
        entity: Some(id),
    })
}

/// The full parse: the event as JSON, or why the line is left out.
pub fn parse(line: &[u8]) -> Result<Value, Bad> {
    let v: Value = serde_json::from_slice(line).map_err(|_| Bad::NotJson)?;
    classify(&v)?;
    Ok(v)
}

fn classify(v: &Value) -> Result<(), Bad> {
    let Some(o) = v.as_object() else {
        return Err(Bad::NotJson);
    };
    if o.contains_key("@timestamp") || o.contains_key("ecs") {
        return Err(Bad::Ecs);
    }
    if o.contains_key("class_uid") || o.contains_key("category_uid") {
        return Err(Bad::Ocsf);
    }
    let native =
        o.get("kind").is_some_and(Value::is_string) && o.get("ts").is_some_and(Value::is_string);
    if !native {
        return Err(Bad::Foreign);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_reads_the_encoders_layout() {
        let l = br#"{"ts":"2026-01-01T00:00:00Z","kind":"file.open","seq":3,"host":{"name":"h"},"schema":"tprobe/1","process":{"pid":1,"args":["a\"entity_id\":\"x"],"entity_id":"abc","ancestors":[{"entity_id":"p"}]},"parent":{"entity_id":"p"}}"#;
        assert_eq!(
            quick(l),
            Some(Quick {
                kind: b"file.open",
                entity: Some(b"abc")
            })
        );
        let flow = br#"{"ts":"t","kind":"flow.end","seq":1,"flow":{}}"#;
        assert_eq!(
            quick(flow),
            Some(Quick {
                kind: b"flow.end",
                entity: None
            })
        );
        // Another order, a cut line, an escaped id: the full parse decides.
        assert_eq!(quick(br#"{"kind":"file.open","ts":"t"}"#), None);
        assert_eq!(
            quick(br#"{"ts":"t","kind":"file.open","process":{"entity_id":"a"#),
            None
        );
        assert_eq!(
            quick(br#"{"ts":"t","kind":"x","process":{"entity_id":"a\u0041"}}"#),
            None
        );
    }

    #[test]
    fn other_formats_are_told_apart() {
        assert_eq!(parse(b"not json").unwrap_err(), Bad::NotJson);
        assert_eq!(parse(b"[1]").unwrap_err(), Bad::NotJson);
        assert_eq!(
            parse(br#"{"@timestamp":"t","event":{}}"#).unwrap_err(),
            Bad::Ecs
        );
        assert_eq!(
            parse(br#"{"class_uid":1007,"time":1}"#).unwrap_err(),
            Bad::Ocsf
        );
        assert_eq!(parse(br#"{"a":1}"#).unwrap_err(), Bad::Foreign);
        assert!(parse(br#"{"ts":"t","kind":"probe.start"}"#).is_ok());
    }
}
