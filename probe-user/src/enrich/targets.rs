//! The process a security event acts on (a ptrace tracee, a signal's receiver, the process
//! whose memory was written): from the process table by the ids the kernel gave (exact, like
//! every event's own process), else by the pid the caller passed, when it is a host pid.
use probe_common::SecSyscall;

use super::process::ProcessTable;
use crate::event::{Body, Event, Task};

/// Fills `target_info` of a security event.
pub fn resolve(table: &mut ProcessTable, ev: &mut Event) {
    let Body::Security(r) = &mut ev.body else {
        return;
    };
    let Some(actor) = ev.task.as_ref() else {
        return;
    };
    if let Some(t) = r.target {
        let task = Task {
            pid: t.pid,
            tid: t.tid,
            start_ns: t.start_ns,
            ppid: 0,
            parent_start_ns: 0,
            comm: Vec::new(),
            flags: 0,
            ..actor.clone()
        };
        r.target_info = Some(table.latest_image(&task));
        return;
    }
    if r.caller_pidns {
        return;
    }
    let pid = match r.syscall {
        Some(SecSyscall::Ptrace) if r.args[0] != 0 => r.args[1],
        Some(SecSyscall::ProcessVmWritev | SecSyscall::Kill | SecSyscall::Tgkill) => r.args[0],
        _ => return,
    } as i32;
    if pid > 0 {
        r.target_info = table.find_pid(pid as u32);
    }
}
