//! The storyline model every renderer reads (and `--format json` prints as it is).
use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::{
    activity::{Activity, AlertMark},
    line::BadCounts,
    scan::{Collected, Entry, Gap, Index, Loss},
    select::Chosen,
    tree::{ns, Proc, Tree},
};

#[derive(Debug, Serialize)]
pub struct Report {
    /// `tprobe-investigate/1`: the version of this document's layout.
    pub format: &'static str,
    pub input: InputSummary,
    pub storylines: Vec<Storyline>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Truncated {
    pub file: String,
    /// Lines read before the data ended.
    pub lines: u64,
}

#[derive(Debug, Serialize)]
pub struct InputSummary {
    pub files: Vec<String>,
    pub lines: u64,
    /// Lines left out, by reason.
    pub skipped: BadCounts,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<Truncated>,
    pub processes: usize,
    /// Lines of the chosen processes that looked whole but did not parse.
    #[serde(skip_serializing_if = "is_zero")]
    pub damaged: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl InputSummary {
    /// The one line that reports what was left out, if anything was.
    pub fn problems_line(&self) -> Option<String> {
        let mut parts = Vec::new();
        let s = &self.skipped;
        let mut count = |n: u64, what: &str| {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        };
        count(s.not_json, "not JSON");
        count(s.ecs, "ECS (use the native format)");
        count(s.ocsf, "OCSF (use the native format)");
        count(s.foreign, "JSON but not tprobe events");
        let mut out = Vec::new();
        if !parts.is_empty() {
            out.push(format!("skipped {} lines: {}", s.total(), parts.join(", ")));
        }
        if self.damaged > 0 {
            out.push(format!(
                "{} lines of these processes are damaged (not JSON) and left out",
                self.damaged
            ));
        }
        for t in &self.truncated {
            out.push(format!(
                "{}: data ends early (truncated gzip?) after {} lines",
                t.file, t.lines
            ));
        }
        for u in &self.unreadable {
            out.push(format!("cannot read {u}"));
        }
        (!out.is_empty()).then(|| out.join("; "))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Span {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Node {
    #[serde(flatten)]
    pub proc: Proc,
    /// True for the storyline's target.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub target: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

#[derive(Debug, Serialize)]
pub struct Storyline {
    pub target: String,
    /// The alerts that made this process a target (`--alert`, `--rule`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub because: Vec<AlertMark>,
    /// Root first, the target's parent last.
    pub ancestors: Vec<Proc>,
    /// The target and its descendants.
    pub tree: Node,
    pub processes: usize,
    /// Descendants left out by `--max-processes`.
    #[serde(skip_serializing_if = "is_zero")]
    pub processes_more: u64,
    /// From the first start to the last end or event of the covered processes.
    pub covered: Span,
    /// `probe.loss` reports that overlap the covered time: events may be missing there.
    pub losses: Vec<Loss>,
    /// Times within the covered time the probe was not running (a stop, then a start).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Entry>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeline_more: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn earliest<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if ns(y) < ns(x) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn latest<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if ns(y) > ns(x) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

pub struct Builder<'a> {
    pub ix: &'a Index,
    pub children: &'a [Vec<usize>],
    pub collected: &'a mut Collected,
    /// Whether timelines are wanted (`--timeline`, HTML).
    pub timeline: bool,
}

impl Builder<'_> {
    /// `left`: the members not placed yet. Each is placed once, so damaged records whose
    /// parent links form a loop end instead of recursing forever.
    fn node(&mut self, i: usize, left: &mut HashSet<usize>, target: usize) -> Node {
        let tree: &Tree = &self.ix.tree;
        let mut kids: Vec<usize> = self.children[i]
            .iter()
            .copied()
            .filter(|c| left.remove(c))
            .collect();
        kids.sort_by_key(|&c| tree.nodes[c].start_ns().unwrap_or(i64::MAX));
        let children = kids
            .into_iter()
            .map(|c| self.node(c, left, target))
            .collect();
        Node {
            proc: tree.nodes[i].clone(),
            target: i == target,
            activity: self.collected.activity.get(&i).cloned(),
            children,
        }
    }

    pub fn storyline(&mut self, chosen: &Chosen, members: &[usize], more: u64) -> Storyline {
        let tree = &self.ix.tree;
        let mut left: HashSet<usize> = members.iter().copied().collect();
        left.remove(&chosen.node);
        let mut ancestors: Vec<Proc> = tree
            .ancestors(chosen.node)
            .into_iter()
            .map(|i| tree.nodes[i].clone())
            .collect();
        ancestors.reverse();
        // Covered time: starts, ends and events of the covered processes.
        let (mut from, mut to): (Option<&str>, Option<&str>) = (None, None);
        for &i in members {
            let n = &tree.nodes[i];
            let a = self.collected.activity.get(&i);
            from = earliest(from, n.start.as_deref());
            from = earliest(from, a.and_then(|a| a.first_seen.as_deref()));
            to = latest(to, n.end.as_deref());
            to = latest(to, a.and_then(|a| a.last_seen.as_deref()));
        }
        let (f, t) = (from.and_then(ns), to.and_then(ns));
        let losses: Vec<Loss> = self
            .ix
            .losses
            .iter()
            .filter(|l| {
                let end = ns(&l.ts);
                let start = l.since.as_deref().and_then(ns).or(end);
                // Overlaps [from, to]; an unknown bound does not exclude.
                f.is_none_or(|f| end.is_none_or(|e| e >= f))
                    && t.is_none_or(|t| start.is_none_or(|s| s <= t))
            })
            .cloned()
            .collect();
        let gaps: Vec<Gap> = self
            .ix
            .gaps()
            .into_iter()
            .filter(|g| {
                let start = ns(&g.from);
                let end = g.to.as_deref().and_then(ns);
                f.is_none_or(|f| end.is_none_or(|e| e >= f))
                    && t.is_none_or(|t| start.is_none_or(|s| s <= t))
            })
            .collect();
        let covered = Span {
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
        };
        let timeline = self.timeline.then(|| {
            let ids: HashMap<&str, ()> = members
                .iter()
                .map(|&i| (tree.nodes[i].entity_id.as_str(), ()))
                .collect();
            let mut tl: Vec<Entry> = self
                .collected
                .timeline
                .iter()
                .filter(|e| e.entity_id.as_deref().is_some_and(|x| ids.contains_key(x)))
                .cloned()
                .collect();
            tl.extend(losses.iter().map(|l| Entry {
                ts: l.ts.clone(),
                entity_id: None,
                pid: None,
                name: None,
                kind: "probe.loss".into(),
                what: format!("{} events lost ({}, {})", l.count, l.source, l.kind),
            }));
            // Stable: events of one time keep the record's order.
            tl.sort_by_key(|e| ns(&e.ts).unwrap_or(i64::MIN));
            tl
        });
        let timeline_more = if self.timeline {
            self.collected.timeline_more
        } else {
            0
        };
        Storyline {
            target: tree.nodes[chosen.node].entity_id.clone(),
            because: chosen.alerts.clone(),
            ancestors,
            tree: self.node(chosen.node, &mut left, chosen.node),
            processes: members.len(),
            processes_more: more,
            covered,
            losses,
            gaps,
            timeline,
            timeline_more,
        }
    }
}
