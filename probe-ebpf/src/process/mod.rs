//! Process lifecycle: exec (`exec`: argv, exe, cwd), fork and exit from the `sched`
//! tracepoints, and execs that fail (`failed`, from the execve/execveat syscalls).
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use probe_common::{EventHeader, EventKind, ExitEvent, ForkEvent, CFG_THREADS, FLAG_THREAD};

use crate::{
    common::{emit, enabled, fill_header},
    kernel::{current_task, offsets, read_kernel},
};

mod exec;
mod failed;

/// Raw tracepoint: its arguments are the parent and child `task_struct`, which tell a new
/// process from a new thread on every kernel without depending on the record's layout.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let _ = try_fork(&ctx);
    0
}

fn try_fork(ctx: &RawTracePointContext) -> Result<(), i64> {
    let off = offsets();
    let child: *const u8 = ctx.arg::<u64>(1) as *const u8;
    let child_tid: u32 = read_kernel(child, off.task_pid)?;
    let child_pid: u32 = read_kernel(child, off.task_tgid)?;
    let is_thread = child_tid != child_pid;
    if !is_thread {
        // Before the filters: the child joins the pid set even when fork events are off.
        crate::filter::follow_fork((bpf_get_current_pid_tgid() >> 32) as u32, child_pid);
    }
    let cfg = enabled(EventKind::ProcessFork).ok_or(0)?;
    if is_thread && cfg.flags & CFG_THREADS == 0 {
        return Ok(());
    }
    let child_start: u64 = read_kernel(child, off.task_start_boottime).unwrap_or(0);
    let mut ev = ForkEvent {
        header: EventHeader::zeroed(),
        child_pid,
        child_tid,
        child_start_ns: child_start,
    };
    fill_header(&mut ev.header, EventKind::ProcessFork, current_task());
    if is_thread {
        ev.header.flags |= FLAG_THREAD;
    }
    emit(EventKind::ProcessFork, &ev);
    Ok(())
}

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let _ = try_exit();
    // After the exit event (which needs the pid still in the set), whatever was filtered.
    crate::filter::forget_exited(current_task(), &offsets());
    0
}

fn try_exit() -> Result<(), i64> {
    let cfg = enabled(EventKind::ProcessExit).ok_or(0)?;
    let off = offsets();
    let task = current_task();
    // The process ends with its last thread: signal->live has dropped to zero by now.
    let signal: *const u8 = read_kernel(task, off.task_signal)?;
    let live: i32 = read_kernel(signal, off.signal_live)?;
    let last = live == 0;
    if !last && cfg.flags & CFG_THREADS == 0 {
        return Ok(());
    }
    let exit_code: u32 = read_kernel(task, off.task_exit_code)?;
    let (utime_ns, stime_ns, runtime_ns) = crate::task::cpu_times(task, signal, last);
    let mut ev = ExitEvent {
        header: EventHeader::zeroed(),
        exit_code,
        _pad0: 0,
        utime_ns,
        stime_ns,
        runtime_ns,
    };
    fill_header(&mut ev.header, EventKind::ProcessExit, task);
    if !last {
        ev.header.flags |= FLAG_THREAD;
    }
    emit(EventKind::ProcessExit, &ev);
    Ok(())
}
