//! `process.exec` from `sched_process_exec`: the filename and interpreter as `bprm` gives them,
//! the executed file's path walked from its dentry (symlinks resolved, right in any mount
//! namespace), the cwd walked from `task->fs->pwd`, the file's inode facts (for hashing and
//! fileless execs), and argv as the new image sees it. All taken now, in the kernel: nothing
//! read from /proc later can tell them for a process that has exec'd again or gone.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use probe_common::{
    EventKind, ExecEvent, ARGS_MAX, EXEC_CWD_DELETED, EXEC_CWD_TRUNCATED, EXEC_CWD_UNKNOWN,
    EXEC_EXE_PSEUDO, EXEC_EXE_TRUNCATED, EXEC_FIXED_LEN, EXEC_HAS_CTIME, EXEC_HAS_INODE,
    EXEC_NLINK0, FLAG_ARGS_TRUNCATED, FLAG_ARGS_UNREADABLE, PATH_MAX,
};

use crate::{
    common::{bound, emit_bytes, enabled, fill_header},
    file::walk::{path_offsets, resolve_path, Walked},
    kernel::{current_task, offsets, read_kernel},
    maps::EXEC_SCRATCH,
    task::{read_opt, read_ptr, toff},
};

/// Longest name of one dentry (a memfd's `memfd:NAME`), with its NUL.
const NAME_BUF: u32 = 256;

/// Raw tracepoint: `(task, old_pid, bprm)`. `bprm` gives the filename as passed, the
/// interpreter of a script (`bprm->interp`) and the file that runs (`bprm->file`: for a script,
/// its interpreter).
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

/// The executed file's path into `dst`; a file no mount leads to (a memfd) gets its dentry's
/// own name and `EXEC_EXE_PSEUDO`.
#[inline(always)]
fn exe_path(ev: &mut ExecEvent, file: *const u8, dst: *mut u8) -> usize {
    let Some((path_dentry, file_path, ..)) = path_offsets() else {
        return 0;
    };
    if file.is_null() {
        return 0;
    }
    let path = file.wrapping_add(file_path as usize);
    let (n, how) = resolve_path(path, dst);
    match how {
        Walked::Whole => n as usize,
        Walked::Cut => {
            ev.xflags |= EXEC_EXE_TRUNCATED;
            n as usize
        }
        Walked::Failed => {
            let Some((_, _, _, _, name_off, _)) = path_offsets() else {
                return 0;
            };
            let dentry = read_ptr(path, path_dentry);
            let name = read_ptr(dentry, name_off);
            if name.is_null() {
                return 0;
            }
            let r = unsafe {
                bpf_probe_read_kernel_str(dst as *mut c_void, NAME_BUF, name as *const c_void)
            };
            if r <= 0 {
                return 0;
            }
            ev.xflags |= EXEC_EXE_PSEUDO;
            (r - 1) as usize & (NAME_BUF as usize - 1)
        }
    }
}

/// The task's cwd into `dst`, flagged when cut, unknown, or removed since (`rmdir`).
#[inline(always)]
fn cwd_path(ev: &mut ExecEvent, task: *const u8, dst: *mut u8) -> usize {
    let Some((path_dentry, _, task_fs, fs_pwd, ..)) = path_offsets() else {
        ev.xflags |= EXEC_CWD_UNKNOWN;
        return 0;
    };
    let fs = read_ptr(task, task_fs);
    if fs.is_null() {
        ev.xflags |= EXEC_CWD_UNKNOWN;
        return 0;
    }
    let pwd = fs.wrapping_add(fs_pwd as usize);
    let (n, how) = resolve_path(pwd, dst);
    match how {
        Walked::Whole => {}
        Walked::Cut => ev.xflags |= EXEC_CWD_TRUNCATED,
        Walked::Failed => {
            ev.xflags |= EXEC_CWD_UNKNOWN;
            return 0;
        }
    }
    let inode = read_ptr(read_ptr(pwd, path_dentry), toff!(dentry_inode));
    if read_opt::<u32>(inode, toff!(inode_nlink)) == Some(0) {
        ev.xflags |= EXEC_CWD_DELETED;
    }
    n as usize
}

/// Device, inode, size and ctime of the executed file (what the hasher checks the file it
/// opens against), and whether it has a link left.
#[inline(always)]
fn inode_facts(ev: &mut ExecEvent, file: *const u8, f_inode: u32) {
    ev.dev = 0;
    ev.ino = 0;
    ev.size = 0;
    ev.ctime_sec = 0;
    ev.ctime_nsec = 0;
    ev._pad0 = 0;
    let inode = if file.is_null() {
        core::ptr::null()
    } else {
        read_kernel::<*const u8>(file, f_inode).unwrap_or_default()
    };
    if read_opt::<u32>(inode, toff!(inode_nlink)) == Some(0) {
        ev.xflags |= EXEC_NLINK0;
    }
    let sb = read_ptr(inode, toff!(inode_sb));
    let (Some(ino), Some(dev), Some(size)) = (
        read_opt::<u64>(inode, toff!(inode_ino)),
        read_opt::<u32>(sb, toff!(sb_dev)),
        read_opt::<u64>(inode, toff!(inode_size)),
    ) else {
        return;
    };
    ev.ino = ino;
    ev.dev = dev;
    ev.size = size;
    ev.xflags |= EXEC_HAS_INODE;
    // `timespec64.tv_nsec` is a long; its low half on little endian.
    if let (Some(sec), Some(nsec)) = (
        read_opt::<i64>(inode, toff!(inode_ctime_sec)),
        read_opt::<u32>(inode, toff!(inode_ctime_nsec)),
    ) {
        ev.ctime_sec = sec;
        ev.ctime_nsec = nsec;
        ev.xflags |= EXEC_HAS_CTIME;
    }
}

/// The deny check for an exec the filters leave out: a denied file is killed whatever the
/// filters say. True when it was denied: the exec is then reported after all, since every
/// action is an event.
#[inline(always)]
fn deny_unreported(ctx: &RawTracePointContext) -> bool {
    let off = offsets();
    let bprm = ctx.arg::<u64>(2) as *const u8;
    let file = read_ptr(bprm, toff!(bprm_file));
    if file.is_null() {
        return false;
    }
    let inode = read_kernel::<*const u8>(file, off.file_f_inode).unwrap_or_default();
    let sb = read_ptr(inode, toff!(inode_sb));
    if let (Some(ino), Some(dev)) = (
        read_opt::<u64>(inode, toff!(inode_ino)),
        read_opt::<u32>(sb, toff!(sb_dev)),
    ) {
        return crate::respond::check_exec(dev, ino) != 0;
    }
    false
}

fn try_exec(ctx: &RawTracePointContext) -> Result<(), i64> {
    if enabled(EventKind::ProcessExec).is_none() && !deny_unreported(ctx) {
        return Ok(());
    }
    let off = offsets();
    let ev = EXEC_SCRATCH.get_ptr_mut(0).ok_or(0)?;
    let ev = unsafe { &mut *ev };
    let task = current_task();
    fill_header(&mut ev.header, EventKind::ProcessExec, task);

    let bprm = ctx.arg::<u64>(2) as *const u8;
    let data = ev.data.as_mut_ptr();
    let fname_len = bound(read_kstr_at(bprm, off.bprm_filename, data) as u32, 4095) as usize;
    let interp_len = bound(
        read_kstr_at(bprm, off.bprm_interp, data.wrapping_add(fname_len)) as u32,
        4095,
    ) as usize;
    ev.filename_len = fname_len as u32;
    ev.interp_len = interp_len as u32;
    ev.xflags = 0;
    let file = read_ptr(bprm, toff!(bprm_file));
    let at = fname_len + interp_len;
    let exe_len = bound(exe_path(ev, file, data.wrapping_add(at)) as u32, 4095) as usize;
    ev.exe_len = exe_len as u32;
    let at = at + exe_len;
    let cwd_len = bound(cwd_path(ev, task, data.wrapping_add(at)) as u32, 4095) as usize;
    ev.cwd_len = cwd_len as u32;
    inode_facts(ev, file, off.file_f_inode);
    // The deny check needs the inode just read: a denied file is killed here, before its
    // image runs, and the event says so.
    ev.xflags |= crate::respond::check_exec(ev.dev, ev.ino);
    let paths = at + cwd_len;

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
