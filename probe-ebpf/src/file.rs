//! File activity: `syscalls:sys_enter_*` copies the path bytes from user memory (gone or
//! changed later) into a per-thread in-flight record; `sys_exit_*` of the same thread adds the
//! result and emits it, so a failed call is reported too.
//!
//! Volume control happens here, before any copy where possible: the kind's enabled bit (and the
//! common filters) first, read-only opens unless asked for, then path prefixes from an LPM trie
//! (only for clean absolute paths; the rest is filtered in userspace after resolution).
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{
        bpf_loop, bpf_probe_read_kernel, bpf_probe_read_user, bpf_probe_read_user_str,
    },
    macros::{btf_map, map, tracepoint},
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, PerCpuArray,
    },
    programs::TracePointContext,
};
use probe_common::{
    EventKind, FileConfig, FileEvent, FileOffsets, FileRecord, FileSyscall, AT_FDCWD,
    FILE_BASE_PARTIAL, FILE_BY_FD, FILE_CFG_INCLUDE, FILE_CFG_READS, FILE_FIXED_LEN, FILE_HAS_BASE,
    FILE_HAS_TARGET, FILE_HAS_TARGET_BASE, FILE_PATH_TRUNCATED, FILE_PATH_UNREADABLE,
    FILE_TARGET_TRUNCATED, FILE_TARGET_UNREADABLE, PATH_MAX, PREFIX_EXCLUDE, PREFIX_INCLUDE,
    PREFIX_KEY_LEN,
};

use crate::common::{
    bound, count_loss, current_task, emit_bytes, enabled, file_of_fd, fill_header_cached,
    kind_enabled, offsets, read_kernel, sys_arg, sys_ret, IdCache,
};
use crate::maps::TaskStorage;

/// Offsets for the path walk, from BTF; set by userspace before load.
#[unsafe(no_mangle)]
static FILE_OFFSETS: FileOffsets = FileOffsets::zeroed();

/// Most steps (components plus mount crossings) walked up from a cwd or fd; more sets
/// `FILE_BASE_PARTIAL`.
const MAX_DEPTH: usize = 128;
/// Longest name of one path component.
const NAME_MAX: usize = 255;

/// File-specific settings written by userspace.
#[map]
static FILE_CONFIG: Array<FileConfig> = Array::with_max_entries(1, 0);

/// Include/exclude path prefixes (stored with a trailing `/`); the longest match wins.
#[map]
static FILE_PREFIXES: LpmTrie<[u8; PREFIX_KEY_LEN], u8> = LpmTrie::with_max_entries(256, 0);

/// Room for one path inline in a pending record (a power of two); longer ones are read whole
/// at the exit.
const INLINE_PATH: usize = 512;

/// A call between its sys_enter and its sys_exit: the wire layout with room for the path and
/// the target inline, which nearly every call fits. Sent as it is when it needs nothing more.
type Pending = FileRecord<{ 2 * INLINE_PATH }>;

/// A thread's task-local state: its pending call, then what its header repeats.
#[repr(C)]
struct ThreadState {
    rec: Pending,
    ids: IdCache,
}

const _: () = assert!(
    FILE_FIXED_LEN.is_multiple_of(8),
    "paths must start 8-byte aligned"
);

/// Each thread's pending call. Task-local storage rather than a hash keyed by thread id: the
/// entry writes straight into it (no per-call insert or copy) and it dies with the thread.
#[btf_map]
static FILE_PENDING: TaskStorage<ThreadState> = TaskStorage::new();

/// Where a record is built before it is known to pass the filters (too big for the stack).
#[map]
static FILE_SCRATCH: PerCpuArray<FileEvent> = PerCpuArray::with_max_entries(1, 0);

/// Scratch where a directory path is built backwards from its last component.
#[map]
static FILE_WALK: PerCpuArray<[u8; 2 * PATH_MAX]> = PerCpuArray::with_max_entries(1, 0);

/// The state of the walk in progress on this CPU.
#[map]
static FILE_WALK_STATE: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);

/// Scratch for the trie lookup key.
#[map]
static FILE_KEY: PerCpuArray<Key<[u8; PREFIX_KEY_LEN]>> = PerCpuArray::with_max_entries(1, 0);

const O_ACCMODE: u32 = 0o3;
const O_CREAT: u32 = 0o100;
const O_WRONLY: u32 = 0o1;
const O_TRUNC: u32 = 0o1000;
const O_PATH: u32 = 0o10000000;
const O_TMPFILE_BIT: u32 = 0o20000000;
const AT_REMOVEDIR: u32 = 0x200;
/// `FileEvent::fflags` bits used only in the kernel, cleared before a record is sent:
/// a path could not be read at entry,
const FILE_DEFERRED: u32 = 1 << 31;
/// a path did not fit inline,
const FILE_LONG: u32 = 1 << 30;
/// the exit must resolve a directory.
const FILE_NEED_BASE: u32 = 1 << 29;
const KERNEL_ONLY: u32 = FILE_DEFERRED | FILE_LONG | FILE_NEED_BASE;
const AT_SYMLINK_NOFOLLOW: u32 = 0x100;

/// What one syscall passed, in the shape of a file event.
#[derive(Clone, Copy)]
struct Args {
    sys: FileSyscall,
    kind: EventKind,
    dirfd: i32,
    /// User pointer to the path (0: none, the call works on `dirfd`).
    path: u64,
    target_dirfd: i32,
    /// User pointer to the second path (0: none).
    target: u64,
    flags: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    length: i64,
}

impl Args {
    #[inline(always)]
    fn new(sys: FileSyscall, kind: EventKind, dirfd: i32, path: u64) -> Self {
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
        }
    }
}

#[inline(always)]
fn open_kind(flags: u32) -> EventKind {
    if flags & (O_CREAT | O_TMPFILE_BIT) != 0 {
        EventKind::FileCreate
    } else {
        EventKind::FileOpen
    }
}

/// Copies a user string into `dst` (`CAP` bytes, a power of two). Returns (length without NUL,
/// flags): `truncated` when it did not fit, `unreadable` when it could not be read.
#[inline(always)]
fn read_user_path<const CAP: usize>(
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

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// 0x80 in each byte of `w` equal to `c`, 0 elsewhere (exact, no carries between bytes).
#[inline(always)]
fn bytes_equal(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * c as u64);
    let t = ((x & !HIGHS) + !HIGHS) | x;
    !t & HIGHS
}

/// Whether the prefix trie may judge `len` bytes at `p` (8-byte aligned, readable for 256
/// bytes): absolute, short enough to sit whole in a trie key (longer ones are judged in
/// userspace), and no `//` or `/.` anywhere, so its lexical prefix is its place
/// (`/dev/pts/../../etc/passwd` must not match `/dev/pts`). Eight bytes a step, no helper.
#[inline(always)]
fn is_clean_absolute(p: *const u8, len: u32) -> bool {
    if len == 0 || len as usize >= PREFIX_KEY_LEN || unsafe { *p } != b'/' {
        return false;
    }
    let words = p as *const u64;
    let mut carry = 0u64; // the previous word ended in '/'
    for k in 0..PREFIX_KEY_LEN / 8 {
        let start = (k * 8) as u32;
        if start >= len {
            break;
        }
        // SAFETY: k < 32 words of the 256 readable, aligned bytes.
        let w = unsafe { words.add(k).read() };
        let left = len - start;
        let valid = if left >= 8 {
            HIGHS
        } else {
            HIGHS & ((1u64 << (left * 8)) - 1)
        };
        let slash = bytes_equal(w, b'/') & valid;
        let next = (slash | bytes_equal(w, b'.')) & valid;
        // Little endian: byte j+1 of the word sits 8 bits above byte j.
        if (next >> 8) & slash != 0 || (carry != 0 && next & 0x80 != 0) {
            return false;
        }
        carry = slash >> 63;
    }
    true
}

/// Whether a path passes the prefix filters, as far as the kernel can tell. `buf` is 8-byte
/// aligned with 256 readable bytes.
#[inline(never)]
fn prefix_keeps(cfg: &FileConfig, buf: *const u8, len: u32) -> bool {
    if !is_clean_absolute(buf, len) {
        return true; // userspace decides after resolving and normalising it
    }
    let Some(key) = FILE_KEY.get_ptr_mut(0) else {
        return true;
    };
    let key = unsafe { &mut *key };
    let data = key.data.as_mut_ptr();
    // Volatile so the mask survives: the compiler knows n < 256, the verifier must see it.
    let n = bound(len, PREFIX_KEY_LEN as u32 - 1);
    if unsafe { bpf_probe_read_kernel(data as *mut c_void, n, buf as *const c_void) } != 0 {
        return true;
    }
    // The key is the path plus `/`, so `/etc` matches the stored `/etc/` but `/etcx` does not.
    unsafe { *data.add(n as usize & (PREFIX_KEY_LEN - 1)) = b'/' };
    key.prefix_len = (n + 1) * 8;
    match FILE_PREFIXES.get(&*key) {
        Some(&PREFIX_EXCLUDE) => false,
        Some(&PREFIX_INCLUDE) => true,
        _ => cfg.flags & FILE_CFG_INCLUDE == 0,
    }
}

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
    if len > NAME_MAX || pos > PATH_MAX || len + 1 > pos {
        return WALK_FAILED; // does not fit
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
fn resolve_base(dirfd: i32, dst: *mut u8) -> (u32, bool) {
    let o = file_offsets();
    if o.valid == 0 {
        return (0, false);
    }
    let Some((vfsmnt, dentry)) = dir_path(&o, dirfd) else {
        return (0, false);
    };
    let Some(w) = FILE_WALK_STATE.get_ptr_mut(0) else {
        return (0, false);
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
    if w.state != WALK_DONE {
        return (0, false);
    }
    if w.pos as usize >= PATH_MAX {
        unsafe { *dst = b'/' };
        return (1, true);
    }
    let Some(buf) = FILE_WALK.get_ptr_mut(0) else {
        return (0, false);
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
        return (0, false);
    }
    (n as u32, true)
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
    ev.fflags &= FILE_BY_FD | FILE_HAS_TARGET;
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

fn try_enter(a: Args) {
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
    let off = offsets();
    fill_header_cached(&mut ev.header, a.kind, current_task(), &off, &mut t.ids);
    ev.ret = 0;
    ev.fflags = 0;
    ev.dirfd = a.dirfd;
    ev.target_dirfd = a.target_dirfd;
    ev.flags = a.flags;
    ev.mode = a.mode;
    ev.uid = a.uid;
    ev.gid = a.gid;
    ev.length = a.length;
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
fn try_exit(ctx: &TracePointContext, sys: FileSyscall) {
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
fn fd(v: u64) -> i32 {
    v as i32
}

/// One enter/exit program pair per syscall: `$args` turns the enter record into [`Args`].
macro_rules! file_syscall {
    ($enter:ident, $exit:ident, $sys:expr, |$c:ident| $args:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            let $c = &ctx;
            try_enter($args);
            0
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            try_exit(&ctx, $sys);
            0
        }
    };
}

file_syscall!(file_enter_open, file_exit_open, FileSyscall::Open, |c| {
    let flags = sys_arg(c, 1) as u32;
    let mut a = Args::new(FileSyscall::Open, open_kind(flags), AT_FDCWD, sys_arg(c, 0));
    a.flags = flags;
    a.mode = sys_arg(c, 2) as u32;
    a
});

file_syscall!(
    file_enter_openat,
    file_exit_openat,
    FileSyscall::Openat,
    |c| {
        let flags = sys_arg(c, 2) as u32;
        let mut a = Args::new(
            FileSyscall::Openat,
            open_kind(flags),
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.flags = flags;
        a.mode = sys_arg(c, 3) as u32;
        a
    }
);

file_syscall!(
    file_enter_openat2,
    file_exit_openat2,
    FileSyscall::Openat2,
    |c| {
        // struct open_how { u64 flags; u64 mode; u64 resolve; } in user memory.
        let mut how = [0u64; 2];
        let _ = unsafe {
            bpf_probe_read_user(
                how.as_mut_ptr() as *mut c_void,
                16,
                sys_arg(c, 2) as *const c_void,
            )
        };
        let flags = how[0] as u32;
        let mut a = Args::new(
            FileSyscall::Openat2,
            open_kind(flags),
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.flags = flags;
        a.mode = how[1] as u32;
        a
    }
);

file_syscall!(file_enter_creat, file_exit_creat, FileSyscall::Creat, |c| {
    let mut a = Args::new(
        FileSyscall::Creat,
        EventKind::FileCreate,
        AT_FDCWD,
        sys_arg(c, 0),
    );
    a.flags = O_CREAT | O_WRONLY | O_TRUNC;
    a.mode = sys_arg(c, 1) as u32;
    a
});

file_syscall!(
    file_enter_unlink,
    file_exit_unlink,
    FileSyscall::Unlink,
    |c| Args::new(
        FileSyscall::Unlink,
        EventKind::FileUnlink,
        AT_FDCWD,
        sys_arg(c, 0)
    )
);

file_syscall!(
    file_enter_unlinkat,
    file_exit_unlinkat,
    FileSyscall::Unlinkat,
    |c| {
        let flags = sys_arg(c, 2) as u32;
        let kind = if flags & AT_REMOVEDIR != 0 {
            EventKind::FileRmdir
        } else {
            EventKind::FileUnlink
        };
        let mut a = Args::new(
            FileSyscall::Unlinkat,
            kind,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.flags = flags;
        a
    }
);

file_syscall!(file_enter_rmdir, file_exit_rmdir, FileSyscall::Rmdir, |c| {
    Args::new(
        FileSyscall::Rmdir,
        EventKind::FileRmdir,
        AT_FDCWD,
        sys_arg(c, 0),
    )
});

file_syscall!(
    file_enter_rename,
    file_exit_rename,
    FileSyscall::Rename,
    |c| {
        let mut a = Args::new(
            FileSyscall::Rename,
            EventKind::FileRename,
            AT_FDCWD,
            sys_arg(c, 0),
        );
        a.target = sys_arg(c, 1);
        a
    }
);

file_syscall!(
    file_enter_renameat,
    file_exit_renameat,
    FileSyscall::Renameat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Renameat,
            EventKind::FileRename,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.target_dirfd = fd(sys_arg(c, 2));
        a.target = sys_arg(c, 3);
        a
    }
);

file_syscall!(
    file_enter_renameat2,
    file_exit_renameat2,
    FileSyscall::Renameat2,
    |c| {
        let mut a = Args::new(
            FileSyscall::Renameat2,
            EventKind::FileRename,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.target_dirfd = fd(sys_arg(c, 2));
        a.target = sys_arg(c, 3);
        a.flags = sys_arg(c, 4) as u32;
        a
    }
);

file_syscall!(file_enter_mkdir, file_exit_mkdir, FileSyscall::Mkdir, |c| {
    let mut a = Args::new(
        FileSyscall::Mkdir,
        EventKind::FileMkdir,
        AT_FDCWD,
        sys_arg(c, 0),
    );
    a.mode = sys_arg(c, 1) as u32;
    a
});

file_syscall!(
    file_enter_mkdirat,
    file_exit_mkdirat,
    FileSyscall::Mkdirat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Mkdirat,
            EventKind::FileMkdir,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.mode = sys_arg(c, 2) as u32;
        a
    }
);

file_syscall!(file_enter_chmod, file_exit_chmod, FileSyscall::Chmod, |c| {
    let mut a = Args::new(
        FileSyscall::Chmod,
        EventKind::FileChmod,
        AT_FDCWD,
        sys_arg(c, 0),
    );
    a.mode = sys_arg(c, 1) as u32;
    a
});

file_syscall!(
    file_enter_fchmod,
    file_exit_fchmod,
    FileSyscall::Fchmod,
    |c| {
        let mut a = Args::new(
            FileSyscall::Fchmod,
            EventKind::FileChmod,
            fd(sys_arg(c, 0)),
            0,
        );
        a.mode = sys_arg(c, 1) as u32;
        a
    }
);

file_syscall!(
    file_enter_fchmodat,
    file_exit_fchmodat,
    FileSyscall::Fchmodat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Fchmodat,
            EventKind::FileChmod,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.mode = sys_arg(c, 2) as u32;
        a
    }
);

file_syscall!(
    file_enter_fchmodat2,
    file_exit_fchmodat2,
    FileSyscall::Fchmodat2,
    |c| {
        let mut a = Args::new(
            FileSyscall::Fchmodat2,
            EventKind::FileChmod,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.mode = sys_arg(c, 2) as u32;
        a.flags = sys_arg(c, 3) as u32;
        a
    }
);

file_syscall!(file_enter_chown, file_exit_chown, FileSyscall::Chown, |c| {
    let mut a = Args::new(
        FileSyscall::Chown,
        EventKind::FileChown,
        AT_FDCWD,
        sys_arg(c, 0),
    );
    a.uid = sys_arg(c, 1) as u32;
    a.gid = sys_arg(c, 2) as u32;
    a
});

file_syscall!(
    file_enter_lchown,
    file_exit_lchown,
    FileSyscall::Lchown,
    |c| {
        let mut a = Args::new(
            FileSyscall::Lchown,
            EventKind::FileChown,
            AT_FDCWD,
            sys_arg(c, 0),
        );
        a.uid = sys_arg(c, 1) as u32;
        a.gid = sys_arg(c, 2) as u32;
        a.flags = AT_SYMLINK_NOFOLLOW;
        a
    }
);

file_syscall!(
    file_enter_fchown,
    file_exit_fchown,
    FileSyscall::Fchown,
    |c| {
        let mut a = Args::new(
            FileSyscall::Fchown,
            EventKind::FileChown,
            fd(sys_arg(c, 0)),
            0,
        );
        a.uid = sys_arg(c, 1) as u32;
        a.gid = sys_arg(c, 2) as u32;
        a
    }
);

file_syscall!(
    file_enter_fchownat,
    file_exit_fchownat,
    FileSyscall::Fchownat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Fchownat,
            EventKind::FileChown,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.uid = sys_arg(c, 2) as u32;
        a.gid = sys_arg(c, 3) as u32;
        a.flags = sys_arg(c, 4) as u32;
        a
    }
);

// link(old, new): `path` is the new name, `target_path` the existing file it points to.
file_syscall!(file_enter_link, file_exit_link, FileSyscall::Link, |c| {
    let mut a = Args::new(
        FileSyscall::Link,
        EventKind::FileLink,
        AT_FDCWD,
        sys_arg(c, 1),
    );
    a.target = sys_arg(c, 0);
    a
});

file_syscall!(
    file_enter_linkat,
    file_exit_linkat,
    FileSyscall::Linkat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Linkat,
            EventKind::FileLink,
            fd(sys_arg(c, 2)),
            sys_arg(c, 3),
        );
        a.target_dirfd = fd(sys_arg(c, 0));
        a.target = sys_arg(c, 1);
        a.flags = sys_arg(c, 4) as u32;
        a
    }
);

// symlink(target, linkpath): `target_path` is the link's text, kept as written.
file_syscall!(
    file_enter_symlink,
    file_exit_symlink,
    FileSyscall::Symlink,
    |c| {
        let mut a = Args::new(
            FileSyscall::Symlink,
            EventKind::FileSymlink,
            AT_FDCWD,
            sys_arg(c, 1),
        );
        a.target = sys_arg(c, 0);
        a
    }
);

file_syscall!(
    file_enter_symlinkat,
    file_exit_symlinkat,
    FileSyscall::Symlinkat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Symlinkat,
            EventKind::FileSymlink,
            fd(sys_arg(c, 1)),
            sys_arg(c, 2),
        );
        a.target = sys_arg(c, 0);
        a
    }
);

file_syscall!(
    file_enter_truncate,
    file_exit_truncate,
    FileSyscall::Truncate,
    |c| {
        let mut a = Args::new(
            FileSyscall::Truncate,
            EventKind::FileTruncate,
            AT_FDCWD,
            sys_arg(c, 0),
        );
        a.length = sys_arg(c, 1) as i64;
        a
    }
);

file_syscall!(
    file_enter_ftruncate,
    file_exit_ftruncate,
    FileSyscall::Ftruncate,
    |c| {
        let mut a = Args::new(
            FileSyscall::Ftruncate,
            EventKind::FileTruncate,
            fd(sys_arg(c, 0)),
            0,
        );
        a.length = sys_arg(c, 1) as i64;
        a
    }
);
