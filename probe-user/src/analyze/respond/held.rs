//! What the stage holds: frozen containers (cgroup), stopped host processes (their pidfd),
//! isolated interfaces. Listed and released from the console, and at shutdown.
use std::{os::fd::OwnedFd, path::PathBuf};

use crate::event::{response::Target, Alert};

/// The workload a baseline alert names (`baseline:WORKLOAD` bindings match on it).
pub fn alert_workload(a: &Alert) -> Option<&str> {
    a.baseline.as_ref().map(|b| b.workload.as_str())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldKind {
    Freeze,
    Isolate,
}

impl HeldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HeldKind::Freeze => "freeze",
            HeldKind::Isolate => "isolate",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Container(String),
    /// pid, start time.
    Process(u32, u64),
}

/// How to undo it.
pub enum How {
    Cgroup(PathBuf),
    Stopped(OwnedFd),
    Iface(super::isolate::Link),
}

pub struct Item {
    pub key: Key,
    pub kind: HeldKind,
    pub target: Target,
    pub how: How,
}

#[derive(Default)]
pub struct Held {
    items: Vec<Item>,
}

impl Held {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get(&self, key: &Key, kind: HeldKind) -> Option<&Item> {
        self.items.iter().find(|i| i.key == *key && i.kind == kind)
    }

    pub fn add(&mut self, key: Key, kind: HeldKind, target: Target, how: How) {
        self.items.push(Item {
            key,
            kind,
            target,
            how,
        });
    }

    /// For `tprobe respond list`.
    pub fn list(&self) -> serde_json::Value {
        self.items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "action": i.kind.as_str(),
                    "target": i.target,
                })
            })
            .collect::<Vec<_>>()
            .into()
    }

    /// Takes out what `target` names: a container id (or a prefix of 12 or more), an entity
    /// id, `pid:N`, an interface name, or `all`.
    pub fn take_matching(&mut self, target: &str) -> Vec<Item> {
        let hit = |i: &Item| {
            let t = &i.target;
            target == "all"
                || t.container
                    .as_deref()
                    .is_some_and(|c| c == target || (target.len() >= 12 && c.starts_with(target)))
                || t.entity_id.as_deref() == Some(target)
                || t.iface.as_deref() == Some(target)
                || target
                    .strip_prefix("pid:")
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|p| t.pid == Some(p))
        };
        let (out, keep): (Vec<Item>, Vec<Item>) =
            std::mem::take(&mut self.items).into_iter().partition(hit);
        self.items = keep;
        out
    }

    pub fn take_all(&mut self) -> Vec<Item> {
        std::mem::take(&mut self.items)
    }
}
