//! The analyze stage, between enrichment and the output filter: it reads every enriched event
//! the loaded rules need and adds `alert` events of its own. Its rooms: `rules` (Sigma, through
//! `rsigma-eval`), `ioc` (indicator lists), `fields` (the Sigma mapping), `view` (an event as
//! the engine sees it), `attack` (ATT&CK from tags), `baseline` (learned profiles per
//! workload), `respond` (actions on alerts, the exec deny list).
mod anchored;
pub mod attack;
pub mod baseline;
#[cfg(test)]
mod bench;
mod correlate;
pub mod fields;
pub mod ioc;
mod partition;
mod quiet;
pub mod respond;
pub mod rules;
pub mod view;
mod walk;

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
};

use probe_common::EventKind;

use crate::event::{
    alert::{AlertSource, IocHit, RuleInfo},
    Alert, Body, Event,
};
use baseline::Baseline;
use ioc::{IocError, IocSet};
use rules::{RuleSet, RulesError};
use view::{Render, View};

/// One event in this many is timed for [`EVAL_SECONDS`] and the stage's `eval_seconds`.
const EVAL_SAMPLE: u64 = 16;

/// Seconds spent analysing one event (rules and lists together), of the events timed.
static EVAL_SECONDS: std::sync::LazyLock<prometheus_client::metrics::histogram::Histogram> =
    std::sync::LazyLock::new(|| {
        crate::service::prom::histogram(
            "tprobe_rule_eval_seconds",
            "Time the analyze stage spent on one event (one event in 16 is timed)",
            prometheus_client::metrics::histogram::exponential_buckets(1e-7, 4.0, 10),
        )
    });

/// What the config asks the stage to load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalyzeConfig {
    /// `--rules`: Sigma rule files or folders.
    pub rules: Vec<PathBuf>,
    /// `--ioc`: indicator lists.
    pub ioc: Vec<PathBuf>,
    /// `--baseline DIR`: learned profiles per workload.
    pub baseline: Option<baseline::BaselineConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Ioc(#[from] IocError),
    #[error(transparent)]
    Baseline(#[from] baseline::BaselineError),
}

/// Counters for `probe.stop` and `/metrics`.
#[derive(Default)]
pub struct AnalyzeStats {
    pub evaluated: AtomicU64,
    pub alerts: AtomicU64,
    /// Nanoseconds spent evaluating rules and lists.
    pub eval_ns: AtomicU64,
}

pub struct Analyzer {
    rules: Option<RuleSet>,
    ioc: Option<IocSet>,
    /// `--baseline` was given: its kinds are asked for even before the profiles are open.
    wants_baseline: bool,
    baseline: Option<Baseline>,
    dev_buf: Vec<baseline::Deviation>,
    pub stats: Arc<AnalyzeStats>,
}

impl Analyzer {
    /// Loads what `cfg` names; `dotted_ok` says whether a dotted field exists in the schema.
    pub fn load(cfg: &AnalyzeConfig) -> Result<Analyzer, AnalyzeError> {
        let rules = if cfg.rules.is_empty() {
            None
        } else {
            let loaded = rules::load(&cfg.rules, &crate::schema::has_field)?;
            if !loaded.refused.is_empty() {
                return Err(RulesError::Refused(loaded.refused).into());
            }
            Some(RuleSet::build(loaded)?)
        };
        let ioc = if cfg.ioc.is_empty() {
            None
        } else {
            let set = IocSet::load(&cfg.ioc)?;
            for b in &set.bad_lines {
                log::warn!("{b}");
            }
            Some(set)
        };
        Ok(Analyzer {
            rules,
            ioc,
            wants_baseline: cfg.baseline.is_some(),
            baseline: None,
            dev_buf: Vec::new(),
            stats: Default::default(),
        })
    }

    /// Opens the profile folder `--baseline` names (at start; a reload keeps the running
    /// baseline, see [`Analyzer::take_baseline`]).
    pub fn open_baseline(&mut self, cfg: &AnalyzeConfig) -> Result<(), AnalyzeError> {
        if let Some(b) = &cfg.baseline {
            self.baseline = Some(Baseline::open(b)?);
        }
        Ok(())
    }

    /// The running baseline, handed from the analyzer a reload replaces to the new one.
    pub fn take_baseline(&mut self) -> Option<Baseline> {
        self.baseline.take()
    }

    pub fn put_baseline(&mut self, b: Option<Baseline>) {
        if self.wants_baseline {
            self.baseline = b;
        } else if let Some(mut b) = b {
            b.flush(chrono::Utc::now().timestamp());
        }
    }

    pub fn baseline(&self) -> Option<&Baseline> {
        self.baseline.as_ref()
    }

    /// Writes the profiles that changed (at exit).
    pub fn flush(&mut self) {
        if let Some(b) = &mut self.baseline {
            b.flush(chrono::Utc::now().timestamp());
        }
    }

    pub fn is_noop(&self) -> bool {
        self.rules.is_none()
            && self.ioc.as_ref().is_none_or(IocSet::is_empty)
            && !self.wants_baseline
    }

    /// The kinds the kernel must send for the rules and lists, whatever `--events` shows.
    pub fn kinds(&self) -> Vec<EventKind> {
        let mut k: Vec<EventKind> = self
            .rules
            .as_ref()
            .map(|r| r.kinds.clone())
            .unwrap_or_default();
        if let Some(i) = &self.ioc {
            if i.has_hashes() {
                k.push(EventKind::ProcessExec);
            }
            if i.has_addresses() {
                k.extend([
                    EventKind::NetConnect,
                    EventKind::NetAccept,
                    EventKind::FlowEnd,
                ]);
            }
            if i.has_domains() {
                k.extend([EventKind::NetDns, EventKind::NetConnect]);
            }
        }
        if self.wants_baseline {
            k.extend(Baseline::kinds());
        }
        k.sort();
        k.dedup();
        k
    }

    /// For `probe.start`.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "rules": self.rules.as_ref().map_or(0, |r| r.rule_count),
            "correlations": self.rules.as_ref().map_or(0, |r| r.correlations),
            "rules_per_category": self.rules.as_ref().map(|r| r.per_category.clone()).unwrap_or_default(),
            "ioc": self.ioc.as_ref().map_or(0, IocSet::len),
            "ioc_bad_lines": self.ioc.as_ref().map_or(0, |i| i.bad_lines.len()),
            "kinds": self.kinds().iter().map(|k| k.name()).collect::<Vec<_>>(),
            "baseline": self.baseline.as_ref().map(Baseline::summary),
        })
    }

    /// For `probe.stop`.
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "evaluated": self.stats.evaluated.load(Relaxed),
            "alerts": self.stats.alerts.load(Relaxed),
            "eval_seconds": self.stats.eval_ns.load(Relaxed) as f64 / 1e9,
            "correlation_groups": self.rules.as_ref().map_or(0, RuleSet::state_entries),
            "correlation_groups_evicted": self.rules.as_ref().map_or(0, RuleSet::evicted),
            "baseline": self.baseline.as_ref().map(Baseline::report),
        })
    }

    /// Looks at one enriched event; alerts go to `out`. `seq` is the seq the event is written
    /// with, `None` when it is analysed but not emitted.
    pub fn analyze(
        &mut self,
        ev: &Event,
        seq: Option<u64>,
        ts_secs: i64,
        render: &dyn Render,
        out: &mut Vec<Event>,
    ) {
        let Some(kind) = ev.data_kind() else {
            return;
        };
        if self.is_noop() {
            return;
        }
        // Two clock reads cost a connect a sixth of its analysis: one event in EVAL_SAMPLE is
        // timed, and stands for the others in the sum.
        let timed = self
            .stats
            .evaluated
            .load(Relaxed)
            .is_multiple_of(EVAL_SAMPLE);
        let t0 = timed.then(std::time::Instant::now);
        let before = out.len();
        if let Some(rules) = &mut self.rules {
            let made = view::Made::default();
            let class = crate::event::objects::body_class(&ev.body);
            let mut hits = Vec::new();
            // By index: `evaluate` borrows the rule set mutably.
            for i in 0..rules.routes(kind).len() {
                let rules::Route {
                    product,
                    category,
                    engine,
                } = rules.routes(kind)[i];
                if !fields::belongs(ev, category) {
                    continue;
                }
                let table = rules.probe_keys(engine);
                let keys = table.get(class).unwrap_or(&view::NO_KEYS);
                let view = View::new(ev, product, category, seq, render, &made, keys);
                rules.evaluate(engine, &view, seq, ts_secs, &mut hits);
                for h in hits.drain(..) {
                    out.push(alert(
                        ev,
                        AlertSource::Sigma,
                        h.info,
                        seq,
                        h.group,
                        h.contributing,
                        None,
                    ));
                }
            }
        }
        if let Some(ioc) = &self.ioc {
            for (hit, info) in ioc_hits(ioc, ev) {
                out.push(alert(
                    ev,
                    AlertSource::Ioc,
                    info,
                    seq,
                    Vec::new(),
                    Vec::new(),
                    Some(hit),
                ));
            }
        }
        if let Some(b) = &mut self.baseline {
            let mut devs = std::mem::take(&mut self.dev_buf);
            b.observe(ev, ts_secs, &mut devs);
            for d in devs.drain(..) {
                let mut a = alert(
                    ev,
                    AlertSource::Baseline,
                    d.rule,
                    seq,
                    Vec::new(),
                    Vec::new(),
                    None,
                );
                if let Body::Alert(al) = &mut a.body {
                    al.baseline = Some(d.hit);
                }
                out.push(a);
            }
            self.dev_buf = devs;
        }
        self.stats.evaluated.fetch_add(1, Relaxed);
        if let Some(t0) = t0 {
            let spent = t0.elapsed();
            self.stats
                .eval_ns
                .fetch_add(spent.as_nanos() as u64 * EVAL_SAMPLE, Relaxed);
            EVAL_SECONDS.observe(spent.as_secs_f64());
        }
        let n = (out.len() - before) as u64;
        if n > 0 {
            self.stats.alerts.fetch_add(n, Relaxed);
            for a in &out[before..] {
                if let Body::Alert(a) = &a.body {
                    crate::service::prom::alert(&a.rule.id, &a.rule.level).inc();
                }
            }
        }
    }

    pub fn rules(&self) -> Option<&RuleSet> {
        self.rules.as_ref()
    }
}

/// The SHA-256 of a hash cell, once the worker has filled it in.
fn sha256(cell: Option<&crate::event::process::HashCell>) -> Option<&str> {
    match cell?.get()? {
        crate::event::process::HashOutcome::Sha256(h) => Some(h),
        _ => None,
    }
}

/// Every IoC the event's values hit.
fn ioc_hits(ioc: &IocSet, ev: &Event) -> Vec<(IocHit, Arc<RuleInfo>)> {
    let mut hits = Vec::new();
    if let (Body::Exec(_), Some(p)) = (&ev.body, ev.process.as_deref()) {
        if ioc.has_hashes() {
            if let Some(h) = sha256(p.hash.as_deref()) {
                hits.extend(ioc.match_hash(h, "process.hash.sha256"));
            }
            if let Some(h) = sha256(p.script_hash.as_deref()) {
                hits.extend(ioc.match_hash(h, "exec.hash.sha256"));
            }
        }
    }
    if let Body::Net(n) = &ev.body {
        if ioc.has_addresses() {
            if let Some(r) = n.remote {
                hits.extend(ioc.match_ip(r.ip(), "net.dst.ip"));
            }
        }
        if ioc.has_domains() {
            if let Some(q) = &n.dns {
                hits.extend(ioc.match_domain(&q.query, "dns.query"));
                for a in q.response.iter().flat_map(|r| &r.answers) {
                    if a.name != q.query {
                        hits.extend(ioc.match_domain(&a.name, "dns.answers.name"));
                    }
                }
            }
            if let Some(d) = &n.remote_domain {
                hits.extend(ioc.match_domain(d, "net.dst.domain"));
            }
        }
    }
    if let Body::Flow(f) = &ev.body {
        if ioc.has_addresses() {
            let (src, dst) = (f.src().ip(), f.dst().ip());
            let remote = match f.owner_side {
                Some("dst") => src,
                _ => dst,
            };
            hits.extend(ioc.match_ip(remote, "flow.dst.ip"));
        }
    }
    hits
}

fn alert(
    ev: &Event,
    source: AlertSource,
    rule: Arc<RuleInfo>,
    seq: Option<u64>,
    group: Vec<(String, String)>,
    contributing: Vec<u64>,
    ioc: Option<IocHit>,
) -> Event {
    Event {
        ts_ns: ev.ts_ns,
        task: ev.task.clone(),
        body: Body::Alert(Box::new(Alert {
            source,
            rule,
            matched_kind: ev.kind_name(),
            matched_seq: seq,
            matched: Some(Box::new(ev.body.clone())),
            group,
            contributing,
            ioc,
            baseline: None,
        })),
        process: ev.process.clone(),
        parent: ev.parent.clone(),
        ancestors: ev.ancestors.clone(),
        user: ev.user.clone(),
        container: ev.container.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, sync::Arc};

    use super::*;
    use crate::event::{
        net::NetBody,
        process::{ExecRecord, ProcessInfo},
        Task,
    };

    struct NoJson;
    impl Render for NoJson {
        fn render(&self, _: &Event) -> serde_json::Value {
            serde_json::json!({})
        }
    }

    fn connect(pid: u32, port: u16) -> Event {
        let dst: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        Event {
            ts_ns: 1,
            task: Some(Task {
                kind: EventKind::NetConnect,
                flags: 0,
                ts_ns: 1,
                pid,
                tid: pid,
                ppid: 1,
                uid: 0,
                gid: 0,
                cgroup_id: 1,
                start_ns: 1,
                parent_start_ns: 1,
                comm: b"scan".to_vec(),
                exec_id: 0,
                id: Default::default(),
            }),
            body: Body::Net(Box::new(NetBody {
                protocol: 6,
                family: 2,
                sock_type: 1,
                local: Some("127.0.0.1:40000".parse().unwrap()),
                remote: Some(dst),
                unix: None,
                direction: Some(crate::event::net::Direction::Outbound),
                fd: Some(3),
                ret: Some(0),
                backlog: None,
                state: None,
                dns: None,
                remote_domain: None,
            })),
            process: Some(Arc::new(ProcessInfo {
                pid,
                exe: Some(b"/usr/bin/scan".to_vec()),
                args: vec![b"scan".to_vec()],
                ..Default::default()
            })),
            parent: None,
            ancestors: None,
            user: None,
            container: None,
        }
    }

    /// An exec of `/usr/bin/true` by pid 1000 + `i` (also the rules bench's exec).
    pub(super) fn exec(i: u32) -> Event {
        let args: Vec<Vec<u8>> = vec![
            b"/usr/bin/true".to_vec(),
            format!("arg-{i}").into_bytes(),
            b"--flag".to_vec(),
        ];
        Event {
            ts_ns: 1,
            task: Some(Task {
                kind: EventKind::ProcessExec,
                flags: 0,
                ts_ns: 1,
                pid: 1000 + i,
                tid: 1000 + i,
                ppid: 999,
                uid: 0,
                gid: 0,
                cgroup_id: 1,
                start_ns: 1,
                parent_start_ns: 1,
                comm: b"true".to_vec(),
                exec_id: 0,
                id: Default::default(),
            }),
            body: Body::Exec(Box::new(ExecRecord {
                filename: b"/usr/bin/true".to_vec(),
                interp: b"/usr/bin/true".to_vec(),
                exe: b"/usr/bin/true".to_vec(),
                exe_truncated: false,
                exe_pseudo: false,
                cwd: Some(b"/tmp".to_vec()),
                cwd_truncated: false,
                cwd_deleted: false,
                args: args.clone(),
                args_truncated: false,
                nlink0: false,
                inode: None,
                kernel_deny: None,
            })),
            process: Some(Arc::new(ProcessInfo {
                pid: 1000 + i,
                exe: Some(b"/usr/bin/true".to_vec()),
                cwd: Some(b"/tmp".to_vec()),
                args,
                ..Default::default()
            })),
            parent: Some(Arc::new(ProcessInfo {
                pid: 999,
                exe: Some(b"/usr/bin/bash".to_vec()),
                args: vec![b"bash".to_vec()],
                ..Default::default()
            })),
            ancestors: None,
            user: Some("root".into()),
            container: None,
        }
    }

    /// A class that answers every name the rules read lets the index walk its own fields;
    /// one that lacks some offers only what it has.
    #[test]
    fn probe_keys_are_whole_only_when_the_class_answers_every_name_read() {
        use crate::event::objects::body_class;
        let used: std::collections::BTreeSet<String> =
            ["Image", "DestinationPort"].map(String::from).into();
        let net = view::probe_keys(body_class(&connect(7, 80).body), &used);
        assert!(net.whole, "{net:?}");
        let exec = view::probe_keys(body_class(&exec(1).body), &used);
        assert!(!exec.whole, "{exec:?}");
        assert_eq!(exec.names, ["Image"]);
    }

    /// The names offered to the engine's index cover every name an event can answer: a flat
    /// Sigma name the view gives a value for, and every object of its native record.
    #[test]
    fn probe_keys_cover_what_each_event_can_answer() {
        use super::fields::{DNS_FIELDS, FILE_FIELDS, NET_FIELDS, PROCESS_FIELDS};
        use crate::{encode::native::Native, event::objects::body_class};
        use rsigma_eval::event::Event as _;
        let flat: Vec<&str> = [PROCESS_FIELDS, FILE_FIELDS, NET_FIELDS, DNS_FIELDS].concat();
        let native = Native::new("h".into(), crate::clock::BootClock::measure());
        let mut dns = connect(8, 53);
        if let Body::Net(n) = &mut dns.body {
            n.dns = Some(crate::event::net::DnsQuery {
                query: "example.org".into(),
                qtype: "A".into(),
                id: 1,
                response: Some(crate::event::net::DnsResponse {
                    rcode: "NOERROR".into(),
                    answers: Vec::new(),
                    answers_truncated: false,
                }),
            });
        }
        for ev in [exec(1), connect(7, 80), dns] {
            let json = native.render(&ev);
            let mut used: std::collections::BTreeSet<String> =
                flat.iter().map(|s| s.to_string()).collect();
            used.extend(json.as_object().unwrap().keys().cloned());
            let keys = view::probe_keys(body_class(&ev.body), &used);
            let made = view::Made::default();
            let v = View::new(&ev, "linux", "x", Some(1), &native, &made, &keys);
            for f in &flat {
                if v.get_field(f).is_some() {
                    assert!(
                        keys.names.contains(f),
                        "{} answers {f} but does not offer it",
                        ev.kind_name()
                    );
                }
            }
            for k in json.as_object().unwrap().keys() {
                assert!(
                    keys.names.contains(&k.as_str()),
                    "{} has {k} but does not offer it",
                    ev.kind_name()
                );
            }
        }
    }

    /// An analyzer with these rules and nothing else.
    pub(super) fn analyzer(rules: Option<RuleSet>) -> Analyzer {
        Analyzer {
            rules,
            ioc: None,
            wants_baseline: false,
            baseline: None,
            dev_buf: Vec::new(),
            stats: Default::default(),
        }
    }

    fn rules(text: &str, cap: usize) -> RuleSet {
        let d = std::env::temp_dir().join(format!("tprobe-analyze-{}-{cap}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("r.yml");
        std::fs::write(&f, text).unwrap();
        let loaded = rules::load(&[f], &crate::schema::has_field).unwrap();
        assert!(loaded.refused.is_empty(), "{:?}", loaded.refused);
        RuleSet::build_capped(loaded, cap).unwrap()
    }

    const SCAN: &str = "title: connect
id: c0000000-0000-4000-8000-000000000001
logsource: {product: linux, category: network_connection}
detection:
  selection: {Initiated: 'true'}
  condition: selection
---
title: scan
id: c0000000-0000-4000-8000-000000000002
correlation:
  type: value_count
  rules: [c0000000-0000-4000-8000-000000000001]
  group-by: [ProcessId]
  timespan: 10s
  condition: {gte: 5, field: DestinationPort}
level: medium
";

    #[test]
    fn a_value_count_correlation_fires_once_per_group_and_its_state_is_capped() {
        let mut a = analyzer(Some(rules(SCAN, 1000)));
        let mut out = Vec::new();
        for port in 1..=8 {
            a.analyze(&connect(7, port), Some(port as u64), 100, &NoJson, &mut out);
        }
        assert_eq!(out.len(), 1, "one alert, then suppressed: {out:?}");
        let Body::Alert(al) = &out[0].body else {
            panic!()
        };
        assert_eq!(al.rule.id, "c0000000-0000-4000-8000-000000000002");
        assert_eq!(al.group, vec![("ProcessId".to_string(), "7".to_string())]);
        assert_eq!(al.contributing.len(), 5, "{:?}", al.contributing);
        // A small cap: many groups, evictions counted, memory bounded.
        let mut a = analyzer(Some(rules(SCAN, 10)));
        for pid in 1..=50 {
            a.analyze(&connect(pid, 80), None, 100, &NoJson, &mut out);
        }
        let r = a.rules().unwrap();
        assert!(r.state_entries() <= 10, "{}", r.state_entries());
        assert!(r.evicted() > 0);
    }

    /// The base rule only feeds the correlation, so it is matched outside the engine; with a
    /// filter rule naming it, the engine keeps it and applies the filter.
    #[test]
    fn a_rule_feeding_only_a_correlation_is_matched_outside_the_engine_unless_filtered() {
        const FILTER: &str = "---
title: not port 3
logsource: {product: linux, category: network_connection}
filter:
  rules: [c0000000-0000-4000-8000-000000000001]
  selection: {DestinationPort: 3}
  condition: not selection
";
        for (text, quiet, fired_at, seqs) in [
            (SCAN.to_string(), 1, 5, vec![1, 2, 3, 4, 5]),
            (format!("{SCAN}{FILTER}"), 0, 6, vec![1, 2, 4, 5, 6]),
        ] {
            let set = rules(&text, 1000);
            assert_eq!(set.quiet_rules(), quiet);
            let mut a = analyzer(Some(set));
            let mut out = Vec::new();
            let mut fired = None;
            for port in 1..=8 {
                a.analyze(&connect(7, port), Some(port as u64), 100, &NoJson, &mut out);
                if fired.is_none() && !out.is_empty() {
                    fired = Some(port);
                }
            }
            assert_eq!(fired, Some(fired_at), "{out:?}");
            let Body::Alert(al) = &out[0].body else {
                panic!()
            };
            assert_eq!(al.contributing, seqs);
        }
    }
}
