//! Header fill, early filters and the emit helper shared by all hook families.
use core::ffi::c_void;

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{self, bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns, bpf_ringbuf_output},
};
use aya_ebpf::{
    macros::{btf_map, map},
    maps::PerCpuArray,
    programs::TracePointContext,
    EbpfContext,
};
use probe_common::{
    EventHeader, EventKind, HeaderIdentity, KernelOffsets, ProbeConfig, CFG_FILTERS,
};

use crate::kernel::{current_task_btf, koff, load_btf, offsets, read_kernel};
use crate::maps::{TaskStorage, CONFIG, EVENTS, LOSSES};
use crate::task;
use crate::task::toff;

/// Our own thread-group id: the probe never reports itself. Set by userspace before load.
#[unsafe(no_mangle)]
static SELF_TGID: u32 = 0;

/// Wake the reader only once this many bytes are queued; below it userspace polls on a timer.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = 0;

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

#[inline(always)]
pub fn self_tgid() -> u32 {
    unsafe { core::ptr::read_volatile(&SELF_TGID) }
}

/// The run-time config when `kind` is enabled, whatever task is current. For hooks that run
/// outside process context (softirq), where the current task is not the actor.
#[inline(always)]
pub fn kind_enabled(kind: EventKind) -> Option<&'static ProbeConfig> {
    let cfg = CONFIG.get(0)?;
    if cfg.enabled & kind.bit() == 0 {
        return None;
    }
    Some(cfg)
}

/// The run-time config when `kind` is enabled, the current task is not the probe itself and it
/// passes the kernel-side filters (pid, cgroup, uid sets).
#[inline(always)]
pub fn enabled(kind: EventKind) -> Option<&'static ProbeConfig> {
    let cfg = kind_enabled(kind)?;
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == self_tgid() {
        return None;
    }
    // One flags test keeps the unfiltered fast path free of map lookups.
    if cfg.flags & CFG_FILTERS != 0 && !crate::filter::pass(cfg, tgid) {
        return None;
    }
    Some(cfg)
}

/// `v & mask`, kept in the program. After a `min`, LLVM proves such a mask redundant and drops
/// it, and older verifiers (6.1) cannot follow the `min` alone to bound a helper's size
/// argument; a volatile reload hides the range from LLVM so the `and` reaches the verifier.
#[inline(always)]
pub fn bound(v: u32, mask: u32) -> u32 {
    // SAFETY: reading a local.
    let v = unsafe { core::ptr::read_volatile(&v) };
    v & mask
}

/// Syscall tracepoint records (`syscalls:sys_enter_*` / `sys_exit_*`): an 8-byte common header,
/// `__syscall_nr` (int, padded), then one `unsigned long` per argument from offset 16, or the
/// `long` return value at 16. The layout is the same on every kernel with syscall tracepoints.
const SYSCALL_SLOT0: usize = 16;

/// Argument `i` of a `sys_enter_*` record. A direct load: the verifier allows aligned reads of
/// a tracepoint's own record, which costs nothing next to a `bpf_probe_read` per argument.
#[inline(always)]
pub fn sys_arg(ctx: &TracePointContext, i: usize) -> u64 {
    // SAFETY: slots 0..6 lie inside every sys_enter record; 8-byte aligned.
    unsafe {
        *(ctx.as_ptr() as *const u8)
            .add(SYSCALL_SLOT0 + 8 * i)
            .cast::<u64>()
    }
}

/// Return value of a `sys_exit_*` record.
#[inline(always)]
pub fn sys_ret(ctx: &TracePointContext) -> i64 {
    // SAFETY: the return value lies inside every sys_exit record; 8-byte aligned.
    unsafe { *(ctx.as_ptr() as *const u8).add(SYSCALL_SLOT0).cast::<i64>() }
}

/// Identity of a task: its thread-group id and its process start time.
#[inline(always)]
pub fn task_identity(task: *const u8, off: &KernelOffsets) -> (u32, u64) {
    let tgid: u32 = read_kernel(task, off.task_tgid).unwrap_or(0);
    let leader: *const u8 = read_kernel(task, off.task_group_leader).unwrap_or(core::ptr::null());
    let start: u64 = if leader.is_null() {
        0
    } else {
        read_kernel(leader, off.task_start_boottime).unwrap_or(0)
    };
    (tgid, start)
}

/// What a thread's header repeats from one call to the next, kept in per-thread storage so a
/// burst of calls walks the task structs once.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IdCache {
    /// `pid_tgid` the rest was read for (0: empty). A thread that execs from a non-leader
    /// thread takes the leader's pid, so a change of either id is seen here.
    pub pid_tgid: u64,
    /// `real_parent` the parent fields were read for; reparenting changes it.
    pub parent: u64,
    pub start_ns: u64,
    pub parent_start_ns: u64,
    pub ppid: u32,
    /// The exec id, `cred` and `nsproxy` the identity was read for: an exec, a credential
    /// change (each replaces the cred struct) or a namespace change is seen here.
    pub exec_id: u32,
    pub cred: u64,
    pub nsproxy: u64,
    /// `bpf_get_current_uid_gid()` when `cred` was read.
    pub uid_gid: u64,
    pub id: HeaderIdentity,
}

/// Every thread's [`IdCache`] for the hooks without per-thread state of their own.
#[btf_map]
static TASK_IDS: TaskStorage<IdCache> = TaskStorage::new();

/// Where an uncached header fill keeps its reads when the thread has no storage.
#[map]
static IDS_SCRATCH: PerCpuArray<IdCache> = PerCpuArray::with_max_entries(1, 0);

/// Fills the common header for the current task, through the thread's shared cache.
#[inline(always)]
pub fn fill_header(h: &mut EventHeader, kind: EventKind, task: *const u8) {
    let cache = match TASK_IDS.current_or_create() {
        Some(c) => c,
        None => match IDS_SCRATCH.get_ptr_mut(0) {
            Some(c) => {
                // Not this thread's: force the full reads.
                unsafe { (*c).pid_tgid = 0 };
                c
            }
            None => return,
        },
    };
    fill_header_cached(h, kind, task, unsafe { &mut *cache });
}

/// [`fill_header`] for a thread with its own [`IdCache`]. When the cache is the thread's and
/// nothing changed, the parent pointer, exec id, cred and nsproxy pointers, login uid and comm
/// are plain loads through the task's BTF pointer, and the rest comes from the cache: no
/// `bpf_probe_read_kernel` at all on the hot path.
#[inline(always)]
pub fn fill_header_cached(
    h: &mut EventHeader,
    kind: EventKind,
    task: *const u8,
    cache: &mut IdCache,
) {
    let bt = current_task_btf();
    let pid_tgid = fill_ids(h, kind, bt);
    let parent: *const u8 = load_btf(bt, koff!(task_real_parent)).unwrap_or(core::ptr::null());
    let same_task = cache.pid_tgid == pid_tgid;
    if !same_task || cache.parent != parent as u64 || parent.is_null() {
        // Copied only here: a copy of all the offsets is 33 loads, most of them dead.
        let off = &offsets();
        let (_, start) = task_identity(task, off);
        let (ppid, pstart) = if parent.is_null() {
            (0, 0)
        } else {
            task_identity(parent, off)
        };
        cache.pid_tgid = pid_tgid;
        cache.parent = parent as u64;
        cache.start_ns = start;
        cache.ppid = ppid;
        cache.parent_start_ns = pstart;
    }
    h.start_ns = cache.start_ns;
    h.ppid = cache.ppid;
    h.parent_start_ns = cache.parent_start_ns;
    let exec_id = load_btf::<u64>(bt, toff!(task_self_exec_id)).unwrap_or(0) as u32;
    let cred = load_btf::<u64>(bt, toff!(task_cred)).unwrap_or(0);
    let nsproxy = load_btf::<u64>(bt, toff!(task_nsproxy)).unwrap_or(0);
    if !same_task || cache.exec_id != exec_id || cache.cred != cred || cache.nsproxy != nsproxy {
        task::read_identity(task, cred, nsproxy, koff!(task_signal), &mut cache.id);
        // Committed creds are never changed in place: the uid and gid are the cred's.
        cache.uid_gid = bpf_get_current_uid_gid();
        cache.exec_id = exec_id;
        cache.cred = cred;
        cache.nsproxy = nsproxy;
    }
    h.uid = cache.uid_gid as u32;
    h.gid = (cache.uid_gid >> 32) as u32;
    h.exec_id = exec_id;
    h.id = cache.id;
    // Changed in place (by a write to /proc/self/loginuid), so read every time.
    h.id.auid = load_btf::<u32>(bt, toff!(task_loginuid)).unwrap_or(u32::MAX);
}

/// The header fields helpers give directly (and the uid/gid, for the uncached path); returns
/// `pid_tgid`.
#[inline(always)]
fn fill_ids(h: &mut EventHeader, kind: EventKind, bt: *const u8) -> u64 {
    let pid_tgid = bpf_get_current_pid_tgid();
    h.kind = kind as u32;
    h.flags = 0;
    h.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    h.pid = (pid_tgid >> 32) as u32;
    h.tid = pid_tgid as u32;
    h.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    let comm_off = toff!(task_comm);
    let comm_hi = if comm_off == u32::MAX {
        u32::MAX
    } else {
        comm_off + 8
    };
    match (load_btf::<u64>(bt, comm_off), load_btf::<u64>(bt, comm_hi)) {
        (Some(a), Some(b)) => {
            let c = h.comm.as_mut_ptr() as *mut u64;
            // SAFETY: `comm` is 16 bytes at an 8-byte aligned offset of the header (asserted
            // in probe-common), which a reference keeps aligned. Aligned stores: BPF has no
            // unaligned ones, so `write_unaligned` was sixteen byte stores.
            unsafe {
                c.write(a);
                c.add(1).write(b);
            }
        }
        // Straight into the record: the safe wrapper zeroes a stack copy and moves it byte
        // by byte. On failure the helper zeroes the buffer itself.
        _ => unsafe {
            generated::bpf_get_current_comm(
                h.comm.as_mut_ptr() as *mut c_void,
                h.comm.len() as u32,
            );
        },
    }
    pid_tgid
}

/// Wakes the reader when this record carries the queue across a multiple of `WAKEUP_BYTES`,
/// not on every record past it: while the reader lags behind (it drains to empty before it
/// sleeps) a wakeup per record is an IPI per event for nothing.
#[inline(always)]
fn wakeup_flags(len: u64) -> u64 {
    let threshold = unsafe { core::ptr::read_volatile(&WAKEUP_BYTES) };
    if threshold == 0 {
        return BPF_RB_FORCE_WAKEUP;
    }
    let queued = EVENTS.query(BPF_RB_AVAIL_DATA);
    if queued / threshold != (queued + len) / threshold {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Counts one lost event of `kind`.
#[inline(always)]
pub fn count_loss(kind: EventKind) {
    if let Some(slot) = LOSSES.get_ptr_mut(kind as u32) {
        unsafe { *slot += 1 };
    }
}

/// Copies `len` bytes at `data` into the ring buffer; a full buffer is counted, never silent.
/// `len` must be provably bounded by the caller.
#[inline(always)]
pub fn emit_bytes(kind: EventKind, data: *const u8, len: u64) {
    let ret = unsafe {
        bpf_ringbuf_output(
            &EVENTS as *const _ as *mut c_void,
            data as *mut c_void,
            len,
            wakeup_flags(len),
        )
    };
    if ret < 0 {
        count_loss(kind);
    }
}

/// Emits a fixed-size record.
#[inline(always)]
pub fn emit<T>(kind: EventKind, ev: &T) {
    emit_bytes(
        kind,
        ev as *const T as *const u8,
        core::mem::size_of::<T>() as u64,
    );
}
