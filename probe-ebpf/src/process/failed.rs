//! `process.exec_failed`: execve/execveat that return an error. The entry only keeps the
//! arguments' user addresses in the thread's storage; the exit reads the filename and argv
//! from them only when the call failed (the caller's memory is still its own then), so a
//! successful exec costs a few stores.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_loop, bpf_probe_read_user, bpf_probe_read_user_str},
    macros::{btf_map, map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};
use probe_common::{
    EventKind, ExecFailedEvent, ARGC_MAX, ARGS_MAX, AT_FDCWD, EXECF_FILENAME_TRUNCATED,
    EXECF_FILENAME_UNREADABLE, EXECF_FIXED_LEN, FLAG_ARGS_TRUNCATED, FLAG_ARGS_UNREADABLE,
    PATH_MAX,
};

use crate::{
    common::{bound, count_loss, emit_bytes, enabled, fill_header, kind_enabled, sys_arg, sys_ret},
    kernel::current_task,
    maps::TaskStorage,
};

/// A thread's exec call between its entry and its exit.
#[repr(C)]
struct ExecCall {
    filename: u64,
    argv: u64,
    dirfd: i32,
    at_flags: u32,
    /// 1 while a call is in flight.
    armed: u32,
    _pad0: u32,
}

#[btf_map]
static EXEC_CALLS: TaskStorage<ExecCall> = TaskStorage::new();

/// Where a failed exec's record is built: room past `data` for the largest argv read at the
/// largest offset, so the verifier sees every write in bounds.
#[repr(C)]
struct Scratch {
    ev: ExecFailedEvent,
    _slack: [u8; ARGS_MAX],
}

#[map]
static EXECF_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The argv walk in progress on this CPU (a `bpf_loop` over the user array).
#[repr(C)]
struct ArgvWalk {
    argv: u64,
    /// Where argv starts in `data` (after the filename).
    base: u64,
    /// Bytes of argv written so far.
    pos: u64,
    i: u64,
}

#[map]
static ARGV_WALK: PerCpuArray<ArgvWalk> = PerCpuArray::with_max_entries(1, 0);

#[tracepoint(category = "syscalls", name = "sys_enter_execve")]
pub fn proc_enter_execve(ctx: TracePointContext) -> u32 {
    enter(AT_FDCWD, sys_arg(&ctx, 0), sys_arg(&ctx, 1), 0);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_execveat")]
pub fn proc_enter_execveat(ctx: TracePointContext) -> u32 {
    enter(
        sys_arg(&ctx, 0) as i32,
        sys_arg(&ctx, 1),
        sys_arg(&ctx, 2),
        sys_arg(&ctx, 4) as u32,
    );
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_execve")]
pub fn proc_exit_execve(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_execveat")]
pub fn proc_exit_execveat(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

#[inline(always)]
fn enter(dirfd: i32, filename: u64, argv: u64, at_flags: u32) {
    if enabled(EventKind::ProcessExecFailed).is_none() {
        if let Some(c) = EXEC_CALLS.current() {
            unsafe { (*c).armed = 0 };
        }
        return;
    }
    let Some(c) = EXEC_CALLS.current_or_create() else {
        count_loss(EventKind::ProcessExecFailed);
        return;
    };
    let c = unsafe { &mut *c };
    c.filename = filename;
    c.argv = argv;
    c.dirfd = dirfd;
    c.at_flags = at_flags;
    c.armed = 1;
}

#[inline(always)]
fn exit(ctx: &TracePointContext) {
    let Some(c) = EXEC_CALLS.current() else {
        return;
    };
    let c = unsafe { &mut *c };
    if c.armed == 0 {
        return;
    }
    c.armed = 0;
    let ret = sys_ret(ctx);
    if ret >= 0 || kind_enabled(EventKind::ProcessExecFailed).is_none() {
        return;
    }
    let _ = report(c, ret);
}

fn report(c: &ExecCall, ret: i64) -> Option<()> {
    let s = EXECF_SCRATCH.get_ptr_mut(0)?;
    let ev = unsafe { &mut (*s).ev };
    fill_header(&mut ev.header, EventKind::ProcessExecFailed, current_task());
    ev.ret = ret;
    ev.dirfd = c.dirfd;
    ev.at_flags = c.at_flags;
    ev.fflags = 0;
    ev._pad0 = 0;
    let data = ev.data.as_mut_ptr();
    let n = unsafe {
        bpf_probe_read_user_str(
            data as *mut c_void,
            PATH_MAX as u32,
            c.filename as *const c_void,
        )
    };
    let flen = if n <= 0 {
        ev.fflags |= EXECF_FILENAME_UNREADABLE;
        0
    } else {
        if n as usize == PATH_MAX {
            ev.fflags |= EXECF_FILENAME_TRUNCATED;
        }
        (n - 1) as u32 & (PATH_MAX as u32 - 1)
    };
    ev.filename_len = flen;
    let w = ARGV_WALK.get_ptr_mut(0)?;
    let w = unsafe { &mut *w };
    w.argv = c.argv;
    w.base = flen as u64;
    w.pos = 0;
    w.i = 0;
    if c.argv != 0 {
        unsafe {
            bpf_loop(
                ARGC_MAX as u32 + 1,
                argv_cb as *mut c_void,
                core::ptr::null_mut(),
                0,
            )
        };
    }
    let args = bound(w.pos as u32, 2 * ARGS_MAX as u32 - 1) as usize;
    let args = if args > ARGS_MAX { ARGS_MAX } else { args };
    ev.args_len = args as u32;
    let len = EXECF_FIXED_LEN + (flen as usize & (PATH_MAX - 1)) + args;
    emit_bytes(
        EventKind::ProcessExecFailed,
        ev as *const ExecFailedEvent as *const u8,
        len as u64,
    );
    Some(())
}

/// One argv entry: its pointer, then its string, appended NUL-terminated.
extern "C" fn argv_cb(_i: u64, _ctx: *mut c_void) -> i64 {
    let (Some(w), Some(s)) = (ARGV_WALK.get_ptr_mut(0), EXECF_SCRATCH.get_ptr_mut(0)) else {
        return 1;
    };
    let (w, ev) = unsafe { (&mut *w, &mut (*s).ev) };
    let mut p: u64 = 0;
    let r = unsafe {
        bpf_probe_read_user(
            &mut p as *mut u64 as *mut c_void,
            8,
            (w.argv + 8 * w.i) as *const c_void,
        )
    };
    if r != 0 {
        ev.header.flags |= FLAG_ARGS_UNREADABLE;
        return 1;
    }
    if p == 0 {
        return 1;
    }
    let pos = w.pos as usize;
    if w.i as usize >= ARGC_MAX || pos + 1 >= ARGS_MAX {
        ev.header.flags |= FLAG_ARGS_TRUNCATED;
        return 1;
    }
    // At least 1 (pos + 1 < ARGS_MAX), at most ARGS_MAX - 1: the mask keeps it provable.
    let room = (ARGS_MAX - 1 - pos) as u32 & (ARGS_MAX as u32 - 1);
    let at = (w.base as usize & (PATH_MAX - 1)) + (pos & (ARGS_MAX - 1));
    let n = unsafe {
        bpf_probe_read_user_str(
            ev.data.as_mut_ptr().add(at) as *mut c_void,
            room,
            p as *const c_void,
        )
    };
    if n <= 0 {
        ev.header.flags |= FLAG_ARGS_UNREADABLE;
        return 1;
    }
    if n as u32 >= room {
        ev.header.flags |= FLAG_ARGS_TRUNCATED;
    }
    w.pos += n as u64;
    w.i += 1;
    0
}
