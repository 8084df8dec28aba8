//! The top-level objects a native record holds for each kind of body, so that the analyze
//! stage can tell that an exec's record has no `bpf` object without rendering it. The native
//! encoder (`encode::native`, `Native::fill`) writes them; keep the two in step.
use super::Body;

/// Top-level objects every record may carry, whatever its kind.
pub const COMMON_OBJECTS: &[&str] = &[
    "ts",
    "kind",
    "seq",
    "host",
    "schema",
    "process",
    "parent",
    "container",
    "event_id",
];

/// How many [`body_class`]es there are.
pub const BODY_CLASSES: usize = 11;

/// Bodies grouped by the objects their records hold (an index below [`BODY_CLASSES`]).
pub fn body_class(body: &Body) -> usize {
    match body {
        Body::Exec(_) => 0,
        Body::ExecFailed(_) => 1,
        Body::Fork { .. } => 2,
        Body::Exit(_) => 3,
        Body::File(_) => 4,
        Body::Net(_) => 5,
        Body::Flow(_) => 6,
        Body::Probe { .. } | Body::Reload { .. } => 7,
        Body::Loss { .. } => 8,
        Body::Response(_) => 10,
        Body::Security(_) | Body::Alert(_) => 9,
    }
}

/// The top-level objects [`Native::fill`] may write for a [`body_class`], besides
/// [`COMMON_OBJECTS`]; `None` when any may appear (security records and alerts). The analyze
/// stage skips rendering a record for a field outside this list.
pub fn class_objects(class: usize) -> Option<&'static [&'static str]> {
    Some(match class {
        0 => &["exec"],
        1 => &["exec", "result"],
        2 => &["child"],
        3 => &["exit"],
        4 => &["file", "result", "times"],
        5 => &["net", "dns", "result"],
        6 => &["flow"],
        7 => &["probe"],
        8 => &["loss"],
        10 => &["response"],
        _ => return None,
    })
}

pub fn body_objects(body: &Body) -> Option<&'static [&'static str]> {
    class_objects(body_class(body))
}

/// Whether a record of `body` may hold the dotted field `path`.
pub fn may_have(body: &Body, path: &str) -> bool {
    class_may_have(body_class(body), path)
}

/// Whether a record of a [`body_class`] may hold the dotted field `path`.
pub fn class_may_have(class: usize, path: &str) -> bool {
    let top = path.split_once('.').map_or(path, |(t, _)| t);
    // A match, not a scan of COMMON_OBJECTS: the engine asks this for every field it indexes.
    matches!(
        top,
        "ts" | "kind" | "seq" | "host" | "schema" | "process" | "parent" | "container" | "event_id"
    ) || class_objects(class).is_none_or(|b| b.contains(&top))
}
