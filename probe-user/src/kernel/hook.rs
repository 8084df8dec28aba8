//! The hook spec each family fills in for the loader: which program, where it attaches, which
//! kinds it serves. A leaf: families name it, and never the loader itself.
use probe_common::EventKind;

/// How a program attaches.
#[derive(Clone, Copy, Debug)]
pub enum Attach {
    TracePoint(&'static str, &'static str),
    RawTracePoint(&'static str),
}

impl Attach {
    pub fn describe(&self) -> String {
        match self {
            Attach::TracePoint(c, n) => format!("tracepoint/{c}/{n}"),
            Attach::RawTracePoint(n) => format!("raw_tracepoint/{n}"),
        }
    }
}

/// One row of a family's hook table. A hook is attached when any of its kinds is enabled.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    pub program: &'static str,
    pub attach: Attach,
    pub kinds: &'static [EventKind],
}

/// A `syscalls:sys_{enter,exit}_<name>` hook row.
pub const fn syscall(
    program: &'static str,
    tracepoint: &'static str,
    kinds: &'static [EventKind],
) -> Hook {
    Hook {
        program,
        attach: Attach::TracePoint("syscalls", tracepoint),
        kinds,
    }
}

/// What happened to one hook.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HookReport {
    pub hook: String,
    pub program: &'static str,
    pub attached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A family could not write one of its kernel maps.
#[derive(Debug, thiserror::Error)]
#[error("eBPF map {0}: {1}")]
pub struct MapWriteError(pub &'static str, pub aya::maps::MapError);

impl MapWriteError {
    /// The object has no map of that name.
    pub fn missing(name: &'static str) -> Self {
        MapWriteError(name, aya::maps::MapError::InvalidName { name: name.into() })
    }
}
