//! What an `alert` says about its rule and what it matched (the alert itself, which carries the
//! matched event's body, is [`super::Alert`]). A leaf.
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

/// What a baseline alert found: a value the workload's profile does not have
/// (`alert.baseline`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaselineHit {
    /// The workload key (docs/baselines.md).
    pub workload: String,
    /// `exec`, `file.write`, `connect`, `dns`, ..., or `rate`.
    pub dimension: &'static str,
    /// The new value (for `rate`, the event kind whose rate went up).
    pub value: String,
    /// The workload's state: `watching`.
    pub state: &'static str,
}
