//! Who a task is, read from its kernel structs: exec id, credentials, login uid, tty and
//! namespaces (the header's identity), and the CPU times of an exiting process. A leaf beside
//! `kernel`: the header fill and the process hooks read it.
use probe_common::{
    HeaderIdentity, TaskOffsets, NS_CGROUP, NS_COUNT, NS_IPC, NS_MNT, NS_NET, NS_PID, NS_USER,
    NS_UTS,
};

use crate::kernel::read_kernel;

/// Offsets from BTF, set by userspace before load (`u32::MAX`: unknown).
#[unsafe(no_mangle)]
pub(crate) static TASK_OFFSETS: TaskOffsets = TaskOffsets::unknown();

/// One offset, read from the patched rodata (volatile: it must not be constant-folded, and a
/// copy of the whole struct would cost 188 bytes of stack).
macro_rules! toff {
    ($f:ident) => {
        unsafe { core::ptr::read_volatile(&$crate::task::TASK_OFFSETS.$f) }
    };
    ($f:ident[$i:expr]) => {
        unsafe { core::ptr::read_volatile(&$crate::task::TASK_OFFSETS.$f[$i]) }
    };
}
pub(crate) use toff;

/// Reads a `T` at `base + off` unless the offset is unknown or `base` is null.
#[inline(always)]
pub fn read_opt<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    if off == u32::MAX || base.is_null() {
        return None;
    }
    read_kernel(base, off).ok()
}

/// A pointer field, null when unknown.
#[inline(always)]
pub fn read_ptr(base: *const u8, off: u32) -> *const u8 {
    read_opt::<*const u8>(base, off).unwrap_or_default()
}

/// `ns.inum` of a namespace struct.
#[inline(always)]
fn ns_inum(ns: *const u8, idx: usize) -> u32 {
    read_opt::<u32>(ns, toff!(ns_inum[idx])).unwrap_or(0)
}

/// Everything of the identity but the login uid: the full reads, done when a cache key
/// changed. `cred` and `nsproxy` are the key values just read.
#[inline(never)]
pub fn read_identity(
    task: *const u8,
    cred: u64,
    nsproxy: u64,
    signal_off: u32,
    id: &mut HeaderIdentity,
) {
    let cred = cred as *const u8;
    id.euid = read_opt(cred, toff!(cred_euid)).unwrap_or(0);
    id.egid = read_opt(cred, toff!(cred_egid)).unwrap_or(0);
    id.cap_effective = read_opt(cred, toff!(cred_cap_effective)).unwrap_or(0);
    id.cap_permitted = read_opt(cred, toff!(cred_cap_permitted)).unwrap_or(0);
    id.ns = [0; NS_COUNT];
    id.ns[NS_USER] = ns_inum(read_ptr(cred, toff!(cred_user_ns)), NS_USER);
    let nsp = nsproxy as *const u8;
    id.ns[NS_UTS] = ns_inum(read_ptr(nsp, toff!(nsproxy_uts)), NS_UTS);
    id.ns[NS_IPC] = ns_inum(read_ptr(nsp, toff!(nsproxy_ipc)), NS_IPC);
    id.ns[NS_MNT] = ns_inum(read_ptr(nsp, toff!(nsproxy_mnt)), NS_MNT);
    id.ns[NS_NET] = ns_inum(read_ptr(nsp, toff!(nsproxy_net)), NS_NET);
    id.ns[NS_CGROUP] = ns_inum(read_ptr(nsp, toff!(nsproxy_cgroup)), NS_CGROUP);
    id.ns[NS_PID] = pid_ns(task);
    id.tty = tty_dev(task, signal_off);
}

/// The task's own pid namespace (not `nsproxy->pid_ns_for_children`, which `unshare`
/// changes for children only): `thread_pid->numbers[thread_pid->level].ns`.
#[inline(always)]
fn pid_ns(task: *const u8) -> u32 {
    let pid = read_ptr(task, toff!(task_thread_pid));
    let Some(level) = read_opt::<u32>(pid, toff!(pid_level)) else {
        return 0;
    };
    let (numbers, size, ns_off) = (toff!(pid_numbers), toff!(upid_size), toff!(upid_ns));
    if numbers == u32::MAX || size == u32::MAX || ns_off == u32::MAX {
        return 0;
    }
    // Nesting is capped at 32 levels by the kernel.
    let at = numbers + (level & 31) * (size & 63) + (ns_off & 63);
    ns_inum(read_ptr(pid, at), NS_PID)
}

/// The controlling terminal (`signal->tty`) as a kernel `dev_t`; 0 without one.
#[inline(always)]
fn tty_dev(task: *const u8, signal_off: u32) -> u32 {
    let signal = read_ptr(task, signal_off);
    let tty = read_ptr(signal, toff!(signal_tty));
    if tty.is_null() {
        return 0;
    }
    let index: i32 = read_opt(tty, toff!(tty_index)).unwrap_or(0);
    let driver = read_ptr(tty, toff!(tty_driver));
    let Some(major) = read_opt::<i32>(driver, toff!(driver_major)) else {
        return 0;
    };
    let minor_start: i32 = read_opt(driver, toff!(driver_minor_start)).unwrap_or(0);
    let minor = (minor_start + index) as u32 & 0xf_ffff;
    ((major as u32 & 0xfff) << 20) | minor
}

/// (user ns, system ns, runtime ns) of a process whose last thread is `task`: the dead
/// threads' sums kept in the signal struct plus this thread's own counters.
#[inline(always)]
pub fn cpu_times(task: *const u8, signal: *const u8, whole: bool) -> (u64, u64, u64) {
    let own = |o: u32| read_opt::<u64>(task, o).unwrap_or(0);
    let dead = |o: u32| {
        if whole {
            read_opt::<u64>(signal, o).unwrap_or(0)
        } else {
            0
        }
    };
    (
        own(toff!(task_utime)) + dead(toff!(signal_utime)),
        own(toff!(task_stime)) + dead(toff!(signal_stime)),
        own(toff!(task_runtime)) + dead(toff!(signal_runtime)),
    )
}
