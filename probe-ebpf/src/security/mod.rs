//! Security events beyond exec, file and net: `sys_enter_*` keeps the call's arguments in the
//! thread's pending record (the kind's enabled bit and the common filters decide first, before
//! anything is read), `sys_exit_*` adds the result, the strings read from user memory and the
//! target task the kernel knows, and sends it; a failed call is reported too.
//!
//! `creds` holds the set*id and capset hooks, `tamper` ptrace, process_vm_writev, signals and
//! comm changes, `kmod` kernel modules and BPF loads, `ns` mounts, namespaces and memfds, and
//! `dup` the socket hooks (fds of a socket moved onto stdin/stdout/stderr, raw and packet
//! sockets). This module holds what they share: the pending record and its two halves.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel,
    macros::{btf_map, map},
    maps::{Array, PerCpuArray},
    programs::TracePointContext,
};
use probe_common::{
    EventKind, SecConfig, SecEvent, SecOffsets, SecRecord, SecSyscall, SEC_FIXED_LEN, SEC_HAS_RET,
    SEC_SLOT_AT, SEC_STR_LONG, SEC_STR_PRESENT, SEC_STR_SHORT, SEC_STR_TRUNCATED,
    SEC_STR_UNREADABLE,
};

use crate::common::{count_loss, emit_bytes, enabled, fill_header, kind_enabled, sys_arg, sys_ret};
use crate::file::{record::read_user_path, walk::resolve_base};
use crate::kernel::current_task;
use crate::maps::TaskStorage;

mod creds;
mod dup;
mod kmod;
mod ns;
mod tamper;

/// Settings written by userspace (the signals to report, ptrace peeks).
#[map]
static SEC_CONFIG: Array<SecConfig> = Array::with_max_entries(1, 0);

/// Offsets for target tasks and renames, from BTF; set by userspace before load.
#[unsafe(no_mangle)]
static SEC_OFFSETS: SecOffsets = SecOffsets::zeroed();

#[inline(always)]
fn sec_offsets() -> SecOffsets {
    // Patched into .rodata at load time: must not be constant-folded.
    unsafe { core::ptr::read_volatile(&SEC_OFFSETS) }
}

/// A call between its sys_enter and its sys_exit: the record without its strings, which are
/// read at the exit (the kernel has just copied them, so their pages are there).
type Pending = SecRecord<0>;

/// Each thread's pending call; task-local, so it dies with the thread.
#[btf_map]
static SEC_PENDING: TaskStorage<Pending> = TaskStorage::new();

/// Where a record with strings is built (too big for the stack).
#[map]
static SEC_SCRATCH: PerCpuArray<SecEvent> = PerCpuArray::with_max_entries(1, 0);

/// Where one string slot of a record comes from, read at the exit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    None,
    /// A NUL-terminated user string at the address in argument `i`.
    User(usize),
    /// The path of the file at the fd in argument `i` (slot 2 only: it needs PATH_MAX).
    FdPath(usize),
}

/// The three string slots of a syscall's record.
type Strings = [Src; 3];
const NO_STRINGS: Strings = [Src::None; 3];

/// Starts the thread's pending record for `sys` (of `kind`) when the kind is wanted; `f` adds
/// what the entry knows and may drop the call (false). `N` is the syscall's argument count: a
/// program that reads past its tracepoint's record is refused at attach.
#[inline(always)]
fn enter<const N: usize>(
    ctx: &TracePointContext,
    sys: SecSyscall,
    kind: EventKind,
    f: impl FnOnce(&mut Pending) -> bool,
) {
    if enabled(kind).is_none() {
        disarm();
        return;
    }
    let Some(p) = SEC_PENDING.current_or_create() else {
        count_loss(kind); // no memory for the thread's record
        return;
    };
    let p = unsafe { &mut *p };
    fill_header(&mut p.header, kind, current_task());
    p.ret = 0;
    p.args = [0; 6];
    for i in 0..N {
        p.args[i] = sys_arg(ctx, i);
    }
    p.extra = [0; 4];
    p.target_start_ns = 0;
    p.sflags = 0;
    p.target_pid = 0;
    p.target_tid = 0;
    p.str_len = [0; 4];
    p.syscall = if f(p) { sys as u32 } else { 0 };
}

/// Marks the thread's pending record empty: an exit must not report an older call.
#[inline(always)]
fn disarm() {
    if let Some(p) = SEC_PENDING.current() {
        unsafe { (*p).syscall = 0 };
    }
}

/// Completes and sends the thread's pending record of `sys`: the result, then `f` (which may
/// drop it), then the strings of `strings`.
#[inline(always)]
fn exit(
    ctx: &TracePointContext,
    sys: SecSyscall,
    strings: &Strings,
    f: impl FnOnce(&mut Pending) -> bool,
) {
    let Some(p) = SEC_PENDING.current() else {
        return;
    };
    let p = unsafe { &mut *p };
    if p.syscall != sys as u32 {
        return; // empty, or an entry whose exit was never seen
    }
    // Switched off since the entry (a reload): dropped.
    if let Some(kind) = EventKind::try_from(p.header.kind)
        .ok()
        .filter(|k| kind_enabled(*k).is_some())
    {
        p.ret = sys_ret(ctx);
        p.sflags |= SEC_HAS_RET;
        if f(p) {
            send(p, kind, strings);
        }
    }
    p.syscall = 0;
}

/// Sends a completed record: as it is when it has no strings, else with them.
#[inline(always)]
fn send(p: &Pending, kind: EventKind, strings: &Strings) {
    if *strings == NO_STRINGS {
        emit_bytes(kind, p as *const Pending as *const u8, SEC_FIXED_LEN as u64);
        return;
    }
    let Some(ev) = SEC_SCRATCH.get_ptr_mut(0) else {
        count_loss(kind);
        return;
    };
    let ev = unsafe { &mut *ev };
    let r = unsafe {
        bpf_probe_read_kernel(
            ev as *mut SecEvent as *mut c_void,
            SEC_FIXED_LEN as u32,
            p as *const Pending as *const c_void,
        )
    };
    if r != 0 {
        count_loss(kind);
        return;
    }
    let len = read_strings(ev, strings);
    emit_bytes(
        kind,
        ev as *const SecEvent as *const u8,
        (SEC_FIXED_LEN + len) as u64,
    );
}

/// Reads the strings of `strings` into their slots; returns the bytes of `data` to send (up
/// to the end of the last slot that holds one).
#[inline(always)]
fn read_strings(ev: &mut SecEvent, strings: &Strings) -> usize {
    let data = ev.data.as_mut_ptr();
    let mut end = 0usize;
    for (i, src) in strings.iter().enumerate().take(2) {
        if let Src::User(a) = *src {
            let dst = unsafe { data.add(SEC_SLOT_AT[i]) };
            let (len, fl) = read_user_path::<SEC_STR_SHORT>(
                ev.args[a],
                dst,
                SEC_STR_TRUNCATED << i,
                SEC_STR_UNREADABLE << i,
            );
            ev.sflags |= fl;
            if fl & (SEC_STR_UNREADABLE << i) == 0 {
                ev.sflags |= SEC_STR_PRESENT << i;
                ev.str_len[i] = len as u16;
                end = SEC_SLOT_AT[i] + (len as usize & (SEC_STR_SHORT - 1));
            }
        }
    }
    let dst = unsafe { data.add(SEC_SLOT_AT[2]) };
    let (len, fl) = match strings[2] {
        Src::User(a) => read_user_path::<SEC_STR_LONG>(
            ev.args[a],
            dst,
            SEC_STR_TRUNCATED << 2,
            SEC_STR_UNREADABLE << 2,
        ),
        Src::FdPath(a) => match resolve_base(ev.args[a] as i32, dst) {
            (len, true) => (len, 0),
            (_, false) => (0, SEC_STR_UNREADABLE << 2),
        },
        Src::None => return end,
    };
    ev.sflags |= fl;
    if fl & (SEC_STR_UNREADABLE << 2) == 0 {
        ev.sflags |= SEC_STR_PRESENT << 2;
        ev.str_len[2] = len as u16;
        end = SEC_SLOT_AT[2] + (len as usize & (SEC_STR_LONG - 1));
    }
    end
}

/// One enter/exit program pair for a syscall of `$nargs` arguments whose entry only checks the
/// kind and keeps the arguments (`$keep` may still drop the call, e.g. a ptrace request not asked for), with the
/// string slots `$strings`. Paths in full: it expands in the group modules.
macro_rules! sec_syscall {
    ($enter:ident, $exit:ident, $tp_enter:literal, $tp_exit:literal, $sys:expr, $nargs:literal,
     $kind:expr, $strings:expr, |$p:ident| $keep:expr) => {
        #[aya_ebpf::macros::tracepoint(category = "syscalls", name = $tp_enter)]
        pub fn $enter(ctx: aya_ebpf::programs::TracePointContext) -> u32 {
            $crate::security::enter::<$nargs>(&ctx, $sys, $kind, |$p| $keep);
            0
        }

        #[aya_ebpf::macros::tracepoint(category = "syscalls", name = $tp_exit)]
        pub fn $exit(ctx: aya_ebpf::programs::TracePointContext) -> u32 {
            $crate::security::exit(&ctx, $sys, &$strings, |_| true);
            0
        }
    };
}
pub(crate) use sec_syscall;
