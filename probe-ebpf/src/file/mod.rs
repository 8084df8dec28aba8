//! File activity: `syscalls:sys_enter_*` copies the path bytes from user memory (gone or
//! changed later) into a per-thread in-flight record; `sys_exit_*` of the same thread adds the
//! result and emits it, so a failed call is reported too.
//!
//! Volume control happens here, before any copy where possible: the kind's enabled bit (and the
//! common filters) first, read-only opens unless asked for, then path prefixes from an LPM trie
//! (only for clean absolute paths; the rest is filtered in userspace after resolution).
//!
//! `record` holds the enter and exit halves every hook shares; `open`, `names` and `attrs` are
//! the hooks of each syscall group; `prefix` and `walk` are the path checks and the directory
//! walk. This module holds what they all share: the pending record and the syscall flags.
use aya_ebpf::{
    macros::{btf_map, map},
    maps::{Array, PerCpuArray},
};
use probe_common::{FileConfig, FileEvent, FileRecord, FILE_FIXED_LEN};

use crate::common::IdCache;
use crate::maps::TaskStorage;

mod attrs;
mod names;
mod open;
mod prefix;
pub(crate) mod record;
mod times;
// Also for the security hooks: user strings and fd paths read the way file events read them.
pub(crate) mod walk;

/// File-specific settings written by userspace.
#[map]
static FILE_CONFIG: Array<FileConfig> = Array::with_max_entries(1, 0);

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
