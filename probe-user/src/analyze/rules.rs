//! Sigma rules: loaded from files and folders, checked against what tprobe can feed them (a
//! rule that could never match is refused with the reason, never loaded), and evaluated with
//! `rsigma-eval`. The state of correlations is kept bounded by `correlate` for the usual
//! shapes and by rsigma for the rest.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
};

use probe_common::EventKind;
use rsigma_eval::{
    logsource::LogSourceExtractor, CorrelationConfig, CorrelationEngine, CorrelationEventMode,
    EvaluationResult,
};
use rsigma_parser::{Detection, LogSource, Modifier, SigmaCollection, SigmaRule};

use super::{
    anchored::Anchored,
    correlate::{self, Correlations, Hit, MAX_CONTRIBUTING, SUPPRESS_SECS},
    fields::{self, OWN_PRODUCT},
    partition,
    quiet::QuietRule,
    walk::Walk,
};
use crate::event::alert::RuleInfo;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Largest rule file read: a YAML bomb or a stray huge file is an error, not a hang.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most rules loaded in all.
pub const MAX_RULES: usize = 20_000;
/// Most correlation groups kept; beyond it the oldest state is evicted (and counted).
pub const MAX_GROUPS: usize = 100_000;
/// Entries a group of a correlation rsigma keeps (`correlate` does not take) holds in its
/// window, the oldest going first: rsigma counts a `value_count` window entry by entry at each
/// event, so an unbounded one made every event of a storm cost more than the one before.
pub const MAX_GROUP_ENTRIES: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("rules {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("rules {0}: {1} bytes, more than the {MAX_FILE_BYTES} a rule file may have")]
    TooLarge(PathBuf, u64),
    #[error("rules: more than {MAX_RULES} rules")]
    TooMany,
    #[error("{}", refusals_text(.0))]
    Refused(Vec<Refusal>),
}

fn refusals_text(r: &[Refusal]) -> String {
    let mut s = format!("{} rule(s) refused", r.len());
    if let Some(first) = r.first() {
        s.push_str(&format!("; first: {first}"));
    }
    s
}

/// A rule that was not loaded, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub file: String,
    /// The rule's id, else its title (`-` when the document did not parse that far).
    pub rule: String,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // One line: parser messages can span several.
        let reason: Vec<&str> = self.reason.split_whitespace().collect();
        write!(f, "{}: rule {}: {}", self.file, self.rule, reason.join(" "))
    }
}

/// What loading found: the rules taken (by file) and the ones refused.
#[derive(Default)]
pub struct Loaded {
    pub rules: Vec<(PathBuf, SigmaCollection)>,
    pub refused: Vec<Refusal>,
    /// Accepted rules per logsource (`process_creation`, `tprobe/process.ptrace`, ...).
    pub per_category: BTreeMap<String, usize>,
    pub correlations: usize,
}

/// The `.yml`/`.yaml` files a path names: the file itself, or a folder walked recursively.
pub fn rule_files(path: &Path) -> Result<Vec<PathBuf>, RulesError> {
    let meta = std::fs::metadata(path).map_err(|e| RulesError::Io(path.into(), e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| RulesError::Io(d.clone(), e))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and checks every rule under `paths`.
pub fn load(paths: &[PathBuf], dotted_ok: &dyn Fn(&str) -> bool) -> Result<Loaded, RulesError> {
    let mut loaded = Loaded::default();
    // id -> file, to name both files of a duplicate.
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut total = 0usize;
    for root in paths {
        for file in rule_files(root)? {
            let size = std::fs::metadata(&file)
                .map_err(|e| RulesError::Io(file.clone(), e))?
                .len();
            if size > MAX_FILE_BYTES {
                return Err(RulesError::TooLarge(file, size));
            }
            let text =
                std::fs::read_to_string(&file).map_err(|e| RulesError::Io(file.clone(), e))?;
            let name = file.display().to_string();
            let mut coll = match rsigma_parser::parse_sigma_yaml(&text) {
                Ok(c) => c,
                Err(e) => {
                    loaded.refused.push(Refusal {
                        file: name,
                        rule: "-".into(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            for e in coll.errors.drain(..) {
                loaded.refused.push(Refusal {
                    file: name.clone(),
                    rule: "-".into(),
                    reason: e,
                });
            }
            let mut keep = Vec::new();
            for rule in coll.rules.drain(..) {
                let key = rule_key(rule.id.as_deref(), &rule.title);
                let refusal = |reason: String| Refusal {
                    file: name.clone(),
                    rule: key.clone(),
                    reason,
                };
                if let Some(id) = &rule.id {
                    if let Some(other) = ids.get(id) {
                        loaded
                            .refused
                            .push(refusal(format!("duplicate id: also in {other}")));
                        continue;
                    }
                }
                match check_rule(&rule, dotted_ok) {
                    Ok(cat) => {
                        *loaded.per_category.entry(cat).or_default() += 1;
                        if let Some(id) = &rule.id {
                            ids.insert(id.clone(), name.clone());
                        }
                        keep.push(rule);
                    }
                    Err(reason) => loaded.refused.push(refusal(reason)),
                }
            }
            coll.rules = keep;
            let mut corrs = Vec::new();
            for c in coll.correlations.drain(..) {
                let key = rule_key(c.id.as_deref(), &c.title);
                if let Some(id) = &c.id {
                    if let Some(other) = ids.get(id) {
                        loaded.refused.push(Refusal {
                            file: name.clone(),
                            rule: key,
                            reason: format!("duplicate id: also in {other}"),
                        });
                        continue;
                    }
                    ids.insert(id.clone(), name.clone());
                }
                let bad: Vec<&String> = c
                    .group_by
                    .iter()
                    .filter(|f| !known_field(f, None, dotted_ok))
                    .collect();
                if !bad.is_empty() {
                    loaded.refused.push(Refusal {
                        file: name.clone(),
                        rule: key,
                        reason: format!("group-by field(s) tprobe does not have: {bad:?}"),
                    });
                    continue;
                }
                corrs.push(c);
            }
            loaded.correlations += corrs.len();
            coll.correlations = corrs;
            total += coll.rules.len() + coll.correlations.len();
            if total > MAX_RULES {
                return Err(RulesError::TooMany);
            }
            loaded.rules.push((file, coll));
        }
    }
    Ok(loaded)
}

pub fn rule_key(id: Option<&str>, title: &str) -> String {
    id.map(str::to_owned)
        .unwrap_or_else(|| format!("{title:?}"))
}

/// The logsource a rule reads, as `category` or `tprobe/<kind>`; `Err` says why tprobe
/// cannot feed it.
fn check_rule(rule: &SigmaRule, dotted_ok: &dyn Fn(&str) -> bool) -> Result<String, String> {
    let ls = &rule.logsource;
    let (label, category) = logsource(ls)?;
    let mut fields = BTreeSet::new();
    for d in rule.detection.named.values() {
        collect_fields(d, &mut fields)?;
    }
    let bad: Vec<&String> = fields
        .iter()
        .filter(|f| !known_field(f, category, dotted_ok))
        .collect();
    if !bad.is_empty() {
        return Err(format!(
            "field(s) tprobe does not have for {label}: {}",
            bad.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // A dotted name no event of the logsource carries (`file.path` in process_creation)
    // would load and never match: refused too.
    let kinds: &[EventKind] = match category {
        Some(c) => c.kinds,
        None => EventKind::ALL
            .iter()
            .find(|k| Some(k.name()) == ls.category.as_deref())
            .map(std::slice::from_ref)
            .unwrap_or(&[]),
    };
    let never: Vec<&str> = fields
        .iter()
        .map(String::as_str)
        .filter(|f| f.contains('.'))
        .filter(|f| {
            !kinds.iter().any(|k| {
                crate::event::objects::class_may_have(crate::families::body_class_of(*k), f)
            })
        })
        .collect();
    if !never.is_empty() {
        return Err(format!(
            "field(s) no {label} event carries: {}",
            never.join(", ")
        ));
    }
    // The engine compiles what the parser accepted; its errors are refusals too.
    let mut probe = rsigma_eval::Engine::new();
    probe
        .add_rule(rule)
        .map_err(|e| format!("the engine cannot compile it: {e}"))?;
    Ok(label)
}

/// `(label, Sigma category)` of a logsource tprobe can feed.
fn logsource(ls: &LogSource) -> Result<(String, Option<&'static fields::Category>), String> {
    if ls.service.is_some() {
        return Err(format!(
            "logsource service {:?}: tprobe has no services, only categories",
            ls.service.as_deref().unwrap_or("")
        ));
    }
    match ls.product.as_deref() {
        Some(OWN_PRODUCT) => {
            let c = ls.category.as_deref().unwrap_or("");
            let known = EventKind::ALL
                .iter()
                .any(|k| k.name() == c && !crate::config::kinds::is_internal(*k));
            if !known {
                return Err(format!(
                    "logsource product tprobe needs a kind as category (e.g. process.exec), not {c:?}"
                ));
            }
            Ok((format!("tprobe/{c}"), None))
        }
        None | Some("linux") => {
            let c = ls.category.as_deref().ok_or_else(|| {
                "logsource without a category: tprobe feeds categories only".to_string()
            })?;
            let cat = fields::category(c)
                .ok_or_else(|| format!("logsource category {c:?} has no source in tprobe"))?;
            Ok((c.to_owned(), Some(cat)))
        }
        Some(p) => Err(format!(
            "logsource product {p:?}: tprobe feeds linux (and tprobe)"
        )),
    }
}

/// Every field name a detection uses; `Err` for a modifier tprobe cannot honour.
fn collect_fields(d: &Detection, out: &mut BTreeSet<String>) -> Result<(), String> {
    match d {
        Detection::AllOf(items) => {
            for i in items {
                if i.field.has_modifier(Modifier::Expand) {
                    return Err(
                        "modifier expand needs placeholders, which tprobe does not define".into(),
                    );
                }
                if let Some(n) = &i.field.name {
                    out.insert(n.clone());
                }
            }
        }
        Detection::AnyOf(ds) | Detection::And(ds) => {
            for d in ds {
                collect_fields(d, out)?;
            }
        }
        Detection::Keywords(_) => {}
        Detection::ArrayMatch { field, body, .. } => {
            out.insert(field.clone());
            let mut inner = BTreeSet::new();
            collect_fields(body, &mut inner)?;
        }
        Detection::Conditional { named, .. } => {
            for d in named.values() {
                collect_fields(d, out)?;
            }
        }
    }
    Ok(())
}

/// A field a rule of `category` (`None`: tprobe's own kinds, or a group-by) may name.
fn known_field(
    f: &str,
    category: Option<&fields::Category>,
    dotted_ok: &dyn Fn(&str) -> bool,
) -> bool {
    match category {
        Some(c) if fields::sigma_field_ok(c, f) => true,
        None if fields::PROCESS_FIELDS.contains(&f) => true,
        _ => f.contains('.') && dotted_ok(f) || matches!(f, "kind" | "category" | "product"),
    }
}

/// One view of an event kind and the engine that reads it.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub product: &'static str,
    pub category: &'static str,
    pub engine: usize,
}

/// The loaded rules, ready to evaluate: one engine per logsource, or per set of logsources a
/// correlation joins (`partition`).
pub struct RuleSet {
    engines: Vec<Part>,
    infos: HashMap<String, Arc<RuleInfo>>,
    /// Per event kind, the views its events are evaluated as (`linux` and a Sigma category, or
    /// `tprobe` and the kind) that some engine reads, with the engine: no string is hashed per
    /// event.
    routes: FastMap<EventKind, Vec<Route>>,
    pub kinds: Vec<EventKind>,
    pub per_category: BTreeMap<String, usize>,
    pub rule_count: usize,
    pub correlations: usize,
    /// Correlation groups rsigma dropped because the cap was reached.
    evicted: u64,
}

struct Part {
    engine: CorrelationEngine,
    /// Correlations rsigma keeps; the others are in `fast`.
    correlations: usize,
    fast: Option<Correlations>,
    /// Rules that only feed `fast` (no alert of their own), matched outside the engine.
    quiet: Vec<QuietRule>,
    /// Rules with an anchor, matched outside the engine (`anchored`).
    anchored: Anchored,
    /// The engine was left no rule: it is not asked.
    idle: bool,
    /// Reused per event: the anchored rules matched, and a lowercased copy of a value.
    matched: Vec<usize>,
    scratch: String,
    /// The groups this engine may hold (the cap shared by the engines with correlations).
    max_groups: usize,
    /// Per body class, the top-level names its rules may read (`view::probe_keys`).
    probe_keys: Arc<[super::view::ProbeKeys]>,
}

impl RuleSet {
    pub fn build(loaded: Loaded) -> Result<RuleSet, RulesError> {
        Self::build_capped(loaded, MAX_GROUPS)
    }

    /// [`RuleSet::build`] with room for `max_groups` correlation groups in all.
    pub fn build_capped(loaded: Loaded, max_groups: usize) -> Result<RuleSet, RulesError> {
        let mut infos = HashMap::new();
        let mut kinds = BTreeSet::new();
        let mut rule_count = 0;
        for (file, coll) in &loaded.rules {
            for r in &coll.rules {
                let info = rule_info(
                    r.id.as_deref(),
                    &r.title,
                    r.level.map(|l| l.as_str()),
                    r.status.map(|s| format!("{s:?}").to_lowercase()),
                    r.description.clone(),
                    &r.tags,
                    &r.references,
                    file,
                );
                infos.insert(rule_key(r.id.as_deref(), &r.title), Arc::new(info));
                let (product, c) = partition::source_of(&r.logsource);
                if product == OWN_PRODUCT {
                    if let Some(k) = EventKind::ALL.iter().find(|k| k.name() == c) {
                        kinds.insert(*k);
                    }
                } else if let Some(cat) = fields::category(&c) {
                    kinds.extend(cat.kinds.iter().copied());
                }
                rule_count += 1;
            }
            for c in &coll.correlations {
                let info = rule_info(
                    c.id.as_deref(),
                    &c.title,
                    c.level.map(|l| l.as_str()),
                    c.status.map(|s| format!("{s:?}").to_lowercase()),
                    c.description.clone(),
                    &c.tags,
                    &c.references,
                    file,
                );
                infos.insert(rule_key(c.id.as_deref(), &c.title), Arc::new(info));
            }
        }
        let parts = partition::split(loaded.rules);
        let stateful = parts.iter().filter(|p| p.correlations() > 0).count();
        let share = (max_groups / stateful.max(1)).max(1);
        let mut refused = Vec::new();
        let mut engines = Vec::new();
        let mut sources: FastMap<String, FastMap<String, usize>> = FastMap::default();
        for mut part in parts {
            let fast = take_fast(&mut part, &infos, share);
            let (quiet, anchored) = take_walked(&mut part, fast.as_ref(), &infos);
            // Metadata lives in `infos`: the engine would clone the tags into every match.
            for (_, c) in &mut part.files {
                for r in &mut c.rules {
                    r.tags.clear();
                }
            }
            let mut engine = CorrelationEngine::new(CorrelationConfig {
                max_state_entries: share,
                max_correlation_events: MAX_CONTRIBUTING,
                correlation_event_mode: CorrelationEventMode::Refs,
                // Rules a correlation names (`generate: false`, Sigma's default) feed it and do
                // not alert on their own; a fired correlation waits this long per group.
                emit_detections: false,
                suppress: Some(SUPPRESS_SECS),
                max_group_entries: Some(MAX_GROUP_ENTRIES),
                ..Default::default()
            });
            // One logsource per engine needs no pruning; a correlation's joined ones do.
            if part.sources.len() > 1 {
                engine.set_logsource_extractor(Some(LogSourceExtractor::new()));
            }
            // Top-level names the rules read: a flat Sigma name, or the first part of a dotted one.
            let mut used = BTreeSet::new();
            for r in part.rules() {
                let mut names = BTreeSet::new();
                for d in r.detection.named.values() {
                    // Checked at load: a modifier it refuses never gets here.
                    let _ = collect_fields(d, &mut names);
                }
                used.extend(
                    names
                        .into_iter()
                        .map(|n| n.split_once('.').map_or(n.clone(), |(t, _)| t.to_owned())),
                );
            }
            for (file, coll) in &part.files {
                if let Err(e) = engine.add_collection(coll) {
                    refused.push(Refusal {
                        file: file.display().to_string(),
                        rule: "-".into(),
                        reason: e.to_string(),
                    });
                }
            }
            let n = engines.len();
            for (p, c) in &part.sources {
                sources.entry(p.clone()).or_default().insert(c.clone(), n);
            }
            engines.push(Part {
                engine,
                correlations: part.correlations(),
                idle: part.correlations() == 0 && part.rules().next().is_none(),
                fast,
                quiet,
                anchored,
                matched: Vec::new(),
                scratch: String::new(),
                max_groups: share,
                probe_keys: (0..crate::event::objects::BODY_CLASSES)
                    .map(|c| super::view::probe_keys(c, &used))
                    .collect::<Vec<_>>()
                    .into(),
            });
        }
        if !refused.is_empty() {
            return Err(RulesError::Refused(refused));
        }
        let mut routes: FastMap<EventKind, Vec<Route>> = FastMap::default();
        for &kind in EventKind::ALL {
            let views = fields::categories_of(kind)
                .map(|c| ("linux", c))
                .chain(std::iter::once((OWN_PRODUCT, kind.name())));
            for (product, category) in views {
                if let Some(&engine) = sources.get(product).and_then(|c| c.get(category)) {
                    routes.entry(kind).or_default().push(Route {
                        product,
                        category,
                        engine,
                    });
                }
            }
        }
        Ok(RuleSet {
            engines,
            infos,
            routes,
            kinds: kinds.into_iter().collect(),
            per_category: loaded.per_category,
            rule_count,
            correlations: loaded.correlations,
            evicted: 0,
        })
    }

    /// The views of an event of `kind` some engine reads.
    pub fn routes(&self, kind: EventKind) -> &[Route] {
        self.routes.get(&kind).map_or(&[], Vec::as_slice)
    }

    /// Per body class (`event::objects::body_class`), the top-level names to offer `engine`
    /// for an event.
    pub fn probe_keys(&self, engine: usize) -> Arc<[super::view::ProbeKeys]> {
        self.engines[engine].probe_keys.clone()
    }

    /// Evaluates `view` (written as `seq`, at `ts_secs`) with `engine`; what alerts goes to `out`.
    pub fn evaluate(
        &mut self,
        engine: usize,
        view: &impl super::view::Fields,
        seq: Option<u64>,
        ts_secs: i64,
        out: &mut Vec<Hit>,
    ) {
        let part = &mut self.engines[engine];
        if let Some(fast) = &mut part.fast {
            for q in &part.quiet {
                if q.matches(view, &mut part.scratch) {
                    fast.feed_at(q.feed, view, seq, ts_secs, out);
                }
            }
        }
        if !part.anchored.is_empty() {
            part.matched.clear();
            part.anchored.evaluate(view, &mut part.matched);
            for &i in &part.matched {
                let r = part.anchored.rule(i);
                if let (Some(fast), Some(id)) = (&mut part.fast, r.feed) {
                    if fast.feed_at(id, view, seq, ts_secs, out) {
                        continue;
                    }
                }
                out.push(Hit {
                    info: r.info.clone(),
                    group: Vec::new(),
                    contributing: Vec::new(),
                });
            }
        }
        if part.idle {
            return;
        }
        let results = if part.correlations == 0 {
            // Nothing of rsigma's to keep: its correlation layer would only look for feeds.
            part.engine.engine().evaluate(view)
        } else {
            // The engine drops the stalest tenth of its groups when full: count what went.
            let before = part.engine.state_count();
            let r = part.engine.process_event_at(view, ts_secs);
            let after = part.engine.state_count();
            if before >= part.max_groups && after <= before {
                self.evicted += (before + 1 - after) as u64;
            }
            r
        };
        for r in results {
            let key: std::borrow::Cow<str> = match &r.header.rule_id {
                Some(id) => id.as_str().into(),
                None => rule_key(None, &r.header.rule_title).into(),
            };
            if let Some(fast) = &mut self.engines[engine].fast {
                if fast.feed(&key, view, seq, ts_secs, out) {
                    continue;
                }
            }
            let (group, contributing) = match r.as_correlation() {
                Some(c) => (
                    c.group_key.clone(),
                    c.event_refs
                        .iter()
                        .flatten()
                        .filter_map(|e| e.id.as_deref()?.parse().ok())
                        .collect(),
                ),
                None => (Vec::new(), Vec::new()),
            };
            out.push(Hit {
                info: self.info(&key, &r),
                group,
                contributing,
            });
        }
    }

    fn info(&self, key: &str, r: &EvaluationResult) -> Arc<RuleInfo> {
        let h = &r.header;
        info_or_bare(
            &self.infos,
            key,
            h.rule_id.as_deref(),
            &h.rule_title,
            h.level,
            &h.tags,
        )
    }

    /// Rules matched outside the engines because they only feed correlations.
    #[cfg(test)]
    pub fn quiet_rules(&self) -> usize {
        self.engines.iter().map(|p| p.quiet.len()).sum()
    }

    /// Correlation groups dropped because the cap was reached.
    pub fn evicted(&self) -> u64 {
        self.evicted
            + self
                .engines
                .iter()
                .filter_map(|p| p.fast.as_ref())
                .map(|f| f.evicted)
                .sum::<u64>()
    }

    /// Correlation groups held.
    pub fn state_entries(&self) -> usize {
        self.engines
            .iter()
            .map(|p| p.engine.state_count() + p.fast.as_ref().map_or(0, Correlations::len))
            .sum()
    }

    /// Every rule's metadata, for `tprobe rules list`.
    pub fn infos(&self) -> Vec<Arc<RuleInfo>> {
        let mut v: Vec<_> = self.infos.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

/// Takes `part`'s correlations out for `correlate` when it supports them all (and none is
/// named by another); otherwise rsigma keeps them.
fn take_fast(
    part: &mut partition::Part,
    infos: &HashMap<String, Arc<RuleInfo>>,
    max_groups: usize,
) -> Option<Correlations> {
    if part.correlations() == 0 {
        return None;
    }
    let rules: Vec<&SigmaRule> = part.rules().collect();
    let corrs: Vec<&rsigma_parser::CorrelationRule> = part
        .files
        .iter()
        .flat_map(|(_, c)| c.correlations.iter())
        .collect();
    if corrs
        .iter()
        .any(|c| correlate::supports(c, &rules).is_some())
    {
        return None;
    }
    let info = |c: &rsigma_parser::CorrelationRule| {
        let key = rule_key(c.id.as_deref(), &c.title);
        info_or_bare(infos, &key, c.id.as_deref(), &c.title, c.level, &c.tags)
    };
    let key = |r: &SigmaRule| rule_key(r.id.as_deref(), &r.title);
    let fast = Correlations::new(&corrs, &rules, &info, &key, max_groups);
    for (_, c) in &mut part.files {
        c.correlations.clear();
    }
    Some(fast)
}

/// Takes out of `part`, compiled, the rules the engine would do no more with than match: one
/// logsource (nothing to prune) and no filter rules (which the engine applies to the rules they
/// name). Those that only feed `fast` are matched on every event (`QuietRule`); those with an
/// anchor go to the index (`Anchored`) when rsigma keeps no correlation here that could name
/// them.
fn take_walked(
    part: &mut partition::Part,
    fast: Option<&Correlations>,
    infos: &HashMap<String, Arc<RuleInfo>>,
) -> (Vec<QuietRule>, Anchored) {
    let mut quiet = Vec::new();
    let mut anchored = Anchored::default();
    if part.sources.len() != 1 || part.files.iter().any(|(_, c)| !c.filters.is_empty()) {
        return (quiet, anchored);
    }
    let rsigma_correlates = part.correlations() > 0;
    for (_, c) in &mut part.files {
        c.rules.retain(|r| {
            let key = rule_key(r.id.as_deref(), &r.title);
            let feed = fast.and_then(|f| f.feed_id(&key));
            let is_quiet = fast.is_some_and(|f| f.is_quiet(&key));
            if !is_quiet && rsigma_correlates {
                return true;
            }
            // A rule that does not compile stays, for the engine to refuse with its reason.
            let Ok(compiled) = rsigma_eval::compile_rule(r) else {
                return true;
            };
            if let (true, Some(feed)) = (is_quiet, feed) {
                quiet.push(QuietRule::new(feed, compiled));
                return false;
            }
            let Ok(walk) = Walk::of(compiled) else {
                return true;
            };
            let info = info_or_bare(infos, &key, r.id.as_deref(), &r.title, r.level, &r.tags);
            anchored.add(info, feed, walk).is_err()
        });
    }
    (quiet, anchored)
}

/// The metadata loaded for `key`, else what the engine's result carries of it.
fn info_or_bare(
    infos: &HashMap<String, Arc<RuleInfo>>,
    key: &str,
    id: Option<&str>,
    title: &str,
    level: Option<rsigma_parser::Level>,
    tags: &[String],
) -> Arc<RuleInfo> {
    infos.get(key).cloned().unwrap_or_else(|| {
        let level = level.map(|l| l.as_str());
        Arc::new(rule_info(
            id,
            title,
            level,
            None,
            None,
            tags,
            &[],
            Path::new(""),
        ))
    })
}

#[allow(clippy::too_many_arguments)]
fn rule_info(
    id: Option<&str>,
    title: &str,
    level: Option<&str>,
    status: Option<String>,
    description: Option<String>,
    tags: &[String],
    references: &[String],
    file: &Path,
) -> RuleInfo {
    let (tactics, techniques) = super::attack::from_tags(tags);
    RuleInfo {
        id: id.map(str::to_owned).unwrap_or_else(|| title.to_owned()),
        title: title.to_owned(),
        level: level.unwrap_or("medium").to_owned(),
        status,
        description,
        tags: tags.to_vec(),
        references: references.to_vec(),
        tactics,
        techniques,
        file: (!file.as_os_str().is_empty()).then(|| file.display().to_string()),
    }
}

/// `tprobe rules check`: a report for people, and whether every rule loaded.
pub fn check_report(paths: &[PathBuf]) -> (String, bool) {
    let loaded = match load(paths, &crate::schema::has_field) {
        Ok(l) => l,
        Err(e) => return (format!("tprobe: {e}\n"), false),
    };
    let mut out = String::new();
    let total: usize = loaded.per_category.values().sum();
    out.push_str(&format!(
        "{total} rule(s) and {} correlation(s) loaded\n",
        loaded.correlations
    ));
    for (cat, n) in &loaded.per_category {
        out.push_str(&format!("  {cat}: {n}\n"));
    }
    let ok = loaded.refused.is_empty();
    if !ok {
        out.push_str(&format!("{} refused:\n", loaded.refused.len()));
        for r in &loaded.refused {
            out.push_str(&format!("  {r}\n"));
        }
    }
    // What loads alone must also build together (correlations name their rules).
    if ok {
        if let Err(e) = RuleSet::build(loaded) {
            out.push_str(&format!("refused: {e}\n"));
            return (out, false);
        }
    }
    (out, ok)
}

/// `tprobe rules list`: one line per rule.
pub fn list_report(paths: &[PathBuf]) -> Result<String, RulesError> {
    let loaded = load(paths, &crate::schema::has_field)?;
    if !loaded.refused.is_empty() {
        return Err(RulesError::Refused(loaded.refused));
    }
    let set = RuleSet::build(loaded)?;
    let mut out = String::new();
    for r in set.infos() {
        let mut attack = r.techniques.clone();
        attack.extend(r.tactics.iter().cloned());
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            r.id,
            r.title,
            r.level,
            attack.join(",")
        ));
    }
    Ok(out)
}
