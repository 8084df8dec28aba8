//! Wire types of the response actions: the exec deny list that `sched_process_exec` checks,
//! and the allow list of the TC isolate program.

/// `HashMap<DenyKey, u32>`: executables whose exec is killed in the kernel. The value is the
/// index of the `--deny-exec` entry (userspace names it in the `response.kill` event).
pub const MAP_DENY_EXEC: &str = "DENY_EXEC";
/// Most entries of the deny map (paths plus learned hashes).
pub const DENY_EXEC_MAX: u32 = 4096;

/// `ExecEvent::xflags`: the executed file is in [`MAP_DENY_EXEC`] and the kernel sent the
/// task SIGKILL before the new image ran.
pub const EXEC_DENIED: u32 = 1 << 8;
/// `ExecEvent::xflags`: the file is denied but `bpf_send_signal` failed (the task runs).
pub const EXEC_DENY_FAILED: u32 = 1 << 9;

/// A file as the kernel names it: the superblock's `s_dev` (kernel encoding,
/// `major << 20 | minor`) and the inode number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DenyKey {
    pub dev: u32,
    pub _pad0: u32,
    pub ino: u64,
}

/// `HashMap<u32, u32>`: interface indexes under isolation (the TC program passes packets on
/// any other interface it is still attached to).
pub const MAP_ISOLATE_IFACES: &str = "ISOLATE_IFACES";
/// `Array<IsolateAllow>`: the allow list, `ISOLATE_ALLOW_MAX` entries, unused ones zeroed.
pub const MAP_ISOLATE_ALLOW: &str = "ISOLATE_ALLOW";
pub const ISOLATE_ALLOW_MAX: u32 = 16;
pub const ISOLATE_IFACES_MAX: u32 = 256;

/// One allowed peer: IPv4 network (network byte order) with a prefix length, and a port
/// (0: any port). `used` is 1 for a live entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IsolateAllow {
    pub addr: u32,
    pub prefix: u32,
    pub port: u16,
    pub _pad0: u16,
    pub used: u32,
}

const _: () = assert!(core::mem::size_of::<DenyKey>() == 16);
const _: () = assert!(core::mem::size_of::<IsolateAllow>() == 16);
