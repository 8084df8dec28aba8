//! The directory a relative path is relative to: a walk up the dentries and across mounts, one
//! `bpf_loop` step at a time, like the kernel's `d_path`. The exec hook walks the executed
//! file and the cwd with it too ([`resolve_path`]).
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_loop, bpf_probe_read_kernel},
    macros::map,
    maps::PerCpuArray,
};
use probe_common::{FileOffsets, AT_FDCWD, PATH_MAX};

use crate::kernel::{current_task, file_of_fd, offsets, read_kernel};

/// Offsets for the path walk, from BTF; set by userspace before load.
#[unsafe(no_mangle)]
static FILE_OFFSETS: FileOffsets = FileOffsets::zeroed();

/// Most steps (components plus mount crossings) walked up from a cwd or fd; more sets
/// `FILE_BASE_PARTIAL`.
const MAX_DEPTH: usize = 128;
/// Longest name of one path component.
const NAME_MAX: usize = 255;

/// Scratch where a directory path is built backwards from its last component.
#[map]
static FILE_WALK: PerCpuArray<[u8; 2 * PATH_MAX]> = PerCpuArray::with_max_entries(1, 0);

/// The state of the walk in progress on this CPU.
#[map]
static FILE_WALK_STATE: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn file_offsets() -> FileOffsets {
    // Patched into .rodata at load time: must not be constant-folded.
    unsafe { core::ptr::read_volatile(&FILE_OFFSETS) }
}

/// The `struct path` (mnt, dentry) that `dirfd` names: the cwd for `AT_FDCWD`, else the open
/// file at that fd.
#[inline(always)]
fn dir_path(o: &FileOffsets, dirfd: i32) -> Option<(*const u8, *const u8)> {
    let task = current_task();
    let path: *const u8 = if dirfd == AT_FDCWD {
        let fs: *const u8 = read_kernel(task, o.task_fs).ok()?;
        fs.wrapping_add(o.fs_pwd as usize)
    } else {
        file_of_fd(dirfd as i64, &offsets())?.wrapping_add(o.file_path as usize)
    };
    let mnt: *const u8 = read_kernel(path, o.path_mnt).ok()?;
    let dentry: *const u8 = read_kernel(path, o.path_dentry).ok()?;
    if mnt.is_null() || dentry.is_null() {
        return None;
    }
    Some((mnt, dentry))
}

/// State of one path walk, shared with the `bpf_loop` callback (one verified step instead of
/// an unrolled loop whose branches the verifier would explore combinatorially). It lives in a
/// map, not on the stack, so the verifier sees its fields as plain numbers and the callback's
/// states converge at once instead of once per possible `pos`.
#[repr(C)]
pub struct Walk {
    dentry: u64,
    vfsmnt: u64,
    mnt: u64,
    /// Start of the text built so far in `FILE_WALK` (it ends at `PATH_MAX`).
    pos: u64,
    state: u64,
}

const WALK_RUNNING: u64 = 0;
const WALK_DONE: u64 = 1;
const WALK_FAILED: u64 = 2;
/// The next component did not fit: the text so far is the path's last part.
const WALK_FULL: u64 = 3;

/// How a walk ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Walked {
    /// The whole path.
    Whole,
    /// Too deep or too long: the last part of the path (possibly empty).
    Cut,
    /// No path leads here (unlinked or disconnected), or a read failed.
    Failed,
}

/// One step up: a component's name, or a crossing from a mount's root to its mountpoint.
#[inline(always)]
fn walk_step(w: &mut Walk) -> u64 {
    let o = file_offsets();
    let Some(buf) = FILE_WALK.get_ptr_mut(0) else {
        return WALK_FAILED;
    };
    let buf = buf as *mut u8;
    let dentry = w.dentry as *const u8;
    let vfsmnt = w.vfsmnt as *const u8;
    let mnt = w.mnt as *const u8;
    let Ok(mnt_root) = read_kernel::<*const u8>(vfsmnt, o.vfsmount_root) else {
        return WALK_FAILED;
    };
    let Ok(parent) = read_kernel::<*const u8>(dentry, o.dentry_parent) else {
        return WALK_FAILED;
    };
    if dentry == mnt_root || dentry == parent {
        if dentry != mnt_root {
            return WALK_FAILED; // unlinked or disconnected: no name leads here
        }
        let Ok(mnt_parent) = read_kernel::<*const u8>(mnt, o.mount_parent) else {
            return WALK_FAILED;
        };
        if mnt_parent == mnt || mnt_parent.is_null() {
            return WALK_DONE; // the root of the mount tree
        }
        let Ok(mp) = read_kernel::<*const u8>(mnt, o.mount_mountpoint) else {
            return WALK_FAILED;
        };
        w.dentry = mp as u64;
        w.mnt = mnt_parent as u64;
        w.vfsmnt = mnt_parent.wrapping_add(o.mount_mnt as usize) as u64;
        return WALK_RUNNING;
    }
    let Ok(len) = read_kernel::<u32>(dentry, o.dentry_name + o.qstr_len) else {
        return WALK_FAILED;
    };
    let Ok(name) = read_kernel::<*const u8>(dentry, o.dentry_name + o.qstr_name) else {
        return WALK_FAILED;
    };
    let len = len as usize;
    let pos = w.pos as usize;
    if len > NAME_MAX || pos > PATH_MAX {
        return WALK_FAILED;
    }
    if len + 1 > pos {
        return WALK_FULL; // does not fit
    }
    let at = (pos - len - 1) & (PATH_MAX - 1);
    unsafe { *buf.add(at) = b'/' };
    let r = unsafe {
        bpf_probe_read_kernel(
            buf.add(at + 1) as *mut c_void,
            (len & NAME_MAX) as u32,
            name as *const c_void,
        )
    };
    if r != 0 {
        return WALK_FAILED;
    }
    w.pos = at as u64;
    w.dentry = parent as u64;
    WALK_RUNNING
}

extern "C" fn walk_cb(_i: u64, _ctx: *mut c_void) -> i64 {
    let Some(w) = FILE_WALK_STATE.get_ptr_mut(0) else {
        return 1;
    };
    let w = unsafe { &mut *w };
    w.state = walk_step(w);
    if w.state == WALK_RUNNING {
        0
    } else {
        1
    }
}

/// Writes the absolute path of the directory (or file) `dirfd` names into `dst` (PATH_MAX
/// bytes), walking dentries up to the root and across mounts like the kernel's `d_path`.
/// Returns (length, complete?).
#[inline(never)]
pub(crate) fn resolve_base(dirfd: i32, dst: *mut u8) -> (u32, bool) {
    let o = file_offsets();
    if o.valid == 0 {
        return (0, false);
    }
    let Some((vfsmnt, dentry)) = dir_path(&o, dirfd) else {
        return (0, false);
    };
    let (n, how) = walk(&o, vfsmnt, dentry, dst);
    (n, how == Walked::Whole)
}

/// Writes the path of the kernel `struct path` at `path` into `dst` (PATH_MAX bytes): the
/// whole path, or its last part when it is too deep or too long.
#[inline(never)]
pub(crate) fn resolve_path(path: *const u8, dst: *mut u8) -> (u32, Walked) {
    let o = file_offsets();
    if o.valid == 0 || path.is_null() {
        return (0, Walked::Failed);
    }
    let (Ok(mnt), Ok(dentry)) = (
        read_kernel::<*const u8>(path, o.path_mnt),
        read_kernel::<*const u8>(path, o.path_dentry),
    ) else {
        return (0, Walked::Failed);
    };
    if mnt.is_null() || dentry.is_null() {
        return (0, Walked::Failed);
    }
    walk(&o, mnt, dentry, dst)
}

/// `struct path` offsets the exec hook needs besides the walk: (`path.dentry`, `file.f_path`,
/// `task.fs`, `fs.pwd`, `dentry.d_name` + `qstr.name`, `dentry.d_name` + `qstr.len`); `None`
/// before userspace has filled them.
#[inline(always)]
pub(crate) fn path_offsets() -> Option<(u32, u32, u32, u32, u32, u32)> {
    let o = file_offsets();
    (o.valid != 0).then_some((
        o.path_dentry,
        o.file_path,
        o.task_fs,
        o.fs_pwd,
        o.dentry_name + o.qstr_name,
        o.dentry_name + o.qstr_len,
    ))
}

#[inline(always)]
fn walk(o: &FileOffsets, vfsmnt: *const u8, dentry: *const u8, dst: *mut u8) -> (u32, Walked) {
    let Some(w) = FILE_WALK_STATE.get_ptr_mut(0) else {
        return (0, Walked::Failed);
    };
    let w = unsafe { &mut *w };
    w.dentry = dentry as u64;
    w.vfsmnt = vfsmnt as u64;
    w.mnt = vfsmnt.wrapping_sub(o.mount_mnt as usize) as u64;
    w.pos = PATH_MAX as u64;
    w.state = WALK_RUNNING;
    unsafe {
        bpf_loop(
            MAX_DEPTH as u32,
            walk_cb as *mut c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    let how = match w.state {
        WALK_DONE => Walked::Whole,
        WALK_FAILED => return (0, Walked::Failed),
        // Out of steps, or out of room.
        _ => Walked::Cut,
    };
    if w.pos as usize >= PATH_MAX {
        if how == Walked::Cut {
            return (0, how);
        }
        unsafe { *dst = b'/' };
        return (1, how);
    }
    let Some(buf) = FILE_WALK.get_ptr_mut(0) else {
        return (0, Walked::Failed);
    };
    let at = w.pos as usize & (PATH_MAX - 1);
    let n = (PATH_MAX - at) & (PATH_MAX - 1);
    let r = unsafe {
        bpf_probe_read_kernel(
            dst as *mut c_void,
            n as u32,
            (buf as *const u8).add(at) as *const c_void,
        )
    };
    if r != 0 {
        return (0, Walked::Failed);
    }
    (n as u32, how)
}
