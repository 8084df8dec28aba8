//! `response.<action>`: one action of the respond stage (schema.md, "response"), done, refused,
//! failed or only pretended (dry run). A leaf.
use serde::Serialize;

/// The action as the user binds it to a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Kill,
    KillTree,
    Freeze,
    Isolate,
    Release,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::Kill,
        Action::KillTree,
        Action::Freeze,
        Action::Isolate,
        Action::Release,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::KillTree => "kill-tree",
            Action::Freeze => "freeze",
            Action::Isolate => "isolate",
            Action::Release => "release",
        }
    }

    /// The event kind: `kill-tree` is a `response.kill` (its `action` says which).
    pub fn kind(self) -> &'static str {
        match self {
            Action::Kill | Action::KillTree => "response.kill",
            Action::Freeze => "response.freeze",
            Action::Isolate => "response.isolate",
            Action::Release => "response.release",
        }
    }
}

/// What the action was aimed at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Target {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// A container id (freeze and isolate of a container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The network interface an isolation holds (the host side of the namespace's link).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
}

/// The alert (or deny-list entry, or console request) the action answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Trigger {
    pub rule_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_seq: Option<u64>,
}

/// `response` of the schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Response {
    pub action: Action,
    pub target: Target,
    pub trigger: Trigger,
    pub dry_run: bool,
    pub ok: bool,
    /// The errno name when the action failed (`ESRCH`, `EPERM`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Words for a refusal or a failure (protected target, rate limit, host network, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The kernel acted (an exec denied at `sched_process_exec`).
    pub in_kernel: bool,
    /// From the triggering event's kernel time to the action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// `kill-tree`: every pid signalled, the target first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<u32>,
}

impl Response {
    /// A response that has not happened yet: fill in `ok`, `error`, `reason`.
    pub fn new(action: Action, target: Target, trigger: Trigger, dry_run: bool) -> Self {
        Response {
            action,
            target,
            trigger,
            dry_run,
            ok: false,
            error: None,
            reason: None,
            in_kernel: false,
            latency_us: None,
            pids: Vec::new(),
        }
    }

    /// Refused, with the reason; nothing was done.
    pub fn refused(mut self, reason: impl Into<String>) -> Self {
        self.ok = false;
        self.reason = Some(reason.into());
        self
    }
}
