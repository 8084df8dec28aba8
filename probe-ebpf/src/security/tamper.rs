//! Process tampering: ptrace, process_vm_writev, signals sent to another process, and comm
//! changes. Targets are tasks the kernel names (a ptrace tracee, the receiver of a signal), so
//! they carry the ids other events carry; a pid the caller passed stays as passed.
use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel_str,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use probe_common::{
    EventKind, SecOffsets, SecSyscall, COMM_LEN, SEC_CALLER_PIDNS, SEC_CFG_PTRACE_PEEKS,
    SEC_FIXED_LEN, SEC_HAS_EXTRA, SEC_HAS_RET, SEC_HAS_TARGET, SEC_TARGET_MANY,
};

use super::{enter, exit, sec_offsets, Pending, NO_STRINGS, SEC_CONFIG, SEC_PENDING, SEC_SCRATCH};
use crate::common::{emit_bytes, enabled, fill_header, task_identity};
use crate::kernel::{current_task, offsets, read_kernel};

// ---- ptrace ----

const PTRACE_TRACEME: u64 = 0;
const PTRACE_ATTACH: u64 = 16;
const PTRACE_SEIZE: u64 = 0x4206;

/// Requests that change the tracee or start tracing: always reported.
#[inline(always)]
fn ptrace_always(req: u64) -> bool {
    // TRACEME, POKETEXT/DATA/USER, SETREGS, SETFPREGS, ATTACH, SETFPXREGS, SETSIGINFO,
    // SETREGSET, SEIZE, SETSIGMASK.
    matches!(
        req,
        0 | 4 | 5 | 6 | 13 | 15 | 16 | 19 | 0x4203 | 0x4205 | 0x4206 | 0x420b
    )
}

/// Requests that only read the tracee: reported with `--ptrace-peeks`.
#[inline(always)]
fn ptrace_peek(req: u64) -> bool {
    // PEEKTEXT/DATA/USER, GETREGS, GETFPREGS, GETFPXREGS, GETSIGINFO, GETREGSET,
    // PEEKSIGINFO, GETSIGMASK.
    matches!(
        req,
        1 | 2 | 3 | 12 | 14 | 18 | 0x4202 | 0x4204 | 0x4209 | 0x420a
    )
}

#[inline(always)]
fn ptrace_wanted(req: u64) -> bool {
    if ptrace_always(req) {
        return true;
    }
    let peeks = SEC_CONFIG
        .get(0)
        .is_some_and(|c| c.flags & SEC_CFG_PTRACE_PEEKS != 0);
    peeks && ptrace_peek(req)
}

/// Records `task` as the call's target.
#[inline(always)]
fn set_target(p: &mut Pending, task: *const u8) {
    if task.is_null() {
        return;
    }
    let off = offsets();
    let (tgid, start) = task_identity(task, &off);
    if tgid == 0 {
        return;
    }
    p.target_pid = tgid;
    p.target_tid = read_kernel(task, off.task_pid).unwrap_or(tgid);
    p.target_start_ns = start;
    p.sflags |= SEC_HAS_TARGET;
}

/// Level of the current task's pid namespace (0: the host's); flags the record when the pids
/// it passes are not host pids.
#[inline(always)]
fn caller_level(p: &mut Pending, o: &SecOffsets) -> u32 {
    let tp: *const u8 = read_kernel(current_task(), o.task_thread_pid).unwrap_or(core::ptr::null());
    let level: u32 = if tp.is_null() {
        0
    } else {
        read_kernel(tp, o.pid_level).unwrap_or(0)
    };
    if level != 0 {
        p.sflags |= SEC_CALLER_PIDNS;
    }
    level
}

/// The pid of `task` as pid namespace level `level` sees it.
#[inline(always)]
fn vpid(task: *const u8, level: u32, o: &SecOffsets) -> i32 {
    let Ok(tp) = read_kernel::<*const u8>(task, o.task_thread_pid) else {
        return 0;
    };
    let at = o.pid_numbers + (level & 31) * o.upid_size;
    read_kernel(tp, at).unwrap_or(0)
}

/// Most tracees of one tracer searched for the target of a request.
const TRACEES_MAX: usize = 4;

/// The tracee of the current task that the request named: the newest one after an attach
/// (it is linked first), else the one whose pid (as the tracer sees it) is `pid`.
#[inline(always)]
fn tracee(p: &mut Pending, req: u64, pid: i32) -> *const u8 {
    let o = sec_offsets();
    let level = caller_level(p, &o);
    if o.valid == 0 {
        return core::ptr::null();
    }
    let me = current_task();
    if req == PTRACE_TRACEME {
        // The tracer is the parent.
        return read_kernel(me, offsets().task_real_parent).unwrap_or(core::ptr::null());
    }
    let head = me.wrapping_add(o.task_ptraced as usize);
    let mut pos: *const u8 = read_kernel(head, 0).unwrap_or(core::ptr::null());
    for _ in 0..TRACEES_MAX {
        if pos.is_null() || pos == head {
            break;
        }
        let t = pos.wrapping_sub(o.task_ptrace_entry as usize);
        if req == PTRACE_ATTACH || req == PTRACE_SEIZE || vpid(t, level, &o) == pid {
            return t;
        }
        pos = read_kernel(pos, 0).unwrap_or(core::ptr::null());
    }
    core::ptr::null()
}

/// ptrace(request, pid, addr, data): the entry keeps the requests wanted, the exit finds
/// the tracee.
#[tracepoint(category = "syscalls", name = "sys_enter_ptrace")]
pub fn sec_enter_ptrace(ctx: TracePointContext) -> u32 {
    enter::<4>(&ctx, SecSyscall::Ptrace, EventKind::ProcessPtrace, |p| {
        ptrace_wanted(p.args[0])
    });
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_ptrace")]
pub fn sec_exit_ptrace(ctx: TracePointContext) -> u32 {
    exit(&ctx, SecSyscall::Ptrace, &NO_STRINGS, |p| {
        if p.ret >= 0 {
            let t = tracee(p, p.args[0], p.args[1] as i32);
            set_target(p, t);
        } else {
            caller_level(p, &sec_offsets());
        }
        true
    });
    0
}

// ---- process_vm_writev ----

/// process_vm_writev(pid, local_iov, liovcnt, remote_iov, riovcnt, flags): no kernel object
/// names the target, so its pid stays as passed (flagged when not a host pid).
#[tracepoint(category = "syscalls", name = "sys_enter_process_vm_writev")]
pub fn sec_enter_process_vm_writev(ctx: TracePointContext) -> u32 {
    enter::<6>(
        &ctx,
        SecSyscall::ProcessVmWritev,
        EventKind::ProcessVmWrite,
        |_| true,
    );
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_process_vm_writev")]
pub fn sec_exit_process_vm_writev(ctx: TracePointContext) -> u32 {
    exit(&ctx, SecSyscall::ProcessVmWritev, &NO_STRINGS, |p| {
        caller_level(p, &sec_offsets());
        true
    });
    0
}

// ---- signals ----

/// Whether userspace asked for signal `sig` (`--signals`).
#[inline(always)]
fn signal_wanted(sig: u64) -> bool {
    sig > 0
        && sig < 64
        && SEC_CONFIG
            .get(0)
            .is_some_and(|c| c.signals & (1u64 << sig) != 0)
}

/// Whether a signal call went to the caller's own process (not reported). The receiver the
/// kernel found decides; without one (the call failed), the pid passed, when it is a host pid.
#[inline(always)]
fn to_self(p: &mut Pending) -> bool {
    let level = caller_level(p, &sec_offsets());
    if p.sflags & SEC_HAS_TARGET != 0 {
        return p.target_pid == p.header.pid && p.sflags & SEC_TARGET_MANY == 0;
    }
    let first = p.args[0] as i32 as i64;
    level == 0
        && match p.syscall {
            s if s == SecSyscall::Kill as u32 || s == SecSyscall::Tgkill as u32 => {
                first == p.header.pid as i64
            }
            s if s == SecSyscall::Tkill as u32 => first == p.header.tid as i64,
            _ => false,
        }
}

/// A signal syscall of `$nargs` arguments: `$sig` is the index of its signal argument.
macro_rules! signal_syscall {
    ($enter:ident, $exit:ident, $tp_enter:literal, $tp_exit:literal, $sys:expr, $nargs:literal,
     $sig:expr) => {
        #[tracepoint(category = "syscalls", name = $tp_enter)]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            enter::<$nargs>(&ctx, $sys, EventKind::ProcessSignal, |p| {
                signal_wanted(p.args[$sig])
            });
            0
        }

        #[tracepoint(category = "syscalls", name = $tp_exit)]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            exit(&ctx, $sys, &NO_STRINGS, |p| !to_self(p));
            0
        }
    };
}

signal_syscall!(
    sec_enter_kill,
    sec_exit_kill,
    "sys_enter_kill",
    "sys_exit_kill",
    SecSyscall::Kill,
    2,
    1
);
signal_syscall!(
    sec_enter_tgkill,
    sec_exit_tgkill,
    "sys_enter_tgkill",
    "sys_exit_tgkill",
    SecSyscall::Tgkill,
    3,
    2
);
signal_syscall!(
    sec_enter_tkill,
    sec_exit_tkill,
    "sys_enter_tkill",
    "sys_exit_tkill",
    SecSyscall::Tkill,
    2,
    1
);
signal_syscall!(
    sec_enter_pidfd_send_signal,
    sec_exit_pidfd_send_signal,
    "sys_enter_pidfd_send_signal",
    "sys_exit_pidfd_send_signal",
    SecSyscall::PidfdSendSignal,
    4,
    1
);

/// Raw tracepoint `signal_generate(sig, info, task, group, result)`: the task a signal call
/// of the current thread reaches, as the kernel resolved the pid or pidfd. Every other signal
/// (SIGCHLD at each exit, faults) costs one task-storage lookup.
#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn sec_signal_generate(ctx: RawTracePointContext) -> i32 {
    let Some(p) = SEC_PENDING.current() else {
        return 0;
    };
    let p = unsafe { &mut *p };
    let s = p.syscall;
    let signal_call = s == SecSyscall::Kill as u32
        || s == SecSyscall::Tgkill as u32
        || s == SecSyscall::Tkill as u32
        || s == SecSyscall::PidfdSendSignal as u32;
    if !signal_call {
        return 0;
    }
    let task = ctx.arg::<u64>(2) as *const u8;
    if p.sflags & SEC_HAS_TARGET != 0 {
        // kill(0 or -pgid, ...): the first receiver is reported, the others counted as many.
        let tgid: u32 = read_kernel(task, offsets().task_tgid).unwrap_or(0);
        if tgid != p.target_pid {
            p.sflags |= SEC_TARGET_MANY;
        }
        return 0;
    }
    set_target(p, task);
    0
}

// ---- comm changes ----

/// Raw tracepoint `task_rename(task, comm)`: prctl(PR_SET_NAME) and writes to
/// /proc/<pid>/comm, before the kernel copies the new name in. Exec renames too (to the new
/// file's name); those are `process.exec`, recognised by `in_execve`.
#[raw_tracepoint(tracepoint = "task_rename")]
pub fn sec_task_rename(ctx: RawTracePointContext) -> i32 {
    let _ = try_rename(&ctx);
    0
}

fn try_rename(ctx: &RawTracePointContext) -> Option<()> {
    enabled(EventKind::ProcessRename)?;
    let o = sec_offsets();
    if o.valid == 0 {
        return None;
    }
    let task = ctx.arg::<u64>(0) as *const u8;
    let comm = ctx.arg::<u64>(1) as *const u8;
    let flag: u8 = read_kernel(task, o.task_in_execve_byte).ok()?;
    if flag as u32 & o.task_in_execve_mask != 0 {
        return None;
    }
    let off = offsets();
    // Kernel threads rename themselves too; they have no mm.
    let mm: u64 = read_kernel(task, off.task_mm).unwrap_or(0);
    if mm == 0 {
        return None;
    }
    let ev = SEC_SCRATCH.get_ptr_mut(0)?;
    let ev = unsafe { &mut *ev };
    fill_header(&mut ev.header, EventKind::ProcessRename, current_task());
    ev.ret = 0;
    ev.args = [0; 6];
    ev.sflags = SEC_HAS_RET | SEC_HAS_EXTRA;
    ev.syscall = SecSyscall::TaskRename as u32;
    ev.str_len = [0; 4];
    ev.target_pid = 0;
    ev.target_tid = 0;
    ev.target_start_ns = 0;
    ev.extra = [0; 4];
    let old: [u8; COMM_LEN] = read_kernel(task, o.task_comm).unwrap_or([0; COMM_LEN]);
    let extra = ev.extra.as_mut_ptr() as *mut u8;
    unsafe { core::ptr::copy_nonoverlapping(old.as_ptr(), extra, COMM_LEN) };
    unsafe {
        bpf_probe_read_kernel_str(
            extra.add(COMM_LEN) as *mut core::ffi::c_void,
            COMM_LEN as u32,
            comm as *const core::ffi::c_void,
        )
    };
    let off = offsets();
    let (tgid, start) = task_identity(task, &off);
    ev.target_pid = tgid;
    ev.target_tid = read_kernel(task, off.task_pid).unwrap_or(tgid);
    ev.target_start_ns = start;
    ev.sflags |= SEC_HAS_TARGET;
    emit_bytes(
        EventKind::ProcessRename,
        ev as *const _ as *const u8,
        SEC_FIXED_LEN as u64,
    );
    Some(())
}
