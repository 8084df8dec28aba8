//! Rules with an anchor (`walk::Walk::anchor`: an equality every match needs), indexed by the
//! anchor's values and walked outside rsigma's engine. An event looks up the value of each
//! anchor field once and walks only the rules a value selects. rsigma's engine, for a single
//! rule, allocates a candidate set, a result with its header and a list of results per event:
//! about 200 ns of a connect's cost with the pack's one alerting network rule.
use std::{collections::HashMap, sync::Arc};

use rsigma_eval::event::EventValue;

use super::{
    view::{push_text, FieldRef, Fields},
    walk::{Key, Walk},
};
use crate::event::alert::RuleInfo;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub struct AnchoredRule {
    pub info: Arc<RuleInfo>,
    /// Its id in the correlations it feeds (`Correlations::feed_id`), if any.
    pub feed: Option<usize>,
    walk: Walk,
}

/// The rules anchored on one field, by key.
struct FieldIndex {
    field: FieldRef,
    folded: FastMap<String, Vec<u32>>,
    cased: FastMap<String, Vec<u32>>,
    num: FastMap<u64, Vec<u32>>,
}

#[derive(Default)]
pub struct Anchored {
    rules: Vec<AnchoredRule>,
    fields: Vec<FieldIndex>,
    candidates: Vec<u32>,
    /// A number's text for the lookup, then a lowercased copy for the walks.
    scratch: String,
}

impl Anchored {
    /// Adds `walk` when it has an anchor; gives it back when not.
    pub fn add(
        &mut self,
        info: Arc<RuleInfo>,
        feed: Option<usize>,
        walk: Walk,
    ) -> Result<(), Walk> {
        let Some((field, keys)) = walk.anchor() else {
            return Err(walk);
        };
        let n = self.rules.len() as u32;
        let at = match self.fields.iter().position(|f| f.field == field) {
            Some(i) => i,
            None => {
                self.fields.push(FieldIndex {
                    field,
                    folded: FastMap::default(),
                    cased: FastMap::default(),
                    num: FastMap::default(),
                });
                self.fields.len() - 1
            }
        };
        let f = &mut self.fields[at];
        for k in keys {
            let slot = match k {
                Key::Folded(s) => f.folded.entry(s).or_default(),
                Key::Cased(s) => f.cased.entry(s).or_default(),
                Key::Num(b) => f.num.entry(b).or_default(),
            };
            if slot.last() != Some(&n) {
                slot.push(n);
            }
        }
        self.rules.push(AnchoredRule { info, feed, walk });
        Ok(())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rule(&self, i: usize) -> &AnchoredRule {
        &self.rules[i]
    }

    /// The rules that match `view`, by index, ascending, to `out`.
    pub fn evaluate(&mut self, view: &impl Fields, out: &mut Vec<usize>) {
        self.candidates.clear();
        for f in &self.fields {
            if let Some(v) = view.field(&f.field) {
                select(f, &v, &mut self.scratch, &mut self.candidates);
            }
        }
        if self.candidates.len() > 1 {
            self.candidates.sort_unstable();
            self.candidates.dedup();
        }
        for &i in &self.candidates {
            if self.rules[i as usize].walk.matches(view, &mut self.scratch) {
                out.push(i as usize);
            }
        }
    }
}

/// The rules of `f` whose anchor `v` may satisfy, to `out`: the value's text (lowercased for
/// the folded keys) and its number, projected as rsigma's string and numeric matchers do.
fn select(f: &FieldIndex, v: &EventValue, text: &mut String, out: &mut Vec<u32>) {
    let by_text = |t: &str, out: &mut Vec<u32>| {
        if let Some(r) = f.cased.get(t) {
            out.extend(r);
        }
        if f.folded.is_empty() {
            return;
        }
        let r = if t.bytes().any(|b| b.is_ascii_uppercase()) || !t.is_ascii() {
            f.folded.get(t.to_lowercase().as_str())
        } else {
            f.folded.get(t)
        };
        if let Some(r) = r {
            out.extend(r);
        }
    };
    let by_num = |x: f64, out: &mut Vec<u32>| {
        if let Some(r) = f.num.get(&x.to_bits()) {
            out.extend(r);
        }
    };
    // A number's text, only when some rule of the field wants text.
    let by_number_text = |text: &mut String, out: &mut Vec<u32>| {
        if !f.folded.is_empty() || !f.cased.is_empty() {
            text.clear();
            push_text(text, v);
            by_text(text, out);
        }
    };
    match v {
        EventValue::Str(s) => {
            by_text(s, out);
            if !f.num.is_empty() {
                if let Ok(x) = s.parse::<f64>() {
                    by_num(x, out);
                }
            }
        }
        EventValue::Int(n) => {
            by_num(*n as f64, out);
            by_number_text(text, out);
        }
        EventValue::Float(x) => {
            by_num(*x, out);
            by_number_text(text, out);
        }
        EventValue::Bool(b) => by_text(if *b { "true" } else { "false" }, out),
        EventValue::Array(a) => {
            for m in a {
                select(f, m, text, out);
            }
        }
        EventValue::Null | EventValue::Map(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use rsigma_eval::{evaluate_rule, JsonEvent};

    use super::*;
    use crate::analyze::walk::tests::{events, rule, DETECTIONS};

    /// The index with its walks selects exactly the rules rsigma's engine matches.
    #[test]
    fn anchored_rules_match_as_rsigma_does() {
        let mut index = Anchored::default();
        let mut rules = Vec::new();
        for &(det, condition, _) in DETECTIONS {
            let r = rule(det, condition);
            let Ok(walk) = Walk::of(r.clone()) else {
                continue;
            };
            let info = Arc::new(RuleInfo {
                id: det.into(),
                ..Default::default()
            });
            if index.add(info, None, walk).is_ok() {
                rules.push(r);
            }
        }
        assert!(index.len() >= 8, "anchored: {}", index.len());
        let mut hits = 0;
        for e in &events() {
            let ev = JsonEvent::borrow(e);
            let mut got = Vec::new();
            index.evaluate(&ev, &mut got);
            let want: Vec<usize> = (0..rules.len())
                .filter(|&i| evaluate_rule(&rules[i], &ev).is_some())
                .collect();
            assert_eq!(got, want, "on {e}");
            hits += got.len();
        }
        assert!(hits >= 5, "{hits} matches");
    }
}
