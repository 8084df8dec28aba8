//! The two passes. The first reads every line's kind and acting process with the quick look
//! and parses in full only lines that teach something new: a process not seen yet, exec, fork,
//! exit, alerts, responses and probe lines. The second parses only lines that name one of the
//! chosen processes (found by a multi-pattern search for their entity ids) and collects what
//! they did.
use std::collections::HashMap;

use aho_corasick::AhoCorasick;
use serde::Serialize;
use serde_json::Value;

use super::{
    activity::{describe, Activity, AlertMark},
    line::{parse, quick, BadCounts},
    progress::Progress,
    read::{lines, End, Input, InputProblems},
    tree::Tree,
};
use crate::encode::json::{get, get_str};

/// A `probe.loss` of the record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Loss {
    pub ts: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    pub source: String,
    pub kind: String,
    pub count: u64,
}

/// Losses and alerts kept from the first pass; beyond this they are counted only.
const MAX_KEPT: usize = 100_000;

/// What the first pass learnt.
#[derive(Default)]
pub struct Index {
    pub tree: Tree,
    /// Every alert with the entity it matched (None: no process).
    pub alerts: Vec<(AlertMark, Option<String>)>,
    pub alerts_more: u64,
    pub losses: Vec<Loss>,
    pub losses_more: u64,
    pub lines: u64,
    pub bad: BadCounts,
    pub problems: InputProblems,
    /// Earliest and latest event time.
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Kinds the first pass always parses in full.
fn teaches(kind: &[u8]) -> bool {
    matches!(
        kind,
        b"process.exec" | b"process.fork" | b"process.exit" | b"alert"
    ) || kind.starts_with(b"probe.")
        || kind.starts_with(b"response.")
}

fn widen(from: &mut Option<String>, to: &mut Option<String>, ts: &str) {
    if ts.is_empty() {
        return;
    }
    if from.as_deref().is_none_or(|f| ts < f) {
        *from = Some(ts.to_owned());
    }
    if to.as_deref().is_none_or(|t| ts > t) {
        *to = Some(ts.to_owned());
    }
}

/// Pass one.
pub fn index(inputs: &mut [Input], progress: &Progress) -> Index {
    let mut ix = Index::default();
    let total: u64 = inputs.iter().map(|i| i.size).sum();
    progress.pass("reading processes (1/2)", total, 2);
    for input in inputs.iter_mut() {
        let (n, end) = lines(input, progress, |l| {
            ix.lines += 1;
            if let Some(q) = quick(l) {
                // The record's time span: the first line's time and every line's is cheap to
                // compare as bytes (RFC 3339 UTC of one width sorts as text).
                if let Some(ts) = l.get(7..).and_then(|r| r.split(|&b| b == b'"').next()) {
                    if let Ok(ts) = std::str::from_utf8(ts) {
                        match &mut ix.to {
                            // Reuses the buffer: times grow on almost every line.
                            Some(t) if ts > t.as_str() => {
                                t.clear();
                                t.push_str(ts);
                            }
                            Some(_) => {}
                            None => ix.to = Some(ts.to_owned()),
                        }
                        if ix.from.is_none() {
                            ix.from = Some(ts.to_owned());
                        }
                    }
                }
                let known = q.entity.is_none_or(|e| ix.tree.knows(e));
                if known && !teaches(q.kind) {
                    return;
                }
            }
            let v = match parse(l) {
                Ok(v) => v,
                Err(b) => {
                    ix.bad.add(b);
                    return;
                }
            };
            let ts = get_str(&v, "ts").unwrap_or("");
            let (mut f, mut t) = (ix.from.take(), ix.to.take());
            widen(&mut f, &mut t, ts);
            (ix.from, ix.to) = (f, t);
            ix.tree.ingest(&v);
            match get_str(&v, "kind").unwrap_or("") {
                "alert" => {
                    if ix.alerts.len() < MAX_KEPT {
                        let e = get_str(&v, "process.entity_id")
                            .filter(|e| !e.is_empty())
                            .map(str::to_owned);
                        ix.alerts.push((AlertMark::of(&v), e));
                    } else {
                        ix.alerts_more += 1;
                    }
                }
                "probe.loss" => {
                    if ix.losses.len() < MAX_KEPT {
                        ix.losses.push(Loss {
                            ts: ts.to_owned(),
                            since: get_str(&v, "loss.since").map(str::to_owned),
                            source: get_str(&v, "loss.source").unwrap_or("?").to_owned(),
                            kind: get_str(&v, "loss.kind").unwrap_or("?").to_owned(),
                            count: get(&v, "loss.count").and_then(Value::as_u64).unwrap_or(0),
                        });
                    } else {
                        ix.losses_more += 1;
                    }
                }
                _ => {}
            }
        });
        if let End::Cut(e) = end {
            log::debug!("{}: {e}", input.name);
            ix.problems.truncated_gzip.push((input.name.clone(), n));
        }
    }
    ix
}

/// One timeline entry.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub ts: String,
    /// Entity id of the acting process (None for losses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u64>,
    /// The process's name at this event (`comm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kind: String,
    pub what: String,
}

/// What pass two collects for the chosen processes.
#[derive(Default)]
pub struct Collected {
    pub activity: HashMap<usize, Activity>,
    pub timeline: Vec<Entry>,
    /// Events left out of the timeline by `max_events`.
    pub timeline_more: u64,
}

pub struct Limits {
    /// Items per activity group.
    pub items: usize,
    /// Timeline entries kept (0: no timeline).
    pub events: usize,
}

/// Pass two over the chosen nodes.
pub fn collect(
    inputs: &mut [Input],
    tree: &Tree,
    chosen: &[usize],
    limits: &Limits,
    progress: &Progress,
) -> Collected {
    let mut out = Collected::default();
    let ids: Vec<&str> = chosen
        .iter()
        .map(|&i| tree.nodes[i].entity_id.as_str())
        .collect();
    let Ok(ac) = AhoCorasick::new(&ids) else {
        return out;
    };
    let member: HashMap<&str, usize> = chosen
        .iter()
        .map(|&i| (tree.nodes[i].entity_id.as_str(), i))
        .collect();
    let total: u64 = inputs.iter().map(|i| i.size).sum();
    progress.pass("collecting activity (2/2)", total, 2);
    for input in inputs.iter_mut() {
        lines(input, progress, |l| {
            if !ac.is_match(l) {
                return;
            }
            // Bad lines were counted in pass one.
            let Ok(v) = parse(l) else { return };
            let kind = get_str(&v, "kind").unwrap_or("");
            let actor = get_str(&v, "process.entity_id").and_then(|e| member.get(e));
            // A response is marked on the process it acted on.
            let target = kind
                .starts_with("response.")
                .then(|| get_str(&v, "response.target.entity_id").and_then(|e| member.get(e)))
                .flatten();
            let Some(&i) = target.or(actor) else { return };
            out.activity.entry(i).or_default().add(&v, limits.items);
            if limits.events > 0 {
                if out.timeline.len() < limits.events {
                    out.timeline.push(Entry {
                        ts: get_str(&v, "ts").unwrap_or("").to_owned(),
                        entity_id: Some(tree.nodes[i].entity_id.clone()),
                        pid: Some(u64::from(tree.nodes[i].pid)),
                        name: Some(
                            get_str(&v, "process.comm")
                                .unwrap_or_else(|| tree.nodes[i].name())
                                .to_owned(),
                        ),
                        kind: kind.to_owned(),
                        what: describe(&v),
                    });
                } else {
                    out.timeline_more += 1;
                }
            }
        });
    }
    out
}
