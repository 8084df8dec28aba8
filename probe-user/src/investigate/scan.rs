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

/// A time the probe was not running: from a `probe.stop` to the next `probe.start` (None: the
/// record ends stopped).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gap {
    pub from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
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
    /// `probe.start` and `probe.stop` times (bounded like the losses).
    pub runs: Vec<(bool, String)>,
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
                k @ ("probe.start" | "probe.stop") if ix.runs.len() < MAX_KEPT => {
                    ix.runs.push((k == "probe.start", ts.to_owned()));
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
        match end {
            End::Whole => {}
            End::CutGzip(e) => {
                log::debug!("{}: {e}", input.name);
                ix.problems.truncated_gzip.push((input.name.clone(), n));
            }
            End::Failed(e) => ix
                .problems
                .unreadable
                .push(format!("{} (after {n} lines): {e}", input.name)),
        }
    }
    ix
}

impl Index {
    /// The times the probe was not running between runs in the record.
    pub fn gaps(&self) -> Vec<Gap> {
        let mut runs = self.runs.clone();
        runs.sort_by_key(|(_, t)| super::tree::ns(t).unwrap_or(i64::MIN));
        let mut out: Vec<Gap> = Vec::new();
        for (start, ts) in runs {
            match (start, out.last_mut()) {
                (true, Some(g)) if g.to.is_none() => g.to = Some(ts),
                (false, _) => out.push(Gap { from: ts, to: None }),
                _ => {}
            }
        }
        out
    }
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
    /// Lines that name a chosen process but do not parse (pass one only looked at their start).
    pub damaged: u64,
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
            let v = match parse(l) {
                Ok(v) => v,
                // Pass one counted it, unless its quick look passed (a line damaged inside).
                Err(_) => {
                    if quick(l).is_some() {
                        out.damaged += 1;
                    }
                    return;
                }
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::investigate::read::{open_all, Input, InputProblems};

    /// `lines` as a record file in a folder of its own (removed by the caller), opened.
    fn record(tag: &str, lines: &[&str]) -> (std::path::PathBuf, Vec<Input>) {
        let d = std::env::temp_dir().join(format!("tprobe-inv-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("rec.json");
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        let mut problems = InputProblems::default();
        let inputs = open_all(&[p], &mut problems, &Progress::hidden()).unwrap();
        (d, inputs)
    }

    /// A process first met as another line's parent still gets the details of its own
    /// lines (no exec, fork or exit lines here, as with `--events file`).
    #[test]
    fn a_process_met_as_a_parent_learns_from_its_own_lines() {
        let lines = [
            r#"{"ts":"2026-01-01T00:00:01Z","kind":"file.open","seq":1,"host":{"name":"h"},"schema":"tprobe/1","process":{"pid":11,"tid":11,"entity_id":"kid","exe":"/bin/cat","cwd":"/k"},"parent":{"pid":10,"entity_id":"dad","exe":"/bin/sh"},"file":{"path":"/etc/x"}}"#,
            r#"{"ts":"2026-01-01T00:00:02Z","kind":"file.open","seq":2,"host":{"name":"h"},"schema":"tprobe/1","process":{"pid":10,"tid":10,"entity_id":"dad","exe":"/bin/sh","cwd":"/work","user":"alice","start_time":"2026-01-01T00:00:00Z"},"parent":{"pid":1,"entity_id":"init"},"file":{"path":"/etc/y"}}"#,
        ];
        let (d, mut inputs) = record("dad", &lines);
        let progress = Progress::hidden();
        let ix = index(&mut inputs, &progress);
        let dad = &ix.tree.nodes[ix.tree.get("dad").unwrap()];
        assert_eq!(dad.cwd.as_deref(), Some("/work"), "{dad:?}");
        assert_eq!(dad.user.as_deref(), Some("alice"));
        assert_eq!(dad.parent.as_deref(), Some("init"));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Both passes over a small file: the tree, an alert and a loss from pass one; pass two
    /// keeps only the chosen processes' events, and marks a response (which names its target,
    /// not an acting process) on the process it acted on.
    #[test]
    fn two_passes_collect_the_chosen_only() {
        let lines = [
            r#"{"ts":"2026-01-01T00:00:01Z","kind":"process.exec","seq":1,"host":{"name":"h"},"schema":"tprobe/1","process":{"pid":10,"tid":10,"args":["sh"],"start_time":"2026-01-01T00:00:01Z","entity_id":"aaaa"},"parent":{"pid":1,"entity_id":"init"}}"#,
            r#"{"ts":"2026-01-01T00:00:02Z","kind":"process.exec","seq":2,"host":{"name":"h"},"schema":"tprobe/1","process":{"pid":11,"tid":11,"args":["curl"],"start_time":"2026-01-01T00:00:02Z","entity_id":"bbbb"},"parent":{"pid":10,"entity_id":"aaaa"}}"#,
            r#"{"ts":"2026-01-01T00:00:03Z","kind":"net.connect","seq":3,"host":{"name":"h"},"schema":"tprobe/1","process":{"pid":11,"tid":11,"entity_id":"bbbb"},"net":{"transport":"tcp","dst":{"ip":"10.0.0.1","port":443,"domain":"x.test"}},"result":{"ok":true}}"#,
            // Damaged inside, whole at both ends: only pass two can tell.
            r#"{"ts":"2026-01-01T00:00:03Z","kind":"file.open","seq":3,"host":{"name":"h"},"schema":"tprobe/1","process":{"pid":11,"tid":11,"entity_id":"bbbb"},"file":{"path":"/x" "garbage"}}"#,
            r#"{"ts":"2026-01-01T00:00:03Z","kind":"file.open","seq":4,"host":{"name":"h"},"schema":"tprobe/1","process":{"pid":99,"tid":99,"entity_id":"other"},"file":{"path":"/etc/x","flags":["O_WRONLY"]}}"#,
            r#"{"ts":"2026-01-01T00:00:04Z","kind":"alert","seq":5,"host":{"name":"h"},"schema":"tprobe/1","alert":{"rule":{"id":"r","title":"T","level":"high"},"matched":{"kind":"net.connect","seq":3}},"process":{"pid":11,"tid":11,"entity_id":"bbbb"}}"#,
            r#"{"ts":"2026-01-01T00:00:05Z","kind":"response.kill","seq":6,"host":{"name":"h"},"schema":"tprobe/1","response":{"action":"kill","target":{"pid":11,"entity_id":"bbbb"},"trigger":{"rule_id":"r","alert_seq":5},"dry_run":false,"ok":true}}"#,
            r#"{"ts":"2026-01-01T00:00:05.5Z","kind":"probe.stop","seq":7,"host":{"name":"h"},"schema":"tprobe/1","probe":{}}"#,
            r#"{"ts":"2026-01-01T00:00:05.8Z","kind":"probe.start","seq":1,"host":{"name":"h"},"schema":"tprobe/1","probe":{}}"#,
            r#"{"ts":"2026-01-01T00:00:06Z","kind":"probe.loss","seq":7,"host":{"name":"h"},"schema":"tprobe/1","loss":{"source":"ringbuf","kind":"file.open","count":3,"since":"2026-01-01T00:00:02Z"}}"#,
        ];
        let (d, mut inputs) = record("scan", &lines);
        let progress = Progress::hidden();
        let ix = index(&mut inputs, &progress);
        assert_eq!(ix.lines, 10);
        assert_eq!(
            ix.gaps(),
            vec![Gap {
                from: "2026-01-01T00:00:05.5Z".into(),
                to: Some("2026-01-01T00:00:05.8Z".into())
            }]
        );
        assert_eq!(ix.bad.total(), 0);
        assert_eq!(ix.alerts.len(), 1);
        assert_eq!(ix.alerts[0].1.as_deref(), Some("bbbb"));
        assert_eq!(ix.losses[0].count, 3);
        let (a, b) = (ix.tree.get("aaaa").unwrap(), ix.tree.get("bbbb").unwrap());
        let got = collect(
            &mut inputs,
            &ix.tree,
            &[a, b],
            &Limits {
                items: 10,
                events: 100,
            },
            &progress,
        );
        let curl = &got.activity[&b];
        assert_eq!(
            curl.groups["connections"].items[0].what,
            "connect tcp 10.0.0.1:443 (x.test)"
        );
        assert_eq!(curl.alerts[0].title.as_deref(), Some("T"));
        assert_eq!(curl.responses[0].action.as_deref(), Some("kill"));
        assert_eq!(curl.responses[0].alert_seq, Some(5));
        assert!(got
            .timeline
            .iter()
            .all(|e| e.entity_id.as_deref() != Some("other")));
        assert_eq!(got.timeline.len(), 5, "{:?}", got.timeline);
        assert_eq!(got.damaged, 1);
        let _ = std::fs::remove_dir_all(&d);
    }
}
