//! Wire types of the security events beyond exec, file and net: privilege changes (set*id,
//! capset), process tampering (ptrace, process_vm_writev, signals, comm changes), kernel
//! modules and BPF loads, mounts, namespaces and memfds. One record for all of them, captured
//! at `sys_enter_*` (the arguments) and completed at `sys_exit_*` (the result, the strings read
//! from user memory, the target task found in the kernel).
//!
//! `process.dup` and `net.socket` describe a socket: they are a `NetHead` record (net.rs).
use crate::{EventHeader, COMM_LEN};

/// `Array<SecConfig>` with one entry: settings of the security hooks.
pub const MAP_SEC_CONFIG: &str = "SEC_CONFIG";

/// `SecConfig::flags`: report ptrace peeks (PEEKTEXT/PEEKDATA/PEEKUSER, GETREGS, ...) too.
pub const SEC_CFG_PTRACE_PEEKS: u32 = 1 << 0;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SecConfig {
    /// Bit `1 << n` set for each signal number `n` (1..=63) `process.signal` reports.
    pub signals: u64,
    /// `SEC_CFG_*` bits.
    pub flags: u32,
    pub _pad0: u32,
}

/// Which syscall (or kernel hook) produced a security record.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecSyscall {
    Setuid = 1,
    Setreuid = 2,
    Setresuid = 3,
    Setfsuid = 4,
    Setgid = 5,
    Setregid = 6,
    Setresgid = 7,
    Setfsgid = 8,
    Capset = 9,
    Ptrace = 10,
    ProcessVmWritev = 11,
    Kill = 12,
    Tgkill = 13,
    Tkill = 14,
    PidfdSendSignal = 15,
    /// `task:task_rename` (prctl(PR_SET_NAME), a write to /proc/<pid>/comm).
    TaskRename = 16,
    MemfdCreate = 17,
    Unshare = 18,
    Setns = 19,
    InitModule = 20,
    FinitModule = 21,
    DeleteModule = 22,
    Bpf = 23,
    Mount = 24,
    Umount2 = 25,
}

impl SecSyscall {
    pub const ALL: &'static [SecSyscall] = &[
        SecSyscall::Setuid,
        SecSyscall::Setreuid,
        SecSyscall::Setresuid,
        SecSyscall::Setfsuid,
        SecSyscall::Setgid,
        SecSyscall::Setregid,
        SecSyscall::Setresgid,
        SecSyscall::Setfsgid,
        SecSyscall::Capset,
        SecSyscall::Ptrace,
        SecSyscall::ProcessVmWritev,
        SecSyscall::Kill,
        SecSyscall::Tgkill,
        SecSyscall::Tkill,
        SecSyscall::PidfdSendSignal,
        SecSyscall::TaskRename,
        SecSyscall::MemfdCreate,
        SecSyscall::Unshare,
        SecSyscall::Setns,
        SecSyscall::InitModule,
        SecSyscall::FinitModule,
        SecSyscall::DeleteModule,
        SecSyscall::Bpf,
        SecSyscall::Mount,
        SecSyscall::Umount2,
    ];

    /// The syscall's name as users know it (`umount2`; its tracepoint is `sys_enter_umount`).
    pub const fn name(self) -> &'static str {
        match self {
            SecSyscall::Setuid => "setuid",
            SecSyscall::Setreuid => "setreuid",
            SecSyscall::Setresuid => "setresuid",
            SecSyscall::Setfsuid => "setfsuid",
            SecSyscall::Setgid => "setgid",
            SecSyscall::Setregid => "setregid",
            SecSyscall::Setresgid => "setresgid",
            SecSyscall::Setfsgid => "setfsgid",
            SecSyscall::Capset => "capset",
            SecSyscall::Ptrace => "ptrace",
            SecSyscall::ProcessVmWritev => "process_vm_writev",
            SecSyscall::Kill => "kill",
            SecSyscall::Tgkill => "tgkill",
            SecSyscall::Tkill => "tkill",
            SecSyscall::PidfdSendSignal => "pidfd_send_signal",
            SecSyscall::TaskRename => "task_rename",
            SecSyscall::MemfdCreate => "memfd_create",
            SecSyscall::Unshare => "unshare",
            SecSyscall::Setns => "setns",
            SecSyscall::InitModule => "init_module",
            SecSyscall::FinitModule => "finit_module",
            SecSyscall::DeleteModule => "delete_module",
            SecSyscall::Bpf => "bpf",
            SecSyscall::Mount => "mount",
            SecSyscall::Umount2 => "umount2",
        }
    }
}

impl TryFrom<u32> for SecSyscall {
    type Error = u32;

    fn try_from(v: u32) -> Result<Self, u32> {
        SecSyscall::ALL
            .iter()
            .copied()
            .find(|s| *s as u32 == v)
            .ok_or(v)
    }
}

/// Bytes of each of the two short string slots of [`SecEvent::data`].
pub const SEC_STR_SHORT: usize = 256;
/// Bytes of the long string slot (a path: a mount target, a module file).
pub const SEC_STR_LONG: usize = crate::PATH_MAX;
/// Size of [`SecEvent::data`]: slot 0 and 1 short, slot 2 long, in that order.
pub const SEC_DATA_LEN: usize = 2 * SEC_STR_SHORT + SEC_STR_LONG;
/// Where string slot `i` starts in [`SecEvent::data`].
pub const SEC_SLOT_AT: [usize; 3] = [0, SEC_STR_SHORT, 2 * SEC_STR_SHORT];

/// `SecEvent::sflags`: `ret` holds the syscall's return value.
pub const SEC_HAS_RET: u32 = 1 << 0;
/// `SecEvent::sflags`: the kernel found the target task: `target_*` are its ids.
pub const SEC_HAS_TARGET: u32 = 1 << 1;
/// `SecEvent::sflags`: string slot `i` was cut at its size (`SEC_STR_TRUNCATED << i`).
pub const SEC_STR_TRUNCATED: u32 = 1 << 4;
/// `SecEvent::sflags`: string slot `i` could not be read (`SEC_STR_UNREADABLE << i`).
pub const SEC_STR_UNREADABLE: u32 = 1 << 8;
/// `SecEvent::sflags`: string slot `i` holds a value (`SEC_STR_PRESENT << i`).
pub const SEC_STR_PRESENT: u32 = 1 << 12;
/// `SecEvent::sflags`: `extra` holds what the call's pointer argument pointed to.
pub const SEC_HAS_EXTRA: u32 = 1 << 16;
/// `SecEvent::sflags`: the call's pointer argument could not be read (`extra` is zero).
pub const SEC_EXTRA_UNREADABLE: u32 = 1 << 17;
/// `SecEvent::sflags`: a signal reached more than one task (a process group).
pub const SEC_TARGET_MANY: u32 = 1 << 18;
/// `SecEvent::sflags`: the caller is in a pid namespace below the host's: pids it passed are
/// in its namespace, not the host's.
pub const SEC_CALLER_PIDNS: u32 = 1 << 19;

/// A security record: the fixed part, then `data` with up to three strings at
/// [`SEC_SLOT_AT`] (`str_len[i]` bytes each, without NUL). The record ends right after the last
/// slot with `SEC_STR_PRESENT` set.
///
/// Generic over the size of `data` so the kernel keeps a call in flight in a record without
/// it ([`SecEvent`] is the full-size one).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SecRecord<const N: usize> {
    pub header: EventHeader,
    /// The syscall's return value (`-errno` on failure), with `SEC_HAS_RET`.
    pub ret: i64,
    /// The syscall's arguments as passed (their meaning depends on `syscall`).
    pub args: [u64; 6],
    /// What a pointer argument pointed to: the capset data (3 x 2 u32), the bpf attr
    /// (prog_type, insn_cnt, then the 16-byte prog_name), the comm of a rename (old, new).
    pub extra: [u64; 4],
    /// `group_leader->start_boottime` of the target, with `SEC_HAS_TARGET`.
    pub target_start_ns: u64,
    /// A [`SecSyscall`] value.
    pub syscall: u32,
    /// `SEC_*` bits.
    pub sflags: u32,
    /// Thread-group id of the target task (host pid namespace), with `SEC_HAS_TARGET`.
    pub target_pid: u32,
    /// Thread id of the target task.
    pub target_tid: u32,
    /// Bytes in each string slot; the fourth is unused.
    pub str_len: [u16; 4],
    pub data: [u8; N],
}

/// A security record with room for every string.
pub type SecEvent = SecRecord<SEC_DATA_LEN>;

/// Bytes of [`SecEvent`] before `data`.
pub const SEC_FIXED_LEN: usize = core::mem::size_of::<EventHeader>() + 120;

/// `extra` of a `process.rename`: the old and the new comm, 16 bytes each.
pub const RENAME_COMM_LEN: usize = COMM_LEN;

/// Kernel struct offsets the security hooks need besides `KernelOffsets`, from BTF. 0 in
/// `valid` when this kernel lacks one: the hooks then report no kernel-side target.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SecOffsets {
    /// `task_struct.ptraced` (list of this task's tracees) and `.ptrace_entry` (a tracee's
    /// link in it).
    pub task_ptraced: u32,
    pub task_ptrace_entry: u32,
    /// `task_struct.thread_pid`, `pid.level`, `pid.numbers`, `sizeof(struct upid)`: a task's pid
    /// as a given pid namespace level sees it.
    pub task_thread_pid: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    /// Byte and bit of `task_struct.in_execve`: a rename during exec is not a `process.rename`.
    pub task_in_execve_byte: u32,
    pub task_in_execve_mask: u32,
    /// `task_struct.comm`.
    pub task_comm: u32,
    pub valid: u32,
}

impl SecOffsets {
    pub const fn zeroed() -> Self {
        SecOffsets {
            task_ptraced: 0,
            task_ptrace_entry: 0,
            task_thread_pid: 0,
            pid_level: 0,
            pid_numbers: 0,
            upid_size: 0,
            task_in_execve_byte: 0,
            task_in_execve_mask: 0,
            task_comm: 0,
            valid: 0,
        }
    }
}

// Layout checks, relative to the header (which another branch may grow).
const _: () = assert!(core::mem::size_of::<SecEvent>() == SEC_FIXED_LEN + SEC_DATA_LEN);
const _: () = assert!(core::mem::size_of::<SecRecord<0>>() == SEC_FIXED_LEN);
const _: () = assert!(SEC_FIXED_LEN.is_multiple_of(8));
const _: () = assert!(core::mem::size_of::<SecConfig>() == 16);
const _: () = assert!(core::mem::size_of::<SecOffsets>() == 40);
