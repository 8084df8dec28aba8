//! The process family: exec, fork and exit from the scheduler tracepoints; its hooks and its
//! decoder.
pub mod decode;

use probe_common::EventKind;

use crate::kernel::hook::{Attach, Hook};

/// The process family's hooks.
pub const HOOKS: &[Hook] = &[
    Hook {
        program: "sched_process_exec",
        attach: Attach::RawTracePoint("sched_process_exec"),
        kinds: &[EventKind::ProcessExec],
    },
    Hook {
        program: "sched_process_fork",
        attach: Attach::RawTracePoint("sched_process_fork"),
        kinds: &[EventKind::ProcessFork],
    },
    Hook {
        program: "sched_process_exit",
        attach: Attach::TracePoint("sched", "sched_process_exit"),
        kinds: &[EventKind::ProcessExit],
    },
];
