//! Event kinds as the user names them: `process.exec`, a category (`process`), or `all`.
use probe_common::EventKind;

use super::error::ConfigError;

/// Kinds the kernel sends for the probe's own use (`flow.new` tells the flow tracker about a
/// flow at once); a user cannot ask for one by name, and none is ever printed.
pub fn is_internal(k: EventKind) -> bool {
    k == EventKind::FlowNew
}

/// `alert`: not a kernel kind, the analyze stage's own.
pub const ALERT: &str = "alert";

/// `response.*`: the respond stage's own kinds. Every action is written whatever `--events`
/// says; naming them is accepted (and `--events response` alone shows only them).
pub const RESPONSE_KINDS: &[&str] = &[
    "response.kill",
    "response.freeze",
    "response.isolate",
    "response.release",
];

fn is_response(item: &str) -> bool {
    item == "response" || RESPONSE_KINDS.contains(&item)
}

/// Whether `--events` asks for alerts: by name, or with `all`.
pub fn wants_alerts(spec: &str) -> bool {
    spec.split(',')
        .map(str::trim)
        .any(|i| i == ALERT || i == "all")
}

/// Every kind name, for messages and `tprobe events`.
pub fn known_kinds() -> String {
    EventKind::ALL
        .iter()
        .filter(|k| !is_internal(**k))
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
        + ", "
        + ALERT
        + ", "
        + &RESPONSE_KINDS.join(", ")
}

/// Parses `process,file.open,...`: kind names, categories (`process`) or `all`.
pub fn parse_kinds(spec: &str) -> Result<Vec<EventKind>, ConfigError> {
    let mut out = Vec::new();
    let mut userspace = false;
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == ALERT || is_response(item) {
            userspace = true;
            continue;
        }
        let matched: Vec<EventKind> = EventKind::ALL
            .iter()
            .copied()
            .filter(|k| {
                item == "all"
                    || k.name() == item && !is_internal(*k)
                    || k.name().split('.').next() == Some(item)
            })
            .collect();
        if matched.is_empty() {
            return Err(ConfigError::UnknownKind(item.to_owned(), known_kinds()));
        }
        for k in matched {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    if out.is_empty() && !userspace {
        return Err(ConfigError::NoKinds);
    }
    out.sort();
    Ok(out)
}
