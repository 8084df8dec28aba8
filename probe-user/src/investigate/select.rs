//! Targets: which process a storyline is told around, and which processes it covers.
use std::collections::HashSet;

use super::{activity::AlertMark, scan::Index, tree::ns, InvestigateError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Entity(String),
    /// The instance of `pid` alive at `at` (RFC 3339); without `at`, the last one started.
    Pid {
        pid: u32,
        at: Option<String>,
    },
    /// The matched process of the alert(s) with this seq (seq restarts with every probe run).
    Alert(u64),
    /// Every alert of the rule, one storyline per matched process.
    Rule(String),
}

/// One storyline to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub node: usize,
    /// The alerts that made it a target.
    pub alerts: Vec<AlertMark>,
    /// Said on stderr, e.g. that a pid had several instances.
    pub note: Option<String>,
}

/// Parses `--at`: RFC 3339, or a date and time without a zone taken as UTC.
pub fn parse_at(s: &str) -> Result<i64, InvestigateError> {
    if let Some(t) = ns(s) {
        return Ok(t);
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            if let Some(n) = t.and_utc().timestamp_nanos_opt() {
                return Ok(n);
            }
        }
    }
    Err(InvestigateError::BadTime(s.to_owned()))
}

pub fn resolve(target: &Target, ix: &Index) -> Result<Vec<Chosen>, InvestigateError> {
    let tree = &ix.tree;
    let one = |node| {
        Ok(vec![Chosen {
            node,
            alerts: Vec::new(),
            note: None,
        }])
    };
    match target {
        Target::Entity(e) => match tree.get(e) {
            Some(i) => one(i),
            None => Err(InvestigateError::NoEntity(e.clone())),
        },
        Target::Pid { pid, at } => {
            let all = tree.with_pid(*pid);
            if all.is_empty() {
                return Err(InvestigateError::NoPid(*pid));
            }
            let latest = |c: &[usize]| {
                c.iter()
                    .copied()
                    .max_by_key(|&i| tree.nodes[i].start_ns().unwrap_or(i64::MIN))
            };
            match at {
                Some(at) => {
                    let t = parse_at(at)?;
                    let alive: Vec<usize> = all
                        .iter()
                        .copied()
                        .filter(|&i| tree.nodes[i].alive_at(t))
                        .collect();
                    match latest(&alive) {
                        Some(i) => one(i),
                        None => Err(InvestigateError::NoPidAt {
                            pid: *pid,
                            at: at.clone(),
                        }),
                    }
                }
                None => {
                    let i = latest(&all).expect("not empty");
                    let note = (all.len() > 1).then(|| {
                        format!(
                            "pid {pid} was {} processes in these files; showing the last started ({}); choose another with --at",
                            all.len(),
                            tree.nodes[i].start.as_deref().unwrap_or("start unknown")
                        )
                    });
                    Ok(vec![Chosen {
                        node: i,
                        alerts: Vec::new(),
                        note,
                    }])
                }
            }
        }
        Target::Alert(seq) => {
            let hits: Vec<_> = ix
                .alerts
                .iter()
                .filter(|(a, _)| a.seq == Some(*seq))
                .collect();
            if hits.is_empty() {
                return Err(InvestigateError::NoAlert(*seq));
            }
            let mut out = group(hits.iter().map(|(a, e)| (a, e.as_deref())), tree);
            if out.is_empty() {
                return Err(InvestigateError::AlertWithoutProcess(*seq));
            }
            if hits.len() > 1 {
                out[0].note = Some(format!(
                    "{} alerts have seq {seq} (seq restarts with every probe run): one storyline each",
                    hits.len()
                ));
            }
            Ok(out)
        }
        Target::Rule(id) => {
            let out = group(
                ix.alerts
                    .iter()
                    .filter(|(a, _)| a.rule_id.as_deref() == Some(id.as_str()))
                    .map(|(a, e)| (a, e.as_deref())),
                tree,
            );
            if out.is_empty() {
                return Err(InvestigateError::NoRule(id.clone()));
            }
            Ok(out)
        }
    }
}

/// One storyline per matched process, in the order of its first alert.
fn group<'a>(
    alerts: impl Iterator<Item = (&'a AlertMark, Option<&'a str>)>,
    tree: &super::tree::Tree,
) -> Vec<Chosen> {
    let mut out: Vec<Chosen> = Vec::new();
    for (a, e) in alerts {
        let Some(i) = e.and_then(|e| tree.get(e)) else {
            continue;
        };
        match out.iter_mut().find(|c| c.node == i) {
            Some(c) => c.alerts.push(a.clone()),
            None => out.push(Chosen {
                node: i,
                alerts: vec![a.clone()],
                note: None,
            }),
        }
    }
    out
}

/// The processes a storyline covers: the target and its descendants (breadth first, at most
/// `max`), and whether some were left out.
pub fn subtree(node: usize, children: &[Vec<usize>], max: usize) -> (Vec<usize>, u64) {
    let mut out = vec![node];
    let mut seen: HashSet<usize> = HashSet::from([node]);
    let mut more = 0u64;
    let mut i = 0;
    while i < out.len() {
        for &c in &children[out[i]] {
            if !seen.insert(c) {
                continue;
            }
            if out.len() < max {
                out.push(c);
            } else {
                more += 1;
            }
        }
        i += 1;
    }
    (out, more)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn index() -> Index {
        let mut ix = Index::default();
        let p = |pid: u32, eid: &str, start: &str, parent: Option<&str>| {
            let mut v = json!({"ts": start, "kind": "process.exec",
                "process": {"pid": pid, "tid": pid, "start_time": start, "entity_id": eid}});
            if let Some(par) = parent {
                v["parent"] = json!({"pid": 1, "entity_id": par});
            }
            v
        };
        // pid 100 used twice: the first instance exits at :05.
        ix.tree.ingest(&p(1, "init", "2026-01-01T00:00:00Z", None));
        ix.tree
            .ingest(&p(100, "first", "2026-01-01T00:00:01Z", Some("init")));
        ix.tree.ingest(
            &json!({"ts": "2026-01-01T00:00:05Z", "kind": "process.exit",
            "process": {"pid": 100, "tid": 100, "entity_id": "first"}, "exit": {"code": 0}}),
        );
        ix.tree
            .ingest(&p(100, "second", "2026-01-01T00:00:09Z", Some("init")));
        ix.tree
            .ingest(&p(200, "kid", "2026-01-01T00:00:10Z", Some("second")));
        let alert = |seq: u64, rule: &str| AlertMark {
            seq: Some(seq),
            ts: "2026-01-01T00:00:11Z".into(),
            rule_id: Some(rule.into()),
            title: None,
            level: None,
            source: None,
            matched: None,
        };
        ix.alerts = vec![
            (alert(7, "r1"), Some("kid".into())),
            (alert(8, "r1"), Some("kid".into())),
            (alert(9, "r1"), Some("first".into())),
            (alert(10, "r2"), None),
        ];
        ix
    }

    fn eid(ix: &Index, c: &[Chosen]) -> Vec<String> {
        c.iter()
            .map(|c| ix.tree.nodes[c.node].entity_id.clone())
            .collect()
    }

    #[test]
    fn targets_resolve() {
        let ix = index();
        let r = |t: Target| resolve(&t, &ix);
        assert_eq!(eid(&ix, &r(Target::Entity("kid".into())).unwrap()), ["kid"]);
        let at = |s: &str| Target::Pid {
            pid: 100,
            at: Some(s.into()),
        };
        assert_eq!(eid(&ix, &r(at("2026-01-01T00:00:03Z")).unwrap()), ["first"]);
        assert_eq!(eid(&ix, &r(at("2026-01-01 00:00:12")).unwrap()), ["second"]);
        assert!(matches!(
            r(at("2026-01-01T00:00:07Z")),
            Err(InvestigateError::NoPidAt { .. })
        ));
        let last = r(Target::Pid { pid: 100, at: None }).unwrap();
        assert_eq!(eid(&ix, &last), ["second"]);
        assert!(last[0].note.as_deref().unwrap().contains("--at"));
        assert_eq!(eid(&ix, &r(Target::Alert(9)).unwrap()), ["first"]);
        let rule = r(Target::Rule("r1".into())).unwrap();
        assert_eq!(eid(&ix, &rule), ["kid", "first"]);
        assert_eq!(
            rule[0].alerts.len(),
            2,
            "two alerts of one process: one storyline"
        );
        let e = r(Target::Entity("nope".into())).unwrap_err().to_string();
        assert_eq!(e, "no process with entity_id nope in these files");
        assert!(matches!(
            r(Target::Alert(1)),
            Err(InvestigateError::NoAlert(1))
        ));
        assert!(matches!(
            r(Target::Alert(10)),
            Err(InvestigateError::AlertWithoutProcess(10))
        ));
        assert!(matches!(
            r(Target::Rule("x".into())),
            Err(InvestigateError::NoRule(_))
        ));
        assert!(matches!(
            r(Target::Pid { pid: 5, at: None }),
            Err(InvestigateError::NoPid(5))
        ));
        assert!(parse_at("yesterday").is_err());
    }

    #[test]
    fn subtree_is_breadth_first_and_bounded() {
        let ch = vec![vec![1, 2], vec![3], vec![], vec![]];
        assert_eq!(subtree(0, &ch, 10), (vec![0, 1, 2, 3], 0));
        assert_eq!(subtree(0, &ch, 2), (vec![0, 1], 2));
        assert_eq!(subtree(1, &ch, 10), (vec![1, 3], 0));
    }
}
