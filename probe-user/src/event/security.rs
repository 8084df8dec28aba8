//! The decoded security record every stage reads: privilege changes, process tampering,
//! kernel modules and BPF loads, mounts, namespaces, memfds, and sockets in odd places.
use std::sync::Arc;

use probe_common::SecSyscall;

use super::{net::NetBody, process::ProcessInfo};

/// A task the kernel named as the call's target (host pid namespace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetTask {
    pub pid: u32,
    pub tid: u32,
    pub start_ns: u64,
}

/// One string argument read from the caller's memory (or a path the kernel resolved).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StrArg {
    /// `None` when it could not be read (an unmapped address).
    pub value: Option<Vec<u8>>,
    pub truncated: bool,
    pub unreadable: bool,
}

/// A decoded security event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecRecord {
    /// The syscall; `None` for the socket kinds (`process.dup`, `net.socket`).
    pub syscall: Option<SecSyscall>,
    /// Syscall return value (`-errno` on failure).
    pub ret: Option<i64>,
    /// The arguments as passed.
    pub args: [u64; 6],
    /// What a pointer argument pointed to (capset data, the bpf attr, renamed comms);
    /// `None` when it was not read or could not be.
    pub extra: Option<[u64; 4]>,
    pub extra_unreadable: bool,
    /// String slots: 0 and 1 short, 2 a path.
    pub strings: [StrArg; 3],
    pub target: Option<TargetTask>,
    /// A signal reached several processes (a process group); `target` is the first.
    pub target_many: bool,
    /// The caller is in a pid namespace below the host's: pids it passed are its own.
    pub caller_pidns: bool,
    /// The target process, filled in by enrichment.
    pub target_info: Option<Arc<ProcessInfo>>,
    /// The socket of `process.dup` and `net.socket`.
    pub net: Option<NetBody>,
}
