//! Kernel-side filters (pid, cgroup, uid sets written by userspace) and `--follow`.
//! `common::enabled()` calls [`pass`] only when a filter flag is set, so an unfiltered probe
//! pays no map lookup.
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id},
};
use probe_common::{
    filter_slot_bit, KernelOffsets, ProbeConfig, CFG_FILTERS, CFG_FILTER_CGROUP, CFG_FILTER_PID,
    CFG_FILTER_UID, CFG_FOLLOW, CGROUP_DEPTH_MAX, FILTER_FOLLOWED, LOSS_SLOT_FOLLOW,
};

use crate::{
    kernel::read_kernel,
    maps::{CONFIG, FILTER_CGROUPS, FILTER_PIDS, FILTER_UIDS, LOSSES},
};

#[inline(always)]
fn member(v: Option<*const u8>, slot: u8) -> bool {
    // SAFETY: a value pointer from a map lookup, valid for this program run.
    v.is_some_and(|p| unsafe { *p } & slot != 0)
}

/// True when the current task passes every kernel filter that `cfg` turns on.
#[inline(always)]
pub fn pass(cfg: &ProbeConfig, tgid: u32) -> bool {
    let slot = filter_slot_bit(cfg.flags);
    if cfg.flags & CFG_FILTER_PID != 0 && !member(FILTER_PIDS.get_ptr(tgid), slot) {
        return false;
    }
    if cfg.flags & CFG_FILTER_UID != 0 {
        let uid = bpf_get_current_uid_gid() as u32;
        if !member(FILTER_UIDS.get_ptr(uid), slot) {
            return false;
        }
    }
    if cfg.flags & CFG_FILTER_CGROUP != 0 && !in_cgroups(slot) {
        return false;
    }
    true
}

/// The current cgroup or one of its ancestors is in the set.
#[inline(always)]
fn in_cgroups(slot: u8) -> bool {
    let own = unsafe { bpf_get_current_cgroup_id() };
    if member(FILTER_CGROUPS.get_ptr(own), slot) {
        return true;
    }
    let mut level: i32 = 0;
    while level < CGROUP_DEPTH_MAX as i32 {
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        // Past the task's own level the helper returns 0.
        if id == 0 || id == own {
            return false;
        }
        if member(FILTER_CGROUPS.get_ptr(id), slot) {
            return true;
        }
        level += 1;
    }
    false
}

#[inline(always)]
fn follow_cfg() -> Option<&'static ProbeConfig> {
    let cfg = CONFIG.get(0)?;
    let on = CFG_FOLLOW | CFG_FILTER_PID;
    (cfg.flags & on == on && cfg.flags & CFG_FILTERS != 0).then_some(cfg)
}

/// `--follow`: a new process whose parent is in the pid set joins it, with the parent's
/// generations, so grandchildren follow too. Called at fork for new processes (not threads).
#[inline(always)]
pub fn follow_fork(parent_tgid: u32, child_tgid: u32) {
    let Some(_) = follow_cfg() else { return };
    let Some(p) = FILTER_PIDS.get_ptr(parent_tgid) else {
        return;
    };
    // SAFETY: a value pointer from a map lookup.
    let v = unsafe { *p } | FILTER_FOLLOWED;
    if FILTER_PIDS.insert(child_tgid, v, 0).is_err() {
        // The set is full: the child's events would vanish unnoticed, so count it.
        if let Some(slot) = LOSSES.get_ptr_mut(LOSS_SLOT_FOLLOW) {
            unsafe { *slot += 1 };
        }
    }
}

/// A followed descendant whose last thread exits leaves the set (its pid may be reused by a
/// stranger). `task` is the exiting task.
#[inline(always)]
pub fn forget_exited(task: *const u8, off: &KernelOffsets) {
    let Some(_) = follow_cfg() else { return };
    let Ok(signal) = read_kernel::<*const u8>(task, off.task_signal) else {
        return;
    };
    if read_kernel::<i32>(signal, off.signal_live).unwrap_or(1) != 0 {
        return;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if let Some(p) = FILTER_PIDS.get_ptr(tgid) {
        // SAFETY: a value pointer from a map lookup.
        if unsafe { *p } & FILTER_FOLLOWED != 0 {
            let _ = FILTER_PIDS.remove(tgid);
        }
    }
}
