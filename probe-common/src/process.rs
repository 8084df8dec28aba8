//! Wire types of the `process.*` events: exec (with argv), fork and exit, from the `sched`
//! tracepoints.
use crate::{EventHeader, PATH_MAX};

/// Bytes of argv captured at exec (NUL-separated strings, as laid out by the kernel).
pub const ARGS_MAX: usize = 8192;
/// Largest number of argv entries reported; more set `FLAG_ARGS_TRUNCATED`.
pub const ARGC_MAX: usize = 64;

/// `process.exec`. The record is variable length: `data` holds the filename, then the
/// interpreter path, then argv (NUL-separated), and the record ends right after argv.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Bytes of filename (`bprm->filename`, as passed to exec) in `data`, without NUL.
    pub filename_len: u32,
    /// Bytes of `bprm->interp` after the filename: the interpreter of a script, else the
    /// filename again.
    pub interp_len: u32,
    /// Bytes of argv in `data` after the filename, NUL-separated, as the kernel laid them out.
    pub args_len: u32,
    /// `mm->arg_end - mm->arg_start`: the full argv size, to tell how much was cut.
    pub args_total: u32,
    pub data: [u8; EXEC_DATA_LEN],
}

/// Size of [`ExecEvent::data`]: two paths plus the argv budget, so the verifier can see every
/// copy in bounds.
pub const EXEC_DATA_LEN: usize = 2 * PATH_MAX + ARGS_MAX;
/// Bytes of [`ExecEvent`] before `data`.
pub const EXEC_FIXED_LEN: usize = core::mem::size_of::<EventHeader>() + 16;

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
}

// Layout checks: the two sides must agree byte for byte.
const _: () = assert!(core::mem::size_of::<ForkEvent>() == 96);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 88);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == EXEC_FIXED_LEN + EXEC_DATA_LEN);
