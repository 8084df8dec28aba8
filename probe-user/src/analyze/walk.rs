//! A rule's usual shape (`and` / `or` / `not` over named selections of field items) decided
//! outside rsigma's engine, over rsigma's compiled matchers, with the selections found by index.
//! rsigma lowercases a copy of the value for every case-insensitive string matcher it runs
//! (an allocation per item); ASCII text is compared here byte by byte instead, and any other
//! matcher or value is left to rsigma's own `matches`. `anchor` finds a field item every
//! match needs, which `anchored` indexes rules by.
use rsigma_eval::{
    event::EventValue,
    matcher::{CompiledMatcher, GroupMode},
    CompiledDetection, CompiledRule,
};
use rsigma_parser::ConditionExpr;

use super::view::{FieldRef, Fields};

enum Cond {
    Selection(usize),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

/// A selection: rsigma's compiled detection of field items, with each field resolved.
enum Sel {
    AllOf(Vec<Item>),
    AnyOf(Vec<Sel>),
    And(Vec<Sel>),
}

struct Item {
    field: FieldRef,
    exists: Option<bool>,
    matcher: CompiledMatcher,
}

/// A rule in the walked shape.
pub struct Walk {
    /// Any one holding is a match (Sigma's list of conditions).
    conds: Vec<Cond>,
    sels: Vec<Sel>,
}

/// A value an anchor item accepts, as the index keys it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// The value's text, lowercased (a case-insensitive `Exact`: rsigma stores it lowercased).
    Folded(String),
    /// The value's text as it is (`|cased`).
    Cased(String),
    /// A number's bits (`NumericEq` of a value of magnitude at least 1, where rsigma's
    /// epsilon comparison is equality).
    Num(u64),
}

impl Walk {
    /// The rule walked, or the rule back when some part has another shape.
    pub fn of(rule: CompiledRule) -> Result<Walk, Box<CompiledRule>> {
        let names: Vec<&String> = rule.detections.keys().collect();
        let conds: Option<Vec<Cond>> = rule.conditions.iter().map(|c| cond(c, &names)).collect();
        let sels: Option<Vec<Sel>> = names.iter().map(|n| sel(&rule.detections[*n])).collect();
        match (conds, sels) {
            (Some(conds), Some(sels)) => Ok(Walk { conds, sels }),
            _ => Err(Box::new(rule)),
        }
    }

    /// Whether the rule matches `view`, as rsigma's engine decides it. `scratch` holds a
    /// lowercased copy when a substring search needs one.
    pub fn matches(&self, view: &impl Fields, scratch: &mut String) -> bool {
        self.conds
            .iter()
            .any(|c| holds(c, &self.sels, view, scratch))
    }

    /// A field item that every match of the rule satisfies, with the keys of the values it
    /// accepts: an item of a selection the only condition requires (not under `or` or
    /// `not`) whose matcher is an equality. The item with the fewest keys is taken.
    pub fn anchor(&self) -> Option<(FieldRef, Vec<Key>)> {
        let [c] = self.conds.as_slice() else {
            return None;
        };
        let mut required = Vec::new();
        required_selections(c, &mut required);
        let mut items = Vec::new();
        for i in required {
            if let Some(d) = self.sels.get(i) {
                required_items(d, &mut items);
            }
        }
        items
            .into_iter()
            .filter(|i| i.exists.is_none())
            .filter_map(|i| Some((i.field.clone(), keys(&i.matcher)?)))
            .min_by_key(|(_, k)| k.len())
    }
}

fn cond(c: &ConditionExpr, names: &[&String]) -> Option<Cond> {
    let all = |v: &[ConditionExpr]| v.iter().map(|c| cond(c, names)).collect::<Option<Vec<_>>>();
    Some(match c {
        ConditionExpr::Identifier(n) => Cond::Selection(names.iter().position(|x| *x == n)?),
        ConditionExpr::And(v) => Cond::And(all(v)?),
        ConditionExpr::Or(v) => Cond::Or(all(v)?),
        ConditionExpr::Not(c) => Cond::Not(Box::new(cond(c, names)?)),
        // `1 of selection*` and the like: rsigma's evaluator.
        _ => return None,
    })
}

fn required_selections(c: &Cond, out: &mut Vec<usize>) {
    match c {
        Cond::Selection(i) => out.push(*i),
        Cond::And(v) => v.iter().for_each(|c| required_selections(c, out)),
        Cond::Or(_) | Cond::Not(_) => {}
    }
}

/// A selection of field items (a map, a list of maps, or both joined) with its fields
/// resolved; `None` for any other detection (keywords).
fn sel(d: &CompiledDetection) -> Option<Sel> {
    let all = |ds: &[CompiledDetection]| ds.iter().map(sel).collect::<Option<Vec<_>>>();
    Some(match d {
        CompiledDetection::AllOf(items) => Sel::AllOf(
            items
                .iter()
                .map(|i| {
                    Some(Item {
                        field: FieldRef::new(i.field.as_deref()?),
                        exists: i.exists,
                        matcher: i.matcher.clone(),
                    })
                })
                .collect::<Option<_>>()?,
        ),
        CompiledDetection::AnyOf(ds) => Sel::AnyOf(all(ds)?),
        CompiledDetection::And(ds) => Sel::And(all(ds)?),
        _ => return None,
    })
}

fn required_items<'a>(d: &'a Sel, out: &mut Vec<&'a Item>) {
    match d {
        Sel::AllOf(items) => out.extend(items),
        Sel::And(ds) => ds.iter().for_each(|d| required_items(d, out)),
        Sel::AnyOf(_) => {}
    }
}

/// The keys of the values `m` accepts, when it accepts no other (see [`Key`]).
fn keys(m: &CompiledMatcher) -> Option<Vec<Key>> {
    use CompiledMatcher as M;
    Some(match m {
        M::Exact {
            value,
            case_insensitive: true,
        } => vec![Key::Folded(value.clone())],
        M::Exact {
            value,
            case_insensitive: false,
        } => vec![Key::Cased(value.clone())],
        M::NumericEq(n) if n.is_finite() && n.abs() >= 1.0 => vec![Key::Num(n.to_bits())],
        M::AnyOf(ms)
        | M::CaseInsensitiveGroup {
            children: ms,
            mode: GroupMode::Any,
        } => {
            let mut all = Vec::new();
            for m in ms {
                all.extend(keys(m)?);
            }
            all
        }
        _ => return None,
    })
}

fn holds(c: &Cond, sels: &[Sel], view: &impl Fields, scratch: &mut String) -> bool {
    match c {
        Cond::Selection(i) => sels.get(*i).is_some_and(|d| selected(d, view, scratch)),
        Cond::And(v) => v.iter().all(|c| holds(c, sels, view, scratch)),
        Cond::Or(v) => v.iter().any(|c| holds(c, sels, view, scratch)),
        Cond::Not(c) => !holds(c, sels, view, scratch),
    }
}

fn selected(d: &Sel, view: &impl Fields, scratch: &mut String) -> bool {
    match d {
        Sel::AllOf(items) => items.iter().all(|i| item(i, view, scratch)),
        Sel::AnyOf(ds) => ds.iter().any(|d| selected(d, view, scratch)),
        Sel::And(ds) => ds.iter().all(|d| selected(d, view, scratch)),
    }
}

/// One field item, with rsigma's rules for `exists` and for a field the event lacks (only a
/// `null` value matches it).
fn item(i: &Item, view: &impl Fields, scratch: &mut String) -> bool {
    if let Some(expect) = i.exists {
        return view.field(&i.field).is_some_and(|v| !v.is_null()) == expect;
    }
    match view.field(&i.field) {
        Some(v) => decide(&i.matcher, &v, view, scratch),
        None => matches!(i.matcher, CompiledMatcher::Null),
    }
}

/// `m` on `v` as `CompiledMatcher::matches` decides it.
fn decide(m: &CompiledMatcher, v: &EventValue, view: &impl Fields, scratch: &mut String) -> bool {
    use CompiledMatcher as M;
    match (m, v) {
        (M::AnyOf(ms), _) => ms.iter().any(|m| decide(m, v, view, scratch)),
        (M::AllOf(ms), _) => ms.iter().all(|m| decide(m, v, view, scratch)),
        (M::Not(m), _) => !decide(m, v, view, scratch),
        (M::CaseInsensitiveGroup { children, mode }, EventValue::Str(s)) if s.is_ascii() => {
            let lowered = lower(s, scratch);
            // A child that decides the group decides it as in rsigma; one of a kind left to
            // rsigma before that hands the whole group over.
            let decisive = *mode == GroupMode::Any;
            for c in children {
                match pre_lowered(c, lowered) {
                    Some(r) if r == decisive => return decisive,
                    Some(_) => {}
                    None => return m.matches(v, view),
                }
            }
            !decisive
        }
        (_, EventValue::Str(s)) if s.is_ascii() => {
            ascii(m, s, scratch).unwrap_or_else(|| m.matches(v, view))
        }
        _ => m.matches(v, view),
    }
}

/// `s` lowercased: itself when it has no uppercase letter, else a copy in `scratch`.
fn lower<'a>(s: &'a str, scratch: &'a mut String) -> &'a str {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return s;
    }
    scratch.clear();
    scratch.push_str(s);
    scratch.make_ascii_lowercase();
    scratch
}

/// `a` lowercased equals `b` (which rsigma stores lowercased).
fn eq_lower(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_ascii_lowercase() == *y)
}

/// A string matcher on ASCII text (where `to_lowercase` is ASCII lowercasing); `None` for
/// other matchers.
fn ascii(m: &CompiledMatcher, s: &str, scratch: &mut String) -> Option<bool> {
    use CompiledMatcher as M;
    let b = s.as_bytes();
    Some(match m {
        M::Exact {
            value,
            case_insensitive: true,
        } => eq_lower(b, value.as_bytes()),
        M::StartsWith {
            value,
            case_insensitive: true,
        } => b.len() >= value.len() && eq_lower(&b[..value.len()], value.as_bytes()),
        M::EndsWith {
            value,
            case_insensitive: true,
        } => b.len() >= value.len() && eq_lower(&b[b.len() - value.len()..], value.as_bytes()),
        M::Contains {
            value,
            case_insensitive: true,
        } => lower(s, scratch).contains(value.as_str()),
        M::Exact { value, .. } => s == value,
        M::StartsWith { value, .. } => s.starts_with(value.as_str()),
        M::EndsWith { value, .. } => s.ends_with(value.as_str()),
        M::Contains { value, .. } => s.contains(value.as_str()),
        _ => return None,
    })
}

/// A child of a case-insensitive group on the lowered text, as rsigma decides it; `None` for
/// a kind left to rsigma.
fn pre_lowered(m: &CompiledMatcher, lowered: &str) -> Option<bool> {
    use CompiledMatcher as M;
    Some(match m {
        M::Exact {
            value,
            case_insensitive: true,
        } => lowered == value,
        M::Contains {
            value,
            case_insensitive: true,
        } => lowered.contains(value.as_str()),
        M::StartsWith {
            value,
            case_insensitive: true,
        } => lowered.starts_with(value.as_str()),
        M::EndsWith {
            value,
            case_insensitive: true,
        } => lowered.ends_with(value.as_str()),
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use rsigma_eval::compile_rule;
    use rsigma_parser::parse_sigma_yaml;
    use serde_json::json;

    use super::*;

    /// Rule shapes and events for the differential tests (quiet.rs: the walk and rsigma's
    /// evaluator; anchored.rs: the index): each detection, its condition, and whether it has
    /// the walked shape.
    pub const DETECTIONS: &[(&str, &str, bool)] = &[
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
        ("s: {Image|cased: /usr/bin/Curl, Port: 80}", "s", true),
        (
            "s: {Image|endswith: [/sh, /bash, /CURL]}\n  o: {Initiated: 'true'}",
            "s and o",
            true,
        ),
        (
            "s: {Image|contains: [Bin/C, wget], Image|startswith: /usr}",
            "s",
            true,
        ),
        (
            "s: {Image: [/usr/bin/curl, /bin/WGET], Port: 443}",
            "s",
            true,
        ),
        ("s: {Image|re: '(?i)CURL$', Port: 80}", "s", true),
        ("s: {Port: 2000.5}", "s", true),
        ("s: {Tags: b}", "s", true),
        ("s: {Image: '/ÜSR/bin/x'}", "s", true),
        ("s_1: {Port: 80}\n  s_2: {Port: 22}", "1 of s_*", false),
        ("s: [curl, wget]", "s", false),
    ];

    pub fn events() -> Vec<serde_json::Value> {
        vec![
            json!({"Initiated": "true", "Protocol": "tcp", "Port": 80, "Image": "/usr/bin/curl"}),
            json!({"Initiated": "false", "Protocol": "TCP", "Port": 443, "Image": "/bin/wget"}),
            json!({"Port": 22, "Image": "/usr/sbin/sshd", "Tags": ["a", "B"]}),
            json!({"Port": 2000, "Image": "/opt/x", "Missing": null}),
            json!({"Port": "80", "Image": "/usr/bin/Curl", "Gone": 1}),
            json!({"Port": 2000.5, "Image": "/ÜSR/BIN/X", "Initiated": "TRUE"}),
            json!({"Port": "443.0", "Image": "/bin/BASH", "Initiated": true}),
            json!({}),
        ]
    }

    pub fn rule(det: &str, condition: &str) -> CompiledRule {
        let text = format!(
            "title: t\nid: t\nlogsource: {{category: test}}\ndetection:\n  {det}\n  condition: {condition}\n"
        );
        compile_rule(&parse_sigma_yaml(&text).unwrap().rules[0]).unwrap()
    }

    #[test]
    fn an_anchor_is_an_equality_every_match_needs() {
        let anchor = |det, cond| {
            let a = Walk::of(rule(det, cond)).ok().unwrap().anchor();
            a.map(|(f, k)| (f.path, k))
        };
        let folded = |s: &str| Key::Folded(s.into());
        assert_eq!(
            anchor(
                "s: {Image|endswith: /sh}\n  o: {Initiated: 'true'}",
                "s and o"
            ),
            Some(("Initiated".into(), vec![folded("true")]))
        );
        assert_eq!(
            anchor("s: {Port: [80, 443], Image: [/a, /b, /c]}", "s"),
            Some((
                "Port".into(),
                vec![Key::Num(80f64.to_bits()), Key::Num(443f64.to_bits())]
            ))
        );
        assert_eq!(
            anchor("s: {Image|cased: /X}", "s"),
            Some(("Image".into(), vec![Key::Cased("/X".into())]))
        );
        // Under `or` or `not`, or only a pattern: no item every match needs.
        assert_eq!(anchor("a: {Port: 80}\n  b: {Port: 22}", "a or b"), None);
        assert_eq!(anchor("a: {Port: 80}", "not a"), None);
        assert_eq!(anchor("a: {Image|contains: x}", "a"), None);
        assert_eq!(anchor("a: {Port: 0.5}", "a"), None);
        assert_eq!(anchor("a: [{Port: 80}, {Port: 22}]", "a"), None);
    }
}
