//! Rules that only feed tprobe's correlations (no alert of their own), matched outside rsigma's
//! engine: the engine builds a match result for every hit (selections, fields, a header, each an
//! allocation), and the pack's port-scan base rule hits every TCP connect. The usual shapes
//! are walked (`walk`); any other shape goes through rsigma's own condition evaluator.
use rsigma_eval::{compiler::eval_condition, CompiledRule};

use super::{view::Fields, walk::Walk};

pub struct QuietRule {
    /// Its id in the correlations it feeds (`Correlations::feed_id`).
    pub feed: usize,
    how: How,
}

enum How {
    Walk(Walk),
    /// Any other shape: rsigma's condition evaluator.
    Rsigma(Box<CompiledRule>),
}

impl QuietRule {
    pub fn new(feed: usize, rule: CompiledRule) -> QuietRule {
        let how = match Walk::of(rule) {
            Ok(w) => How::Walk(w),
            Err(rule) => How::Rsigma(rule),
        };
        QuietRule { feed, how }
    }

    /// Whether the rule matches `view`, as rsigma's engine decides it.
    pub fn matches(&self, view: &impl Fields, scratch: &mut String) -> bool {
        match &self.how {
            How::Walk(w) => w.matches(view, scratch),
            How::Rsigma(rule) => {
                let mut selections = Vec::new();
                rule.conditions.iter().any(|c| {
                    selections.clear();
                    eval_condition(c, &rule.detections, view, &mut selections)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rsigma_eval::{evaluate_rule, JsonEvent};

    use super::*;
    use crate::analyze::walk::tests::{events, rule, DETECTIONS};

    /// Every shape, walked or handed to rsigma, decides as rsigma's engine does, on values of
    /// every type.
    #[test]
    fn quiet_rules_match_as_rsigma_does() {
        let mut seen = [0usize; 2];
        let mut scratch = String::new();
        for &(det, condition, walked) in DETECTIONS {
            let rule = rule(det, condition);
            let quiet = QuietRule::new(0, rule.clone());
            assert_eq!(matches!(quiet.how, How::Walk(..)), walked, "{det}");
            for e in &events() {
                let ev = JsonEvent::borrow(e);
                let m = quiet.matches(&ev, &mut scratch);
                seen[m as usize] += 1;
                assert_eq!(
                    m,
                    evaluate_rule(&rule, &ev).is_some(),
                    "{det} / {condition} on {e}"
                );
            }
        }
        assert!(seen[0] > 20 && seen[1] > 20, "matches and misses: {seen:?}");
    }
}
