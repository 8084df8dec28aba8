//! Process lifecycle: exec (with argv), fork and exit from the `sched` tracepoints.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use probe_common::{
    EventHeader, EventKind, ExitEvent, ForkEvent, ARGS_MAX, CFG_THREADS, EXEC_FIXED_LEN,
    FLAG_ARGS_TRUNCATED, FLAG_ARGS_UNREADABLE, FLAG_THREAD, PATH_MAX,
};

use crate::{
    common::{emit, emit_bytes, enabled, fill_header},
    kernel::{current_task, offsets, read_kernel},
    maps::EXEC_SCRATCH,
};

/// Raw tracepoint: `(task, old_pid, bprm)`. `bprm` gives the filename as passed and the
/// interpreter of a script (`bprm->interp`), which no /proc read after the fact can do reliably.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let _ = try_exec(&ctx);
    0
}

/// Copies the kernel string at `*(base + off)` to `dst`; returns its length without the NUL.
#[inline(always)]
fn read_kstr_at(base: *const u8, off: u32, dst: *mut u8) -> usize {
    let ptr: *const u8 = read_kernel(base, off).unwrap_or(core::ptr::null());
    if ptr.is_null() {
        return 0;
    }
    let n = unsafe {
        bpf_probe_read_kernel_str(dst as *mut c_void, PATH_MAX as u32, ptr as *const c_void)
    };
    // n counts the NUL; exec paths are bounded by PATH_MAX, so nothing is cut here.
    if n > 0 {
        (n - 1) as usize & (PATH_MAX - 1)
    } else {
        0
    }
}

fn try_exec(ctx: &RawTracePointContext) -> Result<(), i64> {
    enabled(EventKind::ProcessExec).ok_or(0)?;
    let off = offsets();
    let ev = EXEC_SCRATCH.get_ptr_mut(0).ok_or(0)?;
    let ev = unsafe { &mut *ev };
    let task = current_task();
    fill_header(&mut ev.header, EventKind::ProcessExec, task, &off);

    let bprm = ctx.arg::<u64>(2) as *const u8;
    let data = ev.data.as_mut_ptr();
    let fname_len = read_kstr_at(bprm, off.bprm_filename, data);
    let interp_len = read_kstr_at(bprm, off.bprm_interp, data.wrapping_add(fname_len));
    ev.filename_len = fname_len as u32;
    ev.interp_len = interp_len as u32;
    let paths = fname_len + interp_len;

    // argv as the new image sees it: one NUL-separated block at mm->arg_start..arg_end.
    let mut args_len: usize = 0;
    let mm: *const u8 = read_kernel(task, off.task_mm).unwrap_or(core::ptr::null());
    if mm.is_null() {
        ev.header.flags |= FLAG_ARGS_UNREADABLE;
        ev.args_total = 0;
    } else {
        let start: u64 = read_kernel(mm, off.mm_arg_start).unwrap_or(0);
        let end: u64 = read_kernel(mm, off.mm_arg_end).unwrap_or(0);
        let total = end.saturating_sub(start);
        // The kernel caps argv+envp far below 4 GiB, so the cast keeps the value. No clamp
        // here on purpose: a `min` on the same register gave the 6.1 verifier contradictory
        // bounds on the impossible branch and it rejected the record length below.
        ev.args_total = total as u32;
        let mut want = total as usize;
        if want > ARGS_MAX {
            want = ARGS_MAX;
            ev.header.flags |= FLAG_ARGS_TRUNCATED;
        }
        if want > 0 {
            let dst = data.wrapping_add(paths);
            let ret = unsafe {
                bpf_probe_read_user(dst as *mut c_void, want as u32, start as *const c_void)
            };
            if ret == 0 {
                args_len = want;
            } else {
                ev.header.flags |= FLAG_ARGS_UNREADABLE;
            }
        }
    }
    ev.args_len = args_len as u32;
    let len = EXEC_FIXED_LEN + paths + args_len;
    emit_bytes(
        EventKind::ProcessExec,
        ev as *const _ as *const u8,
        len as u64,
    );
    Ok(())
}

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
    fill_header(&mut ev.header, EventKind::ProcessFork, current_task(), &off);
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
    let mut ev = ExitEvent {
        header: EventHeader::zeroed(),
        exit_code,
        _pad0: 0,
    };
    fill_header(&mut ev.header, EventKind::ProcessExit, task, &off);
    if !last {
        ev.header.flags |= FLAG_THREAD;
    }
    emit(EventKind::ProcessExit, &ev);
    Ok(())
}
