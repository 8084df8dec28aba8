//! Rules that only feed tprobe's correlations (no alert of their own), matched outside rsigma's
//! engine: the engine builds a match result for every hit (selections, fields, a header, each an
//! allocation), and the pack's port-scan base rule hits every TCP connect. The usual shapes
//! (`and` / `or` / `not` over named selections of field items) are walked here over rsigma's
//! compiled matchers, with the selections found by index; any other shape goes through rsigma's
//! own condition evaluator.
use rsigma_eval::{
    compiler::eval_condition, event::Event, matcher::CompiledMatcher, CompiledDetection,
    CompiledDetectionItem, CompiledRule,
};
use rsigma_parser::ConditionExpr;

enum Cond {
    Selection(usize),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

pub struct QuietRule {
    /// The rule key (`rules::rule_key`) it feeds the correlations under.
    pub key: String,
    how: How,
}

enum How {
    /// Conditions over the selections, found by index: every part has a shape walked here.
    Walk(Vec<Cond>, Vec<CompiledDetection>),
    /// Any other shape: rsigma's condition evaluator.
    Rsigma(Box<CompiledRule>),
}

impl QuietRule {
    pub fn new(key: String, mut rule: CompiledRule) -> QuietRule {
        let names: Vec<String> = rule.detections.keys().cloned().collect();
        let conds: Option<Vec<Cond>> = rule.conditions.iter().map(|c| cond(c, &names)).collect();
        let how = match conds {
            Some(conds) if rule.detections.values().all(plain) => {
                let sels = names
                    .iter()
                    .filter_map(|n| rule.detections.remove(n))
                    .collect();
                How::Walk(conds, sels)
            }
            _ => How::Rsigma(Box::new(rule)),
        };
        QuietRule { key, how }
    }

    /// Whether the rule matches `view`, as rsigma's engine decides it.
    pub fn matches(&self, view: &impl Event) -> bool {
        match &self.how {
            How::Walk(conds, sels) => conds.iter().any(|c| holds(c, sels, view)),
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

fn cond(c: &ConditionExpr, names: &[String]) -> Option<Cond> {
    let all = |v: &[ConditionExpr]| v.iter().map(|c| cond(c, names)).collect::<Option<Vec<_>>>();
    Some(match c {
        ConditionExpr::Identifier(n) => Cond::Selection(names.iter().position(|x| x == n)?),
        ConditionExpr::And(v) => Cond::And(all(v)?),
        ConditionExpr::Or(v) => Cond::Or(all(v)?),
        ConditionExpr::Not(c) => Cond::Not(Box::new(cond(c, names)?)),
        // `1 of selection*` and the like: rsigma's evaluator.
        _ => return None,
    })
}

/// A selection of field items (a map, a list of maps, or both joined).
fn plain(d: &CompiledDetection) -> bool {
    match d {
        CompiledDetection::AllOf(items) => items.iter().all(|i| i.field.is_some()),
        CompiledDetection::AnyOf(ds) | CompiledDetection::And(ds) => ds.iter().all(plain),
        _ => false,
    }
}

fn holds(c: &Cond, sels: &[CompiledDetection], view: &impl Event) -> bool {
    match c {
        Cond::Selection(i) => sels.get(*i).is_some_and(|d| selected(d, view)),
        Cond::And(v) => v.iter().all(|c| holds(c, sels, view)),
        Cond::Or(v) => v.iter().any(|c| holds(c, sels, view)),
        Cond::Not(c) => !holds(c, sels, view),
    }
}

fn selected(d: &CompiledDetection, view: &impl Event) -> bool {
    match d {
        CompiledDetection::AllOf(items) => items.iter().all(|i| item(i, view)),
        CompiledDetection::AnyOf(ds) => ds.iter().any(|d| selected(d, view)),
        CompiledDetection::And(ds) => ds.iter().all(|d| selected(d, view)),
        // `plain` admits nothing else.
        _ => false,
    }
}

/// One field item, with rsigma's rules for `exists` and for a field the event lacks (only a
/// `null` value matches it).
fn item(i: &CompiledDetectionItem, view: &impl Event) -> bool {
    let Some(field) = &i.field else {
        return false;
    };
    if let Some(expect) = i.exists {
        return view.get_field(field).is_some_and(|v| !v.is_null()) == expect;
    }
    match view.get_field(field) {
        Some(v) => i.matcher.matches(&v, view),
        None => matches!(i.matcher, CompiledMatcher::Null),
    }
}

#[cfg(test)]
mod tests {
    use rsigma_eval::{compile_rule, evaluate_rule, JsonEvent};
    use rsigma_parser::parse_sigma_yaml;
    use serde_json::json;

    use super::*;

    /// Every shape, walked here or handed to rsigma, decides as rsigma's engine does.
    #[test]
    fn quiet_rules_match_as_rsigma_does() {
        let detections = [
            ("s: {Initiated: 'true', Protocol: tcp}", "s", true),
            (
                "s: {Port: [80, 443]}\n  f: {Image|endswith: /curl}",
                "s and not f",
                true,
            ),
            (
                "s: [{Port: 80}, {Port: 22, Image|contains: ssh}]",
                "s",
                true,
            ),
            (
                "a: {Port|gte: 1000}\n  b: {Image|re: '^/usr/'}",
                "a or b",
                true,
            ),
            ("s: {Missing: null}", "s", true),
            ("s: {Image|exists: true, Gone|exists: false}", "s", true),
            ("s: {Image|cased: /usr/bin/Curl}", "not s", true),
            ("s_1: {Port: 80}\n  s_2: {Port: 22}", "1 of s_*", false),
            ("s: [curl, wget]", "s", false),
        ];
        let events = [
            json!({"Initiated": "true", "Protocol": "tcp", "Port": 80, "Image": "/usr/bin/curl"}),
            json!({"Initiated": "false", "Protocol": "TCP", "Port": 443, "Image": "/bin/wget"}),
            json!({"Port": 22, "Image": "/usr/sbin/sshd"}),
            json!({"Port": 2000, "Image": "/opt/x", "Missing": null}),
            json!({"Port": "80", "Image": "/usr/bin/Curl", "Gone": 1}),
            json!({}),
        ];
        let mut seen = [0usize; 2];
        for (det, condition, walked) in detections {
            let text = format!(
                "title: t\nid: t\nlogsource: {{category: test}}\ndetection:\n  {det}\n  condition: {condition}\n"
            );
            let coll = parse_sigma_yaml(&text).unwrap();
            let rule = compile_rule(&coll.rules[0]).unwrap();
            let quiet = QuietRule::new("t".into(), rule.clone());
            assert_eq!(matches!(quiet.how, How::Walk(..)), walked, "{det}");
            for e in &events {
                let ev = JsonEvent::borrow(e);
                seen[quiet.matches(&ev) as usize] += 1;
                assert_eq!(
                    quiet.matches(&ev),
                    evaluate_rule(&rule, &ev).is_some(),
                    "{det} / {condition} on {e}"
                );
            }
        }
        assert!(seen[0] > 10 && seen[1] > 10, "matches and misses: {seen:?}");
    }
}
