//! `alert`: one detection, by a Sigma rule, an IoC list or a learned baseline. It stands alone:
//! the matched event's process, parent, container and own objects travel with it.
use std::sync::Arc;

use super::Body;

/// Which analyzer raised the alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertSource {
    Sigma,
    Ioc,
    Baseline,
}

impl AlertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSource::Sigma => "sigma",
            AlertSource::Ioc => "ioc",
            AlertSource::Baseline => "baseline",
        }
    }
}

/// A rule's identity and metadata, shared by all of its alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    /// Sigma level: `informational`, `low`, `medium`, `high`, `critical`.
    pub level: String,
    pub status: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub references: Vec<String>,
    /// ATT&CK tactics (names, e.g. `execution`) and techniques (`T1059.004`) from the tags.
    pub tactics: Vec<String>,
    pub techniques: Vec<String>,
    /// The file the rule came from (`rules list`, error messages).
    pub file: Option<String>,
}

/// What an IoC alert matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IocHit {
    /// The indicator as listed (a hash, an address or CIDR, a domain).
    pub indicator: String,
    /// `sha256`, `ip`, `domain`.
    pub kind: &'static str,
    /// The value of the event that matched it, and the field it came from.
    pub value: String,
    pub field: &'static str,
    /// The list's file, and the indicator's name when the list gives one.
    pub list: String,
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub source: AlertSource,
    pub rule: Arc<RuleInfo>,
    /// `kind` of the matched event (the last one, for a correlation).
    pub matched_kind: &'static str,
    /// `seq` of the matched event; `None` when it was analysed but not emitted.
    pub matched_seq: Option<u64>,
    /// The matched event's own objects (`file`, `net`, `exec`, ...).
    pub matched: Option<Box<Body>>,
    /// Correlations: the group-by values and the seqs of the contributing events (capped).
    pub group: Vec<(String, String)>,
    pub contributing: Vec<u64>,
    pub ioc: Option<IocHit>,
}
