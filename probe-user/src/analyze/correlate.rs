//! Sigma correlations kept by tprobe itself: `event_count`, `value_count`, `temporal` and
//! `temporal_ordered` over a sliding `timespan`, per `group-by` group. rsigma's engine renders
//! each contributing event to JSON and recounts a `value_count` window entry by entry at every
//! event: a connect under the pack's port-scan rule cost 3 µs, 9 µs in a connect loop. Here an
//! event costs a few hash lookups. What this does not cover ([`supports`]) stays with rsigma.
use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use rsigma_eval::event::EventValue;
use rsigma_parser::{
    ConditionOperator, CorrelationCondition, CorrelationRule, CorrelationType, SigmaRule,
    WindowMode,
};

use super::view::{push_text, FieldRef, Fields};
use crate::event::alert::RuleInfo;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Entries one group's window keeps: one per distinct value and second (`value_count`), one
/// per second (`event_count`). A storm on one value adds one a second, so the cap is reached
/// only by thousands of distinct values in a window, where any sane condition was met long
/// before; beyond it the oldest go first.
pub const MAX_WINDOW: usize = 4096;

/// A correlation that fired for a group does not fire again for it within this many seconds.
pub const SUPPRESS_SECS: u64 = 60;
/// Seqs of contributing events kept per correlation alert.
pub const MAX_CONTRIBUTING: usize = 20;

/// One alert's worth of a rule match: the rule, and for a correlation its group and the seqs
/// of the events that made it.
#[derive(Debug)]
pub struct Hit {
    pub info: Arc<RuleInfo>,
    pub group: Vec<(String, String)>,
    pub contributing: Vec<u64>,
}

/// Why tprobe's correlations cannot take `c` (rsigma keeps it then), `None` when they can.
/// `rules` are the detection rules it may name.
pub fn supports(c: &CorrelationRule, rules: &[&SigmaRule]) -> Option<&'static str> {
    if !matches!(
        c.correlation_type,
        CorrelationType::EventCount
            | CorrelationType::ValueCount
            | CorrelationType::Temporal
            | CorrelationType::TemporalOrdered
    ) {
        return Some("numeric aggregation");
    }
    if c.window != WindowMode::Sliding || c.gap.is_some() {
        return Some("tumbling or session window");
    }
    if !c.aliases.is_empty() {
        return Some("aliases");
    }
    if c.custom_attributes.keys().any(|k| k.starts_with("rsigma.")) {
        return Some("rsigma attributes");
    }
    if c.timespan.seconds == 0 {
        return Some("no timespan");
    }
    match &c.condition {
        CorrelationCondition::Extended(_) => return Some("condition expression"),
        CorrelationCondition::Threshold { field, .. } => {
            if c.correlation_type == CorrelationType::ValueCount
                && field.as_ref().is_none_or(Vec::is_empty)
            {
                return Some("value_count without a field");
            }
        }
    }
    let named = |r: &String| {
        rules
            .iter()
            .any(|x| x.id.as_ref() == Some(r) || x.name.as_ref() == Some(r))
    };
    if c.rules.is_empty() || !c.rules.iter().all(named) {
        // Correlations of correlations, or names rsigma refuses with its reason.
        return Some("names other than detection rules");
    }
    None
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Count,
    Values,
    Temporal,
    Ordered,
}

struct Corr {
    info: Arc<RuleInfo>,
    kind: Kind,
    group_by: Vec<FieldRef>,
    /// `value_count`: the fields whose distinct values are counted.
    fields: Vec<FieldRef>,
    refs: usize,
    span: i64,
    /// All must hold for the correlation to fire.
    predicates: Vec<(ConditionOperator, u64)>,
}

impl Corr {
    fn met(&self, value: u64) -> bool {
        self.predicates.iter().all(|&(op, n)| match op {
            ConditionOperator::Lt => value < n,
            ConditionOperator::Lte => value <= n,
            ConditionOperator::Gt => value > n,
            ConditionOperator::Gte => value >= n,
            ConditionOperator::Eq => value == n,
            ConditionOperator::Neq => value != n,
        })
    }
}

enum Window {
    /// Per second, the events in it.
    Count {
        secs: VecDeque<(i64, u64)>,
        total: u64,
    },
    /// The distinct values (their [`Keys`] hash) and when each was last seen.
    Values(Values),
    /// Per named rule, its latest hit (`i64::MIN`: none).
    Temporal(Vec<i64>),
    /// Per named rule, the latest start of an in-order chain of hits that ends at it.
    Ordered(Vec<i64>),
}

impl Window {
    fn new(c: &Corr) -> Window {
        match c.kind {
            Kind::Count => Window::Count {
                secs: VecDeque::new(),
                total: 0,
            },
            Kind::Values => Window::Values(Values::Few(Vec::new())),
            Kind::Temporal => Window::Temporal(vec![i64::MIN; c.refs]),
            Kind::Ordered => Window::Ordered(vec![i64::MIN; c.refs]),
        }
    }

    fn evict(&mut self, cutoff: i64) {
        match self {
            Window::Count { secs, total } => {
                while secs.front().is_some_and(|&(t, _)| t < cutoff) {
                    *total -= secs.pop_front().map_or(0, |e| e.1);
                }
            }
            Window::Values(v) => v.evict(cutoff),
            Window::Temporal(_) | Window::Ordered(_) => {}
        }
    }

    /// Adds a hit of named rule `r`; the value the condition is checked against.
    fn push(&mut self, ts: i64, cutoff: i64, r: usize, value: Option<u64>, seq: u64) -> u64 {
        match self {
            Window::Count { secs, total } => {
                match secs.back_mut() {
                    Some((t, n)) if *t == ts => *n += 1,
                    _ => {
                        if secs.len() >= MAX_WINDOW {
                            *total -= secs.pop_front().map_or(0, |e| e.1);
                        }
                        secs.push_back((ts, 1));
                    }
                }
                *total += 1;
                *total
            }
            Window::Values(vals) => {
                if let Some(v) = value {
                    vals.push(ts, v, seq);
                }
                vals.len() as u64
            }
            Window::Temporal(last) => {
                last[r] = ts;
                last.iter().filter(|&&t| t >= cutoff).count() as u64
            }
            Window::Ordered(start) => {
                if r == 0 {
                    start[0] = ts;
                } else if start[r - 1] >= cutoff {
                    start[r] = start[r].max(start[r - 1]);
                }
                start.iter().filter(|&&t| t >= cutoff).count() as u64
            }
        }
    }
}

/// Up to this many distinct values a window is a plain list: most groups (a process and its
/// few ports) stay in one small allocation, scanned in a cache line or two, where a map, a
/// queue and the group's list of seqs were three allocations and a hash per event.
const FEW_VALUES: usize = 16;

/// The seq of an event that is analysed but not written.
const NO_SEQ: u64 = u64::MAX;

enum Values {
    /// Each value with its latest second and the seq of its latest event.
    Few(Vec<(u64, i64, u64)>),
    /// Beyond [`FEW_VALUES`]: per value its latest second, and the `(second, value, seq)`
    /// entries in arrival order, one per value and second, which expire from the front.
    Many(Box<Many>),
}

struct Many {
    entries: VecDeque<(i64, u64, u64)>,
    last: FastMap<u64, i64>,
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Few(v) => v.len(),
            Values::Many(m) => m.last.len(),
        }
    }

    fn evict(&mut self, cutoff: i64) {
        match self {
            Values::Few(v) => v.retain(|e| e.1 >= cutoff),
            Values::Many(m) => {
                let Many { entries, last } = &mut **m;
                while entries.front().is_some_and(|e| e.0 < cutoff) {
                    if let Some((t, v, _)) = entries.pop_front() {
                        forget(last, t, v);
                    }
                }
            }
        }
    }

    fn push(&mut self, ts: i64, v: u64, seq: u64) {
        match self {
            Values::Few(few) => {
                if let Some(e) = few.iter_mut().find(|e| e.0 == v) {
                    e.1 = ts;
                    e.2 = seq;
                    return;
                }
                if few.len() < FEW_VALUES {
                    few.push((v, ts, seq));
                    return;
                }
                let mut sorted = std::mem::take(few);
                sorted.sort_by_key(|e| (e.1, e.2));
                *self = Values::Many(Box::new(Many {
                    entries: sorted.iter().map(|&(v, t, s)| (t, v, s)).collect(),
                    last: sorted.into_iter().map(|(v, t, _)| (v, t)).collect(),
                }));
                self.push(ts, v, seq);
            }
            Values::Many(m) => {
                let Many { entries, last } = &mut **m;
                if last.insert(v, ts) == Some(ts) {
                    return;
                }
                if entries.len() >= MAX_WINDOW {
                    if let Some((t, old, _)) = entries.pop_front() {
                        forget(last, t, old);
                    }
                }
                entries.push_back((ts, v, seq));
            }
        }
    }

    /// Seqs of the newest contributing events, oldest first: per value its latest event while
    /// the list is small, the latest entries after.
    fn seqs(&self) -> Vec<u64> {
        let written = |&s: &u64| s != NO_SEQ;
        let mut out: Vec<u64> = match self {
            Values::Few(v) => v.iter().map(|e| e.2).filter(written).collect(),
            Values::Many(m) => m
                .entries
                .iter()
                .rev()
                .map(|e| e.2)
                .filter(written)
                .take(MAX_CONTRIBUTING)
                .collect(),
        };
        out.sort_unstable();
        out.dedup();
        let skip = out.len().saturating_sub(MAX_CONTRIBUTING);
        out.drain(..skip);
        out
    }
}

/// An expired entry takes its value out unless the value was seen again since.
fn forget(last: &mut FastMap<u64, i64>, t: i64, v: u64) {
    if last.get(&v) == Some(&t) {
        last.remove(&v);
    }
}

struct Group {
    /// Latest event, and when the correlation last fired for the group.
    last: i64,
    fired: Option<i64>,
    window: Window,
    /// Seqs of the contributing events still in the window, newest last (a value_count window
    /// keeps them with its values).
    seqs: VecDeque<(i64, u64)>,
}

/// The correlations of one engine part, with their state.
pub struct Correlations {
    corrs: Vec<Corr>,
    /// Per rule that feeds some correlation here, the `(correlation, position in its rules)`
    /// it feeds, and whether a correlation with `generate: false` names it (no alert of its own
    /// then); found by rule key (`rules::rule_key`) in `feed_ids`.
    feeds: Vec<(Vec<(usize, usize)>, bool)>,
    feed_ids: FastMap<String, usize>,
    /// Keyed by correlation and the [`Keys`] hash of the group-by values.
    groups: FastMap<(usize, u64), Group>,
    keys: Keys,
    max_groups: usize,
    pub evicted: u64,
    swept: i64,
}

impl Correlations {
    /// `corrs` passed [`supports`] against `rules`; `info` gives each one's metadata.
    pub fn new(
        corrs: &[&CorrelationRule],
        rules: &[&SigmaRule],
        info: &dyn Fn(&CorrelationRule) -> Arc<RuleInfo>,
        key: &dyn Fn(&SigmaRule) -> String,
        max_groups: usize,
    ) -> Correlations {
        let mut feeds: Vec<(Vec<(usize, usize)>, bool)> = Vec::new();
        let mut feed_ids: FastMap<String, usize> = FastMap::default();
        let mut out = Vec::new();
        for (i, c) in corrs.iter().enumerate() {
            for (pos, name) in c.rules.iter().enumerate() {
                for r in rules
                    .iter()
                    .filter(|r| r.id.as_ref() == Some(name) || r.name.as_ref() == Some(name))
                {
                    let id = *feed_ids.entry(key(r)).or_insert_with(|| {
                        feeds.push(Default::default());
                        feeds.len() - 1
                    });
                    let (f, quiet) = &mut feeds[id];
                    *quiet |= !c.generate;
                    if !f.contains(&(i, pos)) {
                        f.push((i, pos));
                    }
                }
            }
            let kind = match c.correlation_type {
                CorrelationType::EventCount => Kind::Count,
                CorrelationType::ValueCount => Kind::Values,
                CorrelationType::TemporalOrdered => Kind::Ordered,
                _ => Kind::Temporal,
            };
            let (fields, mut predicates) = match &c.condition {
                CorrelationCondition::Threshold {
                    predicates, field, ..
                } => (field.clone().unwrap_or_default(), predicates.clone()),
                // `supports` leaves condition expressions to rsigma.
                CorrelationCondition::Extended(_) => (Vec::new(), Vec::new()),
            };
            // A temporal correlation without a condition wants all its rules (the parser
            // writes that as `gte: 1`, which would be any one of them); an ordered one always
            // wants its whole chain.
            let no_condition = predicates == [(ConditionOperator::Gte, 1)];
            if kind == Kind::Ordered || kind == Kind::Temporal && no_condition {
                predicates = vec![(ConditionOperator::Gte, c.rules.len() as u64)];
            }
            out.push(Corr {
                info: info(c),
                kind,
                group_by: c.group_by.iter().map(|f| FieldRef::new(f)).collect(),
                fields: fields.iter().map(|f| FieldRef::new(f)).collect(),
                refs: c.rules.len(),
                span: c.timespan.seconds as i64,
                predicates,
            });
        }
        Correlations {
            corrs: out,
            feeds,
            feed_ids,
            groups: FastMap::default(),
            keys: Keys::default(),
            max_groups: max_groups.max(1),
            evicted: 0,
            swept: i64::MIN,
        }
    }

    /// Whether rule `rule_key` only feeds correlations here (`generate: false`), raising no
    /// alert of its own.
    pub fn is_quiet(&self, rule_key: &str) -> bool {
        self.feed_id(rule_key).is_some_and(|id| self.feeds[id].1)
    }

    /// What [`Correlations::feed_at`] knows rule `rule_key` by, when it feeds any correlation.
    pub fn feed_id(&self, rule_key: &str) -> Option<usize> {
        self.feed_ids.get(rule_key).copied()
    }

    /// Groups held.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Feeds a hit of rule `rule_key` on `view` (written as `seq`, at `ts` seconds); a
    /// correlation whose condition it meets goes to `out`. `true` when the rule raises no alert
    /// of its own.
    pub fn feed(
        &mut self,
        rule_key: &str,
        view: &impl Fields,
        seq: Option<u64>,
        ts: i64,
        out: &mut Vec<Hit>,
    ) -> bool {
        match self.feed_id(rule_key) {
            Some(id) => self.feed_at(id, view, seq, ts, out),
            None => false,
        }
    }

    /// [`Correlations::feed`] of the rule with `id` (from [`Correlations::feed_id`]).
    pub fn feed_at(
        &mut self,
        id: usize,
        view: &impl Fields,
        seq: Option<u64>,
        ts: i64,
        out: &mut Vec<Hit>,
    ) -> bool {
        let Some((feeds, quiet)) = self.feeds.get(id) else {
            return false;
        };
        // An idle node's groups of gone processes go within a minute.
        if ts.saturating_sub(self.swept) >= SUPPRESS_SECS as i64 {
            self.swept = ts;
            drop_expired(&mut self.groups, &self.corrs, ts);
        }
        for &(c, r) in feeds {
            let corr = &self.corrs[c];
            let value = match corr.kind {
                Kind::Values => match self.keys.distinct(view, &corr.fields) {
                    Some(v) => Some(v),
                    // Without the counted field the event is not counted (as rsigma).
                    None => continue,
                },
                _ => None,
            };
            let key = self.keys.group(view, &corr.group_by);
            if self.groups.len() >= self.max_groups && !self.groups.contains_key(&(c, key)) {
                make_room(
                    &mut self.groups,
                    &self.corrs,
                    self.max_groups,
                    ts,
                    &mut self.evicted,
                );
            }
            let g = self.groups.entry((c, key)).or_insert_with_key(|_| Group {
                last: ts,
                fired: None,
                window: Window::new(corr),
                seqs: VecDeque::new(),
            });
            let cutoff = ts - corr.span;
            g.last = g.last.max(ts);
            g.window.evict(cutoff);
            while g.seqs.front().is_some_and(|&(t, _)| t < cutoff) {
                g.seqs.pop_front();
            }
            // A value_count window keeps its events' seqs with its values.
            if let Some(s) = seq.filter(|_| corr.kind != Kind::Values) {
                if g.seqs.back().is_none_or(|&(_, b)| b != s) {
                    if g.seqs.len() >= MAX_CONTRIBUTING {
                        g.seqs.pop_front();
                    }
                    g.seqs.push_back((ts, s));
                }
            }
            let value = g.window.push(ts, cutoff, r, value, seq.unwrap_or(NO_SEQ));
            let suppressed = g.fired.is_some_and(|f| ts - f < SUPPRESS_SECS as i64);
            if !suppressed && corr.met(value) {
                g.fired = Some(ts);
                out.push(Hit {
                    info: corr.info.clone(),
                    group: group_pairs(view, &corr.group_by),
                    contributing: match &g.window {
                        Window::Values(v) => v.seqs(),
                        _ => g.seqs.iter().map(|e| e.1).collect(),
                    },
                });
            }
        }
        *quiet
    }
}

/// Nothing left in the window and not quiet any more: the group holds nothing.
fn expired(c: &Corr, g: &Group, now: i64) -> bool {
    g.last < now - c.span && g.fired.is_none_or(|f| f < now - SUPPRESS_SECS as i64)
}

fn drop_expired(groups: &mut FastMap<(usize, u64), Group>, corrs: &[Corr], now: i64) {
    groups.retain(|(c, _), g| !expired(&corrs[*c], g, now));
}

/// The cap is reached: the groups that hold nothing go, else the stalest tenth (counted).
fn make_room(
    groups: &mut FastMap<(usize, u64), Group>,
    corrs: &[Corr],
    max: usize,
    now: i64,
    evicted: &mut u64,
) {
    drop_expired(groups, corrs, now);
    if groups.len() < max {
        return;
    }
    let mut lasts: Vec<i64> = groups.values().map(|g| g.last).collect();
    let k = (groups.len() / 10).max(1);
    let (_, &mut bound, _) = lasts.select_nth_unstable(k - 1);
    let mut left = k;
    let before = groups.len();
    groups.retain(|_, g| {
        if left > 0 && g.last <= bound {
            left -= 1;
            false
        } else {
            true
        }
    });
    *evicted += (before - groups.len()) as u64;
}

fn text(v: &EventValue) -> Option<String> {
    let mut s = String::new();
    push_text(&mut s, v).then_some(s)
}

/// Group-by and counted values as 64-bit hashes with a per-process random seed, made in one
/// reused buffer: an event allocates nothing. Two distinct keys share a hash with odds near
/// n²/2⁶⁵ for n keys, which no count of a window can tell from noise.
#[derive(Default)]
struct Keys {
    seed: foldhash::fast::RandomState,
    buf: String,
}

impl Keys {
    fn hash(&self) -> u64 {
        use std::hash::BuildHasher;
        self.seed.hash_one(self.buf.as_bytes())
    }

    /// The values of `fields` as one key (unit separator between them); `None` when one is
    /// missing or not a scalar.
    fn distinct(&mut self, view: &impl Fields, fields: &[FieldRef]) -> Option<u64> {
        self.buf.clear();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                self.buf.push('\u{1f}');
            }
            match view.field(f)? {
                EventValue::Null => self.buf.push_str("null"),
                v => {
                    if !push_text(&mut self.buf, &v) {
                        return None;
                    }
                }
            }
        }
        Some(self.hash())
    }

    /// The group-by values as one key; a missing one is its own value.
    fn group(&mut self, view: &impl Fields, group_by: &[FieldRef]) -> u64 {
        self.buf.clear();
        for (i, f) in group_by.iter().enumerate() {
            if i > 0 {
                self.buf.push('\u{1f}');
            }
            let found = view.field(f).is_some_and(|v| push_text(&mut self.buf, &v));
            if !found {
                self.buf.push('\u{0}');
            }
        }
        self.hash()
    }
}

fn group_pairs(view: &impl Fields, group_by: &[FieldRef]) -> Vec<(String, String)> {
    group_by
        .iter()
        .filter_map(|f| Some((f.path.clone(), text(&view.field(f)?)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use rsigma_eval::{CorrelationConfig, CorrelationEngine, Engine, JsonEvent};
    use rsigma_parser::{parse_sigma_yaml, SigmaCollection};
    use serde_json::json;

    use super::*;

    const RULES: &str = "title: a
id: a
logsource: {category: test}
detection: {s: {r: a}, condition: s}
---
title: b
id: b
logsource: {category: test}
detection: {s: {r: b}, condition: s}
";

    fn correlations(text: &str, max_groups: usize) -> (SigmaCollection, Correlations) {
        let coll = parse_sigma_yaml(&format!("{RULES}---\n{text}")).unwrap();
        let rules: Vec<&SigmaRule> = coll.rules.iter().collect();
        let corrs: Vec<&CorrelationRule> = coll.correlations.iter().collect();
        for c in &corrs {
            assert_eq!(supports(c, &rules), None, "{}", c.title);
        }
        let info = |c: &CorrelationRule| {
            Arc::new(RuleInfo {
                id: c.title.clone(),
                title: c.title.clone(),
                level: "medium".into(),
                status: None,
                description: None,
                tags: Vec::new(),
                references: Vec::new(),
                tactics: Vec::new(),
                techniques: Vec::new(),
                file: None,
            })
        };
        let key = |r: &SigmaRule| r.id.clone().unwrap();
        let c = Correlations::new(&corrs, &rules, &info, &key, max_groups);
        (coll, c)
    }

    /// Feeds events `(rule, pid, port, ts)` and returns `(event index, title, group)` fired.
    fn run(c: &mut Correlations, events: &[(&str, u32, u32, i64)]) -> Vec<(usize, String, String)> {
        let mut fired = Vec::new();
        for (i, &(r, pid, port, ts)) in events.iter().enumerate() {
            let v = json!({"r": r, "pid": pid, "port": port});
            let mut out = Vec::new();
            assert!(c.feed(r, &JsonEvent::borrow(&v), Some(i as u64), ts, &mut out));
            for h in out {
                fired.push((i, h.info.title.clone(), h.group[0].1.clone()));
            }
        }
        fired
    }

    /// A deterministic mixed stream: a few processes, ports and both rules, one event a second
    /// or less (rsigma counts in seconds and cannot order two hits within one).
    fn stream(n: usize) -> Vec<(&'static str, u32, u32, i64)> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut ts = 1_000;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ts += 1 + (x % 3) as i64;
                let r = if x >> 8 & 1 == 0 { "a" } else { "b" };
                (r, (x >> 16) as u32 % 4, (x >> 24) as u32 % 12, ts)
            })
            .collect()
    }

    const CORRS: &str = "title: many
correlation: {type: event_count, rules: [a], group-by: [pid], timespan: 10s, condition: {gte: 4}}
---
title: ports
correlation: {type: value_count, rules: [a, b], group-by: [pid], timespan: 20s, condition: {gte: 6, field: port}}
---
title: both
correlation: {type: temporal, rules: [a, b], group-by: [pid], timespan: 5s, condition: {gte: 2}}
---
title: inorder
correlation: {type: temporal_ordered, rules: [b, a], group-by: [pid], timespan: 6s}
";

    /// What rsigma's own correlation engine fires on `events`, as [`run`] reports it.
    fn rsigma_fires(
        coll: &SigmaCollection,
        events: &[(&str, u32, u32, i64)],
    ) -> Vec<(usize, String, String)> {
        let mut engine = CorrelationEngine::new(CorrelationConfig {
            emit_detections: false,
            suppress: Some(SUPPRESS_SECS),
            ..Default::default()
        });
        engine.add_collection(coll).unwrap();
        let mut theirs = Vec::new();
        for (i, &(r, pid, port, ts)) in events.iter().enumerate() {
            let v = json!({"r": r, "pid": pid, "port": port});
            for res in engine.process_event_at(&JsonEvent::borrow(&v), ts) {
                let c = res.as_correlation().unwrap();
                theirs.push((i, res.header.rule_title.clone(), c.group_key[0].1.clone()));
            }
        }
        theirs
    }

    #[test]
    fn fires_where_rsigma_fires_on_the_same_stream() {
        let events = stream(3000);
        let (coll, mut ours) = correlations(CORRS, 1000);
        let mine = run(&mut ours, &events);
        assert!(mine.len() > 40, "the stream exercises every kind: {mine:?}");
        for t in ["many", "ports", "both", "inorder"] {
            assert!(mine.iter().any(|m| m.1 == t), "{t} never fired");
        }
        assert_eq!(mine, rsigma_fires(&coll, &events));
    }

    #[test]
    fn a_window_past_the_small_list_still_fires_where_rsigma_fires() {
        // Several events a second over 60 ports: the groups' windows outgrow FEW_VALUES,
        // shrink as values expire, and grow again.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut ts = 1_000;
        let events: Vec<_> = (0..6000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ts += x.is_multiple_of(4) as i64;
                ("a", (x >> 16) as u32 % 2, (x >> 24) as u32 % 60, ts)
            })
            .collect();
        let text = "title: wide
correlation: {type: value_count, rules: [a], group-by: [pid], timespan: 8s, condition: {gte: 30, field: port}}
";
        let (coll, mut ours) = correlations(text, 1000);
        let mine = run(&mut ours, &events);
        assert!(mine.len() > 5, "{mine:?}");
        let many = ours
            .groups
            .values()
            .any(|g| matches!(&g.window, Window::Values(Values::Many(_))));
        assert!(many, "a window outgrew the small list");
        assert_eq!(mine, rsigma_fires(&coll, &events));
    }

    #[test]
    fn temporal_ordered_follows_arrival_within_a_second() {
        let (_, mut c) = correlations(CORRS, 10);
        // `inorder` is b then a: a then b in one second is not that order; b then a is.
        let fired = run(&mut c, &[("a", 1, 0, 10), ("b", 1, 0, 10)]);
        assert!(!fired.iter().any(|f| f.1 == "inorder"), "{fired:?}");
        let fired = run(&mut c, &[("a", 1, 0, 10)]);
        assert!(fired.iter().any(|f| f.1 == "inorder"), "{fired:?}");
    }

    #[test]
    fn temporal_without_a_condition_wants_every_rule() {
        let (_, mut c) = correlations(
            "title: both\ncorrelation: {type: temporal, rules: [a, b], group-by: [pid], timespan: 5s}\n",
            10,
        );
        assert!(run(&mut c, &[("a", 1, 0, 10), ("a", 1, 0, 11)]).is_empty());
        // b comes after a's window: still one rule in it.
        assert!(run(&mut c, &[("b", 1, 0, 17)]).is_empty());
        let fired = run(&mut c, &[("a", 1, 0, 18)]);
        assert_eq!(fired.len(), 1, "{fired:?}");
    }

    #[test]
    fn a_storm_on_one_value_keeps_one_entry_a_second() {
        let (_, mut c) = correlations(CORRS, 10);
        let storm: Vec<_> = (0..100_000)
            .map(|i| ("a", 1, 80, 1_000 + i / 10_000))
            .collect();
        run(&mut c, &storm);
        let g = c.groups.values().find_map(|g| match &g.window {
            Window::Values(Values::Few(v)) => Some(v.len()),
            _ => None,
        });
        assert_eq!(g, Some(1), "one entry for the one value of the storm");
        let counts = c.groups.values().find_map(|g| match &g.window {
            Window::Count { secs, total } => Some((secs.len(), *total)),
            _ => None,
        });
        // 10 s window at t=1009: the seconds 999..=1009 that the storm had (1000..=1009).
        assert_eq!(counts, Some((10, 100_000)));
    }

    #[test]
    fn the_group_cap_evicts_the_stalest_and_counts_them() {
        let (_, mut c) = correlations(CORRS, 10);
        let many: Vec<_> = (0..50).map(|pid| ("a", pid, 80, 1_000)).collect();
        run(&mut c, &many);
        assert!(c.len() <= 10, "{}", c.len());
        assert!(c.evicted >= 40, "{}", c.evicted);
        // Groups whose windows and quiet time are over go without being counted.
        let before = c.evicted;
        let later: Vec<_> = (100..102).map(|pid| ("a", pid, 80, 2_000)).collect();
        run(&mut c, &later);
        assert_eq!(c.evicted, before);
        assert_eq!(c.len(), 2 * 4, "2 pids, 4 correlations read a");
    }

    #[test]
    fn shapes_it_does_not_cover_stay_with_rsigma() {
        let coll = parse_sigma_yaml(&format!(
            "{RULES}---
title: sum
correlation: {{type: value_sum, rules: [a], group-by: [pid], timespan: 5s, condition: {{gte: 2, field: port}}}}
---
title: chained
correlation: {{type: event_count, rules: [sum], group-by: [pid], timespan: 5s, condition: {{gte: 2}}}}
---
title: tumbling
correlation: {{type: event_count, rules: [a], group-by: [pid], timespan: 5s, window: tumbling, condition: {{gte: 2}}}}
"
        ))
        .unwrap();
        let rules: Vec<&SigmaRule> = coll.rules.iter().collect();
        let why: Vec<_> = coll
            .correlations
            .iter()
            .map(|c| supports(c, &rules))
            .collect();
        assert_eq!(
            why,
            [
                Some("numeric aggregation"),
                Some("names other than detection rules"),
                Some("tumbling or session window")
            ]
        );
        // The engine the shapes stay with takes them.
        let mut e = Engine::new();
        e.add_collection(&coll).unwrap();
    }
}
