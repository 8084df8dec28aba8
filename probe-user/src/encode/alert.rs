//! The `alert` object of the native format (schema.md, "alert").
use serde::Serialize;

use crate::event::{
    alert::{BaselineHit, IocHit, RuleInfo},
    Alert,
};

#[derive(Serialize)]
pub struct RuleV<'a> {
    id: &'a str,
    title: &'a str,
    level: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    tags: &'a [String],
    references: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
}

#[derive(Serialize)]
pub struct AttackV<'a> {
    tactics: &'a [String],
    techniques: &'a [String],
}

#[derive(Serialize)]
pub struct MatchedV<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

/// One matched event, or (for a correlation) the contributing ones.
#[derive(Serialize)]
#[serde(untagged)]
pub enum MatchedOneOrMany<'a> {
    One(MatchedV<'a>),
    Many(Vec<MatchedV<'a>>),
}

#[derive(Serialize)]
pub struct IocV<'a> {
    indicator: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    value: &'a str,
    field: &'a str,
    list: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
pub struct BaselineV<'a> {
    workload: &'a str,
    dimension: &'a str,
    value: &'a str,
    state: &'a str,
}

#[derive(Serialize)]
pub struct AlertV<'a> {
    source: &'static str,
    rule: RuleV<'a>,
    attack: AttackV<'a>,
    matched: MatchedOneOrMany<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ioc: Option<IocV<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<BaselineV<'a>>,
}

impl<'a> AlertV<'a> {
    pub fn new(a: &'a Alert) -> Self {
        let r: &RuleInfo = &a.rule;
        let correlation = !a.group.is_empty() || !a.contributing.is_empty();
        let matched = if correlation {
            MatchedOneOrMany::Many(
                a.contributing
                    .iter()
                    .map(|s| MatchedV {
                        kind: None,
                        seq: Some(*s),
                    })
                    .collect(),
            )
        } else {
            MatchedOneOrMany::One(MatchedV {
                kind: Some(a.matched_kind),
                seq: a.matched_seq,
            })
        };
        AlertV {
            source: a.source.as_str(),
            rule: RuleV {
                id: &r.id,
                title: &r.title,
                level: &r.level,
                status: r.status.as_deref(),
                description: r.description.as_deref(),
                tags: &r.tags,
                references: &r.references,
                file: r.file.as_deref(),
            },
            attack: AttackV {
                tactics: &r.tactics,
                techniques: &r.techniques,
            },
            matched,
            group: correlation.then(|| {
                a.group
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                    .collect()
            }),
            ioc: a.ioc.as_ref().map(|h: &IocHit| IocV {
                indicator: &h.indicator,
                kind: h.kind,
                value: &h.value,
                field: h.field,
                list: &h.list,
                name: h.name.as_deref(),
            }),
            baseline: a.baseline.as_ref().map(|b: &BaselineHit| BaselineV {
                workload: &b.workload,
                dimension: b.dimension,
                value: &b.value,
                state: b.state,
            }),
        }
    }
}
