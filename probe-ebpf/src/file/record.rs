//! The two halves of every file hook: the entry fills the thread's pending record (header,
//! arguments, inline paths, prefix filter), the exit adds the result and sends it, reading long
//! or late paths whole and resolving directories first when it must.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_user, bpf_probe_read_user_str},
    programs::TracePointContext,
};
use probe_common::{
    EventKind, FileConfig, FileEvent, FileRecord, FileSyscall, AT_FDCWD, FILE_BASE_PARTIAL,
    FILE_BY_FD, FILE_CFG_READS, FILE_FIXED_LEN, FILE_HAS_BASE, FILE_HAS_TARGET,
    FILE_HAS_TARGET_BASE, FILE_PATH_TRUNCATED, FILE_PATH_UNREADABLE, FILE_TARGET_TRUNCATED,
    FILE_TARGET_UNREADABLE, FILE_TIMES_NULL, FILE_TIMES_UNREADABLE, PATH_MAX,
};

use super::{
    prefix::prefix_keeps, walk::resolve_base, Pending, FILE_CONFIG, FILE_DEFERRED, FILE_LONG,
    FILE_NEED_BASE, FILE_PENDING, FILE_SCRATCH, INLINE_PATH, KERNEL_ONLY, O_ACCMODE, O_PATH,
    O_TRUNC,
};
use crate::common::{count_loss, emit_bytes, enabled, fill_header_cached, kind_enabled, sys_ret};
use crate::kernel::current_task;

/// What one syscall passed, in the shape of a file event.
#[derive(Clone, Copy)]
pub(super) struct Args {
    pub(super) sys: FileSyscall,
    pub(super) kind: EventKind,
    pub(super) dirfd: i32,
    /// User pointer to the path (0: none, the call works on `dirfd`).
    pub(super) path: u64,
    pub(super) target_dirfd: i32,
    /// User pointer to the second path (0: none).
    pub(super) target: u64,
    pub(super) flags: u32,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) length: i64,
    /// utime calls: the times as passed, and `FILE_TIMES_*` bits.
    pub(super) times: [i64; 4],
    pub(super) tflags: u32,
}

impl Args {
    #[inline(always)]
    pub(super) fn new(sys: FileSyscall, kind: EventKind, dirfd: i32, path: u64) -> Self {
        Args {
            sys,
            kind,
            dirfd,
            path,
            target_dirfd: AT_FDCWD,
            target: 0,
            flags: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            length: 0,
            times: [0; 4],
            tflags: 0,
        }
    }
}

/// Copies a user string into `dst` (`CAP` bytes, a power of two). Returns (length without NUL,
/// flags): `truncated` when it did not fit, `unreadable` when it could not be read.
#[inline(always)]
pub(crate) fn read_user_path<const CAP: usize>(
    src: u64,
    dst: *mut u8,
    truncated: u32,
    unreadable: u32,
) -> (u32, u32) {
    let n =
        unsafe { bpf_probe_read_user_str(dst as *mut c_void, CAP as u32, src as *const c_void) };
    if n <= 0 {
        return (0, unreadable);
    }
    let len = (n as u32 - 1) & (CAP as u32 - 1);
    if n as usize == CAP {
        // The buffer is full: the path was longer unless its byte CAP-1 was the NUL.
        let mut next: u8 = 0;
        let r = unsafe {
            bpf_probe_read_user(
                &mut next as *mut u8 as *mut c_void,
                1,
                (src + CAP as u64 - 1) as *const c_void,
            )
        };
        if r != 0 || next != 0 {
            return (len, truncated);
        }
    }
    (len, 0)
}

/// Whether the call's second path names a place (a symlink's target is only text).
#[inline(always)]
fn target_is_place(syscall: u32) -> bool {
    syscall != FileSyscall::Symlink as u32 && syscall != FileSyscall::Symlinkat as u32
}

/// Whether the record's target is a place given relative to a directory; `tlen` and `tfirst`
/// are its length and first byte.
#[inline(always)]
fn target_relative<const N: usize>(ev: &FileRecord<N>, tlen: usize, tfirst: u8) -> bool {
    ev.target_ptr != 0 && target_is_place(ev.syscall) && (tlen == 0 || tfirst != b'/')
}

/// Whether a record needs the directory its path is relative to: an fd-based call, a relative
/// path, or a relative target that names a place.
#[inline(always)]
fn needs_base<const N: usize>(ev: &FileRecord<N>, plen: usize, first: u8, tfirst: u8) -> bool {
    let relative = ev.path_ptr == 0 || plen == 0 || first != b'/';
    relative || target_relative(ev, ev.target_len as usize, tfirst)
}

/// Reads the path(s) of the call at entry into the thread's pending record, inline, and applies
/// the prefix filters; false when they drop the event. Sets `FILE_LONG` when a path does not
/// fit inline and `FILE_DEFERRED` when one cannot be read yet (its page not faulted in, common
/// right after fork): the exit reads them whole then. Sets `FILE_NEED_BASE` when the exit must
/// resolve a directory.
#[inline(always)]
fn enter_paths(ev: &mut Pending, cfg: &FileConfig) -> bool {
    let data = ev.data.as_mut_ptr();
    let mut keep = true;
    let mut plen: usize = 0;
    if ev.path_ptr != 0 {
        let (len, fl) = read_user_path::<INLINE_PATH>(ev.path_ptr, data, FILE_LONG, FILE_DEFERRED);
        ev.path_len = len;
        ev.fflags |= fl;
        plen = len as usize & (INLINE_PATH - 1);
        keep = fl != 0 || prefix_keeps(cfg, data, len);
    }
    if ev.target_ptr != 0 {
        let tdata = unsafe { data.add(plen) };
        let (len, fl) =
            read_user_path::<INLINE_PATH>(ev.target_ptr, tdata, FILE_LONG, FILE_DEFERRED);
        ev.target_len = len;
        ev.fflags |= fl;
        // A rename or link out of an excluded place may land in a kept one: userspace judges
        // the target once it is resolved.
        if target_is_place(ev.syscall) {
            keep = true;
        }
    }
    if !keep {
        return false;
    }
    if ev.fflags & (FILE_LONG | FILE_DEFERRED) == 0 {
        let first = unsafe { *data };
        let tfirst = unsafe { *data.add(plen) };
        if needs_base(ev, plen, first, tfirst) {
            ev.fflags |= FILE_NEED_BASE;
        }
    }
    true
}

/// Reads the path(s) of the call whole into a full-size record (the exit's second chance for
/// paths too long to sit inline or unreadable at entry) and resolves their directories.
#[inline(always)]
fn exit_paths(ev: &mut FileEvent) {
    ev.fflags &= FILE_BY_FD | FILE_HAS_TARGET | FILE_TIMES_NULL | FILE_TIMES_UNREADABLE;
    ev.path_len = 0;
    ev.target_len = 0;
    let data = ev.data.as_mut_ptr();
    let mut plen: usize = 0;
    if ev.path_ptr != 0 {
        let (len, fl) = read_user_path::<PATH_MAX>(
            ev.path_ptr,
            data,
            FILE_PATH_TRUNCATED,
            FILE_PATH_UNREADABLE,
        );
        ev.path_len = len;
        ev.fflags |= fl;
        plen = len as usize & (PATH_MAX - 1);
    }
    if ev.target_ptr != 0 {
        let (len, fl) = read_user_path::<PATH_MAX>(
            ev.target_ptr,
            unsafe { data.add(plen) },
            FILE_TARGET_TRUNCATED,
            FILE_TARGET_UNREADABLE,
        );
        ev.target_len = len;
        ev.fflags |= fl;
    }
    if ev.fflags & (FILE_PATH_UNREADABLE | FILE_TARGET_UNREADABLE) != 0 {
        return;
    }
    let first = unsafe { *data };
    let tfirst = unsafe { *data.add(plen) };
    if needs_base(ev, plen, first, tfirst) {
        resolve_bases(ev);
    }
}

/// Appends to the record the directory of its relative path (or the fd of an fd-based call)
/// and, for a target relative to another dirfd (renameat, linkat), that one too. Resolved at
/// the exit, while the call's dirfd is still held open by the caller.
#[inline(always)]
fn resolve_bases(ev: &mut FileEvent) {
    ev.base_len = 0;
    ev.target_base_len = 0;
    let data = ev.data.as_mut_ptr();
    let plen = ev.path_len as usize & (PATH_MAX - 1);
    let tlen = if ev.fflags & FILE_HAS_TARGET != 0 {
        ev.target_len as usize & (PATH_MAX - 1)
    } else {
        0
    };
    let target_relative = target_relative(ev, tlen, unsafe { *data.add(plen) });
    let base = unsafe { data.add(plen + tlen) };
    let mut blen: usize = 0;
    let (len, ok) = resolve_base(ev.dirfd, base);
    if ok {
        ev.fflags |= FILE_HAS_BASE;
        ev.base_len = len;
        blen = len as usize & (PATH_MAX - 1);
    } else {
        ev.fflags |= FILE_BASE_PARTIAL;
    }
    let at = plen + tlen + blen;
    if target_relative && ev.target_dirfd != ev.dirfd && at < 2 * PATH_MAX {
        let tbase = unsafe { data.add(at & (2 * PATH_MAX - 1)) };
        let (len, ok) = resolve_base(ev.target_dirfd, tbase);
        if ok {
            ev.fflags |= FILE_HAS_TARGET_BASE;
            ev.target_base_len = len;
        }
    }
}

/// Marks the thread's pending record empty, so an exit cannot report a call that was dropped
/// at its entry with the paths of an older one.
#[inline(always)]
fn disarm() {
    if let Some(t) = FILE_PENDING.current() {
        unsafe { (*t).rec.syscall = 0 };
    }
}

/// Whether the call is to be recorded at all, before anything is read.
#[inline(always)]
fn wanted(a: &Args) -> Option<&'static FileConfig> {
    enabled(a.kind)?;
    let fcfg = FILE_CONFIG.get(0)?;
    let is_open = matches!(
        a.sys,
        FileSyscall::Open | FileSyscall::Openat | FileSyscall::Openat2
    );
    if is_open
        && fcfg.flags & FILE_CFG_READS == 0
        && a.kind == EventKind::FileOpen
        && (a.flags & O_PATH != 0 || (a.flags & O_ACCMODE == 0 && a.flags & O_TRUNC == 0))
    {
        return None; // a read-only open, not asked for
    }
    Some(fcfg)
}

pub(super) fn try_enter(a: Args) {
    let Some(fcfg) = wanted(&a) else {
        disarm();
        return;
    };
    let Some(t) = FILE_PENDING.current_or_create() else {
        count_loss(a.kind); // no memory for the thread's record
        return;
    };
    let t = unsafe { &mut *t };
    let ev = &mut t.rec;
    fill_header_cached(&mut ev.header, a.kind, current_task(), &mut t.ids);
    ev.ret = 0;
    ev.fflags = 0;
    ev.dirfd = a.dirfd;
    ev.target_dirfd = a.target_dirfd;
    ev.flags = a.flags;
    ev.mode = a.mode;
    ev.uid = a.uid;
    ev.gid = a.gid;
    ev.length = a.length;
    ev.times = a.times;
    ev.fflags |= a.tflags;
    ev.path_len = 0;
    ev.target_len = 0;
    ev.path_ptr = a.path;
    ev.target_ptr = a.target;
    ev.base_len = 0;
    ev.target_base_len = 0;
    if a.path == 0 {
        ev.fflags |= FILE_BY_FD;
    }
    if a.target != 0 {
        ev.fflags |= FILE_HAS_TARGET;
    }
    // The syscall both arms the record for its exit and tells `enter_paths` whether a target
    // names a place; a record the filters drop is disarmed.
    ev.syscall = a.sys as u32;
    if !enter_paths(ev, fcfg) {
        ev.syscall = 0;
    }
}

/// The exit of a file syscall: completes and sends the thread's pending record. Whether the
/// call is wanted at all (kind, filters, the probe itself) was decided at its entry; only a
/// kind switched off since (a reload) is checked again.
pub(super) fn try_exit(ctx: &TracePointContext, sys: FileSyscall) {
    let Some(t) = FILE_PENDING.current() else {
        return;
    };
    let p = unsafe { &mut (*t).rec };
    if p.syscall != sys as u32 {
        // Empty, or left by an entry whose exit was never seen (attached in between).
        return;
    }
    let kind = EventKind::try_from(p.header.kind).unwrap_or(EventKind::FileOpen);
    if kind_enabled(kind).is_none() {
        p.syscall = 0;
        return;
    }
    p.ret = sys_ret(ctx);
    send(p, kind);
    p.syscall = 0;
}

/// Sends a completed pending record.
#[inline(always)]
fn send(p: &mut Pending, kind: EventKind) {
    if p.fflags & KERNEL_ONLY == 0 {
        // The common case: everything is inline, sent from the thread's record as it is.
        let mut len = p.path_len as usize & (INLINE_PATH - 1);
        if p.fflags & FILE_HAS_TARGET != 0 {
            len += p.target_len as usize & (INLINE_PATH - 1);
        }
        emit_bytes(
            kind,
            p as *const Pending as *const u8,
            (FILE_FIXED_LEN + len) as u64,
        );
        return;
    }
    let Some(ev) = FILE_SCRATCH.get_ptr_mut(0) else {
        count_loss(kind);
        return;
    };
    let ev = unsafe { &mut *ev };
    let r = unsafe {
        bpf_probe_read_kernel(
            ev as *mut FileEvent as *mut c_void,
            core::mem::size_of::<Pending>() as u32,
            p as *const Pending as *const c_void,
        )
    };
    if r != 0 {
        count_loss(kind);
        return;
    }
    if p.fflags & (FILE_LONG | FILE_DEFERRED) != 0 {
        // Read them whole now; the prefix filter is left to userspace.
        exit_paths(ev);
    } else {
        ev.fflags &= !KERNEL_ONLY;
        resolve_bases(ev);
    }
    let mut len = ev.path_len as usize & (PATH_MAX - 1);
    if ev.fflags & FILE_HAS_TARGET != 0 {
        len += ev.target_len as usize & (PATH_MAX - 1);
    }
    if ev.fflags & FILE_HAS_BASE != 0 {
        len += ev.base_len as usize & (PATH_MAX - 1);
    }
    if ev.fflags & FILE_HAS_TARGET_BASE != 0 {
        len = (len & (2 * PATH_MAX - 1)) + (ev.target_base_len as usize & (PATH_MAX - 1));
    }
    emit_bytes(
        kind,
        ev as *const FileEvent as *const u8,
        (FILE_FIXED_LEN + len) as u64,
    );
}

#[inline(always)]
pub(super) fn fd(v: u64) -> i32 {
    v as i32
}

/// One enter/exit program pair per syscall: `$args` turns the enter record into [`Args`].
/// Paths in full: it expands in the syscall-group modules, which then import nothing for it.
macro_rules! file_syscall {
    ($enter:ident, $exit:ident, $sys:expr, |$c:ident| $args:expr) => {
        #[aya_ebpf::macros::tracepoint]
        pub fn $enter(ctx: aya_ebpf::programs::TracePointContext) -> u32 {
            let $c = &ctx;
            $crate::file::record::try_enter($args);
            0
        }

        #[aya_ebpf::macros::tracepoint]
        pub fn $exit(ctx: aya_ebpf::programs::TracePointContext) -> u32 {
            $crate::file::record::try_exit(&ctx, $sys);
            0
        }
    };
}
pub(super) use file_syscall;
