//! Wire types of the `process.*` events: exec (with argv, exe and cwd), fork, exit and failed
//! execs, from the `sched` and `syscalls` tracepoints; the task offsets they read.
use crate::{EventHeader, PATH_MAX};

/// Bytes of argv captured at exec (NUL-separated strings, as laid out by the kernel).
pub const ARGS_MAX: usize = 8192;
/// Largest number of argv entries reported; more set `FLAG_ARGS_TRUNCATED`.
pub const ARGC_MAX: usize = 64;

/// `ExecEvent::xflags`: `exe` could not be walked to the root (too deep or too long): it holds
/// the last part of the path, or nothing.
pub const EXEC_EXE_TRUNCATED: u32 = 1 << 0;
/// `ExecEvent::xflags`: the executed file has no path in any mount (a memfd or another
/// internal file): `exe` holds the dentry's own name (`memfd:NAME`).
pub const EXEC_EXE_PSEUDO: u32 = 1 << 1;
/// `ExecEvent::xflags`: `cwd` was cut (too deep or too long); it holds the last part.
pub const EXEC_CWD_TRUNCATED: u32 = 1 << 2;
/// `ExecEvent::xflags`: the cwd's directory was removed (its inode has no link left).
pub const EXEC_CWD_DELETED: u32 = 1 << 3;
/// `ExecEvent::xflags`: the executed file has no link left (deleted, or a memfd).
pub const EXEC_NLINK0: u32 = 1 << 4;
/// `ExecEvent::xflags`: `dev`, `ino`, `size` and `ctime_*` describe the executed file.
pub const EXEC_HAS_INODE: u32 = 1 << 5;
/// `ExecEvent::xflags`: `ctime_*` is known (the kernel's BTF names the inode's ctime).
pub const EXEC_HAS_CTIME: u32 = 1 << 6;
/// `ExecEvent::xflags`: no cwd (the walk failed outright).
pub const EXEC_CWD_UNKNOWN: u32 = 1 << 7;

/// `process.exec`. The record is variable length: `data` holds the filename, the interpreter
/// path, the executed file's resolved path (`exe`), the cwd, then argv (NUL-separated), and
/// the record ends right after argv.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Bytes of filename (`bprm->filename`, as passed to exec) in `data`, without NUL.
    pub filename_len: u32,
    /// Bytes of `bprm->interp` after the filename: the interpreter of a script, else the
    /// filename again.
    pub interp_len: u32,
    /// Bytes of argv in `data` after the paths, NUL-separated, as the kernel laid them out.
    pub args_len: u32,
    /// `mm->arg_end - mm->arg_start`: the full argv size, to tell how much was cut.
    pub args_total: u32,
    /// Bytes of the executed file's path (walked from `bprm->file`, symlinks resolved).
    pub exe_len: u32,
    /// Bytes of the cwd (walked from `task->fs->pwd`).
    pub cwd_len: u32,
    /// `EXEC_*` bits.
    pub xflags: u32,
    /// The executed file's device (kernel `dev_t`, `major << 20 | minor`).
    pub dev: u32,
    pub ino: u64,
    pub size: u64,
    pub ctime_sec: i64,
    pub ctime_nsec: u32,
    pub _pad0: u32,
    pub data: [u8; EXEC_DATA_LEN],
}

/// Size of [`ExecEvent::data`]: four paths plus the argv budget, so the verifier can see every
/// copy in bounds.
pub const EXEC_DATA_LEN: usize = 4 * PATH_MAX + ARGS_MAX;
/// Bytes of [`ExecEvent`] before `data`.
pub const EXEC_FIXED_LEN: usize = core::mem::size_of::<EventHeader>() + 64;

/// `process.fork`: the header is the parent (the task that called fork/clone).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub child_pid: u32,
    pub child_tid: u32,
    pub child_start_ns: u64,
}

/// `process.exit`: the header is the last exiting thread of the process.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// `task_struct.exit_code` (wait status encoding: `code << 8 | core << 7 | signal`).
    pub exit_code: u32,
    pub _pad0: u32,
    /// User and system time (ns) of the whole process: the dead threads' sums in the signal
    /// struct plus this last thread's own (tick-sampled, as the kernel keeps them).
    pub utime_ns: u64,
    pub stime_ns: u64,
    /// Precise CPU time of the same threads (`sum_exec_runtime`), which userspace splits in
    /// the user/system ratio the way `/proc/<pid>/stat` does.
    pub runtime_ns: u64,
}

/// `ExecFailedEvent::fflags`: the filename did not fit in `PATH_MAX` bytes.
pub const EXECF_FILENAME_TRUNCATED: u32 = 1 << 0;
/// `ExecFailedEvent::fflags`: the filename could not be read from user memory.
pub const EXECF_FILENAME_UNREADABLE: u32 = 1 << 1;

/// `process.exec_failed`: an execve/execveat that returned an error. The header is the caller
/// (its old image, which stays). Variable length: `data` holds the filename then argv
/// (NUL-separated), and the record ends right after argv.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecFailedEvent {
    pub header: EventHeader,
    /// The syscall's return value (`-errno`).
    pub ret: i64,
    pub filename_len: u32,
    pub args_len: u32,
    /// execveat's dirfd (`AT_FDCWD` for execve).
    pub dirfd: i32,
    /// execveat's `AT_*` flags.
    pub at_flags: u32,
    /// `EXECF_*` bits; argv limits set `FLAG_ARGS_TRUNCATED` in the header as for exec.
    pub fflags: u32,
    pub _pad0: u32,
    pub data: [u8; EXECF_DATA_LEN],
}

/// Size of [`ExecFailedEvent::data`].
pub const EXECF_DATA_LEN: usize = PATH_MAX + ARGS_MAX;
/// Bytes of [`ExecFailedEvent`] before `data`.
pub const EXECF_FIXED_LEN: usize = core::mem::size_of::<EventHeader>() + 32;

/// Offsets of what the header's identity, the exec record's exe/cwd/inode and the exit's CPU
/// times read, from BTF; set by userspace before load. `u32::MAX`: unknown, not read.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskOffsets {
    pub task_self_exec_id: u32,
    pub task_cred: u32,
    pub task_nsproxy: u32,
    pub task_loginuid: u32,
    pub task_thread_pid: u32,
    pub task_utime: u32,
    pub task_stime: u32,
    /// `task_struct.se.sum_exec_runtime`.
    pub task_runtime: u32,
    pub cred_euid: u32,
    pub cred_egid: u32,
    pub cred_cap_effective: u32,
    pub cred_cap_permitted: u32,
    pub cred_user_ns: u32,
    pub nsproxy_uts: u32,
    pub nsproxy_ipc: u32,
    pub nsproxy_mnt: u32,
    pub nsproxy_net: u32,
    pub nsproxy_cgroup: u32,
    /// `ns.inum` inside each namespace struct (offset of `ns` plus that of `inum`), in
    /// `NS_*` order.
    pub ns_inum: [u32; crate::NS_COUNT],
    pub pid_level: u32,
    pub pid_numbers: u32,
    /// `sizeof(struct upid)` and `upid.ns`.
    pub upid_size: u32,
    pub upid_ns: u32,
    pub signal_tty: u32,
    pub signal_utime: u32,
    pub signal_stime: u32,
    pub signal_runtime: u32,
    pub tty_index: u32,
    pub tty_driver: u32,
    pub driver_major: u32,
    pub driver_minor_start: u32,
    pub bprm_file: u32,
    pub dentry_inode: u32,
    pub inode_nlink: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub inode_size: u32,
    pub inode_ctime_sec: u32,
    pub inode_ctime_nsec: u32,
    pub sb_dev: u32,
    /// `task_struct.comm`, read in place by the header (two loads, no helper).
    pub task_comm: u32,
}

impl TaskOffsets {
    pub const fn unknown() -> Self {
        const U: u32 = u32::MAX;
        TaskOffsets {
            task_self_exec_id: U,
            task_cred: U,
            task_nsproxy: U,
            task_loginuid: U,
            task_thread_pid: U,
            task_utime: U,
            task_stime: U,
            task_runtime: U,
            cred_euid: U,
            cred_egid: U,
            cred_cap_effective: U,
            cred_cap_permitted: U,
            cred_user_ns: U,
            nsproxy_uts: U,
            nsproxy_ipc: U,
            nsproxy_mnt: U,
            nsproxy_net: U,
            nsproxy_cgroup: U,
            ns_inum: [U; crate::NS_COUNT],
            pid_level: U,
            pid_numbers: U,
            upid_size: U,
            upid_ns: U,
            signal_tty: U,
            signal_utime: U,
            signal_stime: U,
            signal_runtime: U,
            tty_index: U,
            tty_driver: U,
            driver_major: U,
            driver_minor_start: U,
            bprm_file: U,
            dentry_inode: U,
            inode_nlink: U,
            inode_ino: U,
            inode_sb: U,
            inode_size: U,
            inode_ctime_sec: U,
            inode_ctime_nsec: U,
            sb_dev: U,
            task_comm: U,
        }
    }
}

// Layout checks: the two sides must agree byte for byte.
const _: () =
    assert!(core::mem::size_of::<ForkEvent>() == core::mem::size_of::<EventHeader>() + 16);
const _: () =
    assert!(core::mem::size_of::<ExitEvent>() == core::mem::size_of::<EventHeader>() + 32);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == EXEC_FIXED_LEN + EXEC_DATA_LEN);
const _: () = assert!(core::mem::size_of::<ExecFailedEvent>() == EXECF_FIXED_LEN + EXECF_DATA_LEN);
const _: () = assert!(core::mem::size_of::<TaskOffsets>() == 4 * (40 + crate::NS_COUNT));
