//! Wire contract between the eBPF programs and userspace.
//!
//! Every record in the ring buffer starts with an [`EventHeader`]; its `kind` (a `u32`, decoded
//! with `TryFrom`) says which payload follows. All types are `#[repr(C)]` with explicit padding
//! fields so both sides agree on every byte, and carry no `bool` (any byte pattern is valid).
//!
//! This file holds what every family shares (kinds, header, kernel offsets, run-time config and
//! filters); each family's payloads are in the module of its name, as on the eBPF side
//! (`process`, `file`, `net`, `flow`), and re-exported here.
#![no_std]

/// Length of `task_struct.comm`.
pub const COMM_LEN: usize = 16;
/// Longest path captured whole (Linux `PATH_MAX`, including the NUL).
pub const PATH_MAX: usize = 4096;

/// Name of the ring buffer map that carries every event.
pub const MAP_EVENTS: &str = "EVENTS";
/// Per-CPU `u64` counters of failed ring buffer reserves/outputs, indexed by event kind.
pub const MAP_LOSSES: &str = "LOSSES";
/// `Array<ProbeConfig>` with one entry: what userspace may change while running.
pub const MAP_CONFIG: &str = "CONFIG";
/// Number of slots in the loss map (event kinds are below this).
pub const KIND_SLOTS: u32 = 64;

/// Event kinds produced by the kernel side. Userspace-only kinds (`probe.*`) live in
/// `probe-user`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    ProcessExec = 1,
    ProcessFork = 2,
    ProcessExit = 3,
    ProcessExecFailed = 4,
    // Security events (issue 17): privilege changes and process tampering.
    ProcessSetuid = 5,
    ProcessSetgid = 6,
    ProcessCapset = 7,
    ProcessPtrace = 8,
    ProcessVmWrite = 9,
    FileOpen = 10,
    FileCreate = 11,
    FileUnlink = 12,
    FileRename = 13,
    FileMkdir = 14,
    FileRmdir = 15,
    FileChmod = 16,
    FileChown = 17,
    FileLink = 18,
    FileSymlink = 19,
    FileTruncate = 20,
    FileMount = 21,
    FileUmount = 22,
    FileUtime = 23,
    NetConnect = 30,
    NetAccept = 31,
    NetBind = 32,
    NetListen = 33,
    NetClose = 34,
    NetDns = 35,
    NetState = 36,
    NetSend = 37,
    NetSocket = 38,
    FlowUpdate = 40,
    FlowEnd = 41,
    FlowNew = 42,
    ProcessSignal = 43,
    ProcessRename = 44,
    ProcessMemfd = 45,
    ProcessUnshare = 46,
    ProcessSetns = 47,
    ProcessDup = 48,
    KernelModuleLoad = 49,
    KernelModuleUnload = 50,
    BpfLoad = 51,
}

impl EventKind {
    /// Every kind, grouped by category (the order `tprobe events` lists them in).
    pub const ALL: &'static [EventKind] = &[
        EventKind::ProcessExec,
        EventKind::ProcessFork,
        EventKind::ProcessExit,
        EventKind::ProcessExecFailed,
        EventKind::ProcessSetuid,
        EventKind::ProcessSetgid,
        EventKind::ProcessCapset,
        EventKind::ProcessPtrace,
        EventKind::ProcessVmWrite,
        EventKind::ProcessSignal,
        EventKind::ProcessRename,
        EventKind::ProcessMemfd,
        EventKind::ProcessUnshare,
        EventKind::ProcessSetns,
        EventKind::ProcessDup,
        EventKind::FileOpen,
        EventKind::FileCreate,
        EventKind::FileUnlink,
        EventKind::FileRename,
        EventKind::FileMkdir,
        EventKind::FileRmdir,
        EventKind::FileChmod,
        EventKind::FileChown,
        EventKind::FileLink,
        EventKind::FileSymlink,
        EventKind::FileTruncate,
        EventKind::FileMount,
        EventKind::FileUmount,
        EventKind::FileUtime,
        EventKind::NetConnect,
        EventKind::NetAccept,
        EventKind::NetBind,
        EventKind::NetListen,
        EventKind::NetClose,
        EventKind::NetDns,
        EventKind::NetState,
        EventKind::NetSend,
        EventKind::NetSocket,
        EventKind::FlowUpdate,
        EventKind::FlowEnd,
        EventKind::FlowNew,
        EventKind::KernelModuleLoad,
        EventKind::KernelModuleUnload,
        EventKind::BpfLoad,
    ];

    /// `<category>.<action>` as it appears in the JSON `kind` field.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::ProcessExec => "process.exec",
            EventKind::ProcessFork => "process.fork",
            EventKind::ProcessExit => "process.exit",
            EventKind::ProcessExecFailed => "process.exec_failed",
            EventKind::FileOpen => "file.open",
            EventKind::FileCreate => "file.create",
            EventKind::FileUnlink => "file.unlink",
            EventKind::FileRename => "file.rename",
            EventKind::FileMkdir => "file.mkdir",
            EventKind::FileRmdir => "file.rmdir",
            EventKind::FileChmod => "file.chmod",
            EventKind::FileChown => "file.chown",
            EventKind::FileLink => "file.link",
            EventKind::FileSymlink => "file.symlink",
            EventKind::FileTruncate => "file.truncate",
            EventKind::NetConnect => "net.connect",
            EventKind::NetAccept => "net.accept",
            EventKind::NetBind => "net.bind",
            EventKind::NetListen => "net.listen",
            EventKind::NetClose => "net.close",
            EventKind::NetDns => "net.dns",
            EventKind::NetState => "net.state",
            EventKind::NetSend => "net.send",
            EventKind::FlowUpdate => "flow.update",
            EventKind::FlowEnd => "flow.end",
            EventKind::FlowNew => "flow.new",
            EventKind::ProcessSetuid => "process.setuid",
            EventKind::ProcessSetgid => "process.setgid",
            EventKind::ProcessCapset => "process.capset",
            EventKind::ProcessPtrace => "process.ptrace",
            EventKind::ProcessVmWrite => "process.vm_write",
            EventKind::ProcessSignal => "process.signal",
            EventKind::ProcessRename => "process.rename",
            EventKind::ProcessMemfd => "process.memfd",
            EventKind::ProcessUnshare => "process.unshare",
            EventKind::ProcessSetns => "process.setns",
            EventKind::ProcessDup => "process.dup",
            EventKind::FileMount => "file.mount",
            EventKind::FileUmount => "file.umount",
            EventKind::FileUtime => "file.utime",
            EventKind::NetSocket => "net.socket",
            EventKind::KernelModuleLoad => "kernel.module_load",
            EventKind::KernelModuleUnload => "kernel.module_unload",
            EventKind::BpfLoad => "bpf.load",
        }
    }

    /// Bit of this kind in [`ProbeConfig::enabled`].
    pub const fn bit(self) -> u64 {
        1u64 << (self as u32)
    }
}

/// The raw value was not a known kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownKind(pub u32);

impl TryFrom<u32> for EventKind {
    type Error = UnknownKind;

    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Ok(match v {
            1 => EventKind::ProcessExec,
            2 => EventKind::ProcessFork,
            3 => EventKind::ProcessExit,
            4 => EventKind::ProcessExecFailed,
            10 => EventKind::FileOpen,
            11 => EventKind::FileCreate,
            12 => EventKind::FileUnlink,
            13 => EventKind::FileRename,
            14 => EventKind::FileMkdir,
            15 => EventKind::FileRmdir,
            16 => EventKind::FileChmod,
            17 => EventKind::FileChown,
            18 => EventKind::FileLink,
            19 => EventKind::FileSymlink,
            20 => EventKind::FileTruncate,
            30 => EventKind::NetConnect,
            31 => EventKind::NetAccept,
            32 => EventKind::NetBind,
            33 => EventKind::NetListen,
            34 => EventKind::NetClose,
            35 => EventKind::NetDns,
            36 => EventKind::NetState,
            37 => EventKind::NetSend,
            40 => EventKind::FlowUpdate,
            41 => EventKind::FlowEnd,
            42 => EventKind::FlowNew,
            5 => EventKind::ProcessSetuid,
            6 => EventKind::ProcessSetgid,
            7 => EventKind::ProcessCapset,
            8 => EventKind::ProcessPtrace,
            9 => EventKind::ProcessVmWrite,
            21 => EventKind::FileMount,
            22 => EventKind::FileUmount,
            23 => EventKind::FileUtime,
            38 => EventKind::NetSocket,
            43 => EventKind::ProcessSignal,
            44 => EventKind::ProcessRename,
            45 => EventKind::ProcessMemfd,
            46 => EventKind::ProcessUnshare,
            47 => EventKind::ProcessSetns,
            48 => EventKind::ProcessDup,
            49 => EventKind::KernelModuleLoad,
            50 => EventKind::KernelModuleUnload,
            51 => EventKind::BpfLoad,
            other => return Err(UnknownKind(other)),
        })
    }
}

/// `EventHeader::flags`: argv was cut at `ARGS_MAX` bytes or `ARGC_MAX` entries.
pub const FLAG_ARGS_TRUNCATED: u32 = 1 << 0;
/// `EventHeader::flags`: a path was longer than the capture buffer.
pub const FLAG_PATH_TRUNCATED: u32 = 1 << 1;
/// `EventHeader::flags`: argv could not be read (unmapped memory); `args` is empty.
pub const FLAG_ARGS_UNREADABLE: u32 = 1 << 2;
/// `EventHeader::flags`: the acting task is a thread, not a thread-group leader.
pub const FLAG_THREAD: u32 = 1 << 3;
/// `EventHeader::flags`: the event has no process context (e.g. a TCP state change of a socket
/// no process was seen to own yet); the header's task fields are zero.
pub const FLAG_NO_PROCESS: u32 = 1 << 16;

/// Number of namespaces in [`HeaderIdentity::ns`], in the order of the `NS_*` indices.
pub const NS_COUNT: usize = 7;
pub const NS_PID: usize = 0;
pub const NS_MNT: usize = 1;
pub const NS_NET: usize = 2;
pub const NS_USER: usize = 3;
pub const NS_UTS: usize = 4;
pub const NS_IPC: usize = 5;
pub const NS_CGROUP: usize = 6;

/// Who the acting task is, read in the kernel at the event (64 bytes, no implicit padding).
/// Cached per thread and refreshed when the task's `cred` or `nsproxy` pointer or its exec id
/// changes (both structs are replaced, never changed in place).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderIdentity {
    pub euid: u32,
    pub egid: u32,
    /// `task->loginuid` (`u32::MAX`: unset).
    pub auid: u32,
    /// Controlling terminal as a kernel `dev_t` (`major << 20 | minor`); 0: none.
    pub tty: u32,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    /// Namespace inode numbers (`NS_*` order); 0 where unknown.
    pub ns: [u32; NS_COUNT],
    pub _pad0: u32,
}

impl HeaderIdentity {
    pub const fn zeroed() -> Self {
        HeaderIdentity {
            euid: 0,
            egid: 0,
            auid: u32::MAX,
            tty: 0,
            cap_effective: 0,
            cap_permitted: 0,
            ns: [0; NS_COUNT],
            _pad0: 0,
        }
    }
}

/// Common header of every ring buffer record (144 bytes, no implicit padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] value.
    pub kind: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// `bpf_ktime_get_boot_ns()` when the event happened.
    pub ts_ns: u64,
    /// Thread-group id (what users call the pid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// `real_parent->tgid`.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Low 32 bits of `task->self_exec_id`, which the kernel bumps at every exec: with `pid`
    /// and `start_ns` it names the image (exe, argv, cwd) that acted.
    pub exec_id: u32,
    /// cgroup v2 id (inode of the cgroup directory).
    pub cgroup_id: u64,
    /// `group_leader->start_boottime`: with `pid` it names one process instance.
    pub start_ns: u64,
    /// `real_parent->group_leader->start_boottime`.
    pub parent_start_ns: u64,
    pub comm: [u8; COMM_LEN],
    pub id: HeaderIdentity,
}

// The probe stores `comm` as two aligned u64 (BPF has no unaligned stores).
const _: () = assert!(
    core::mem::offset_of!(EventHeader, comm).is_multiple_of(8)
        && core::mem::align_of::<EventHeader>() == 8
);

impl EventHeader {
    pub const fn zeroed() -> Self {
        EventHeader {
            kind: 0,
            flags: 0,
            ts_ns: 0,
            pid: 0,
            tid: 0,
            ppid: 0,
            uid: 0,
            gid: 0,
            exec_id: 0,
            cgroup_id: 0,
            start_ns: 0,
            parent_start_ns: 0,
            comm: [0; COMM_LEN],
            id: HeaderIdentity::zeroed(),
        }
    }
}

/// Kernel struct field offsets that tracepoints do not give, computed by userspace from BTF and
/// written into the programs' read-only data before load. `u32::MAX`/0 means unknown.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_start_boottime: u32,
    pub task_exit_code: u32,
    pub task_signal: u32,
    pub task_mm: u32,
    pub signal_live: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub bprm_filename: u32,
    pub bprm_interp: u32,
    // Network: fd -> file -> socket -> sock, and the sock's addresses.
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_f_inode: u32,
    pub file_private_data: u32,
    pub inode_i_mode: u32,
    pub socket_type: u32,
    pub socket_sk: u32,
    pub sk_family: u32,
    pub sk_protocol: u32,
    pub sk_num: u32,
    pub sk_dport: u32,
    pub sk_rcv_saddr: u32,
    pub sk_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_v6_daddr: u32,
    pub unix_addr: u32,
    pub unix_address_len: u32,
    pub unix_address_name: u32,
    /// `inet_sock.inet_sport`: the local port after `skc_num` was cleared at close.
    pub inet_sport: u32,
    pub _pad0: u32,
}

impl KernelOffsets {
    pub const fn zeroed() -> Self {
        KernelOffsets {
            task_pid: 0,
            task_tgid: 0,
            task_real_parent: 0,
            task_group_leader: 0,
            task_start_boottime: 0,
            task_exit_code: 0,
            task_signal: 0,
            task_mm: 0,
            signal_live: 0,
            mm_arg_start: 0,
            mm_arg_end: 0,
            bprm_filename: 0,
            bprm_interp: 0,
            task_files: 0,
            files_fdt: 0,
            fdt_max_fds: 0,
            fdt_fd: 0,
            file_f_inode: 0,
            file_private_data: 0,
            inode_i_mode: 0,
            socket_type: 0,
            socket_sk: 0,
            sk_family: 0,
            sk_protocol: 0,
            sk_num: 0,
            sk_dport: 0,
            sk_rcv_saddr: 0,
            sk_daddr: 0,
            sk_v6_rcv_saddr: 0,
            sk_v6_daddr: 0,
            unix_addr: 0,
            unix_address_len: 0,
            unix_address_name: 0,
            inet_sport: 0,
            _pad0: 0,
        }
    }
}

/// `ProbeConfig::flags`: report threads in `process.fork` (and thread exits).
pub const CFG_THREADS: u64 = 1 << 0;

/// `ProbeConfig::flags`: report only tasks whose thread-group id is in [`MAP_FILTER_PIDS`].
pub const CFG_FILTER_PID: u64 = 1 << 1;
/// `ProbeConfig::flags`: report only tasks in a cgroup (or below one) of [`MAP_FILTER_CGROUPS`].
pub const CFG_FILTER_CGROUP: u64 = 1 << 2;
/// `ProbeConfig::flags`: report only tasks whose uid is in [`MAP_FILTER_UIDS`].
pub const CFG_FILTER_UID: u64 = 1 << 3;
/// `ProbeConfig::flags`: with `CFG_FILTER_PID`, the kernel adds children of matching
/// processes to the pid set at fork time (`--follow`).
pub const CFG_FOLLOW: u64 = 1 << 4;
/// `ProbeConfig::flags`: which of the two filter generations is live (clear: slot 0, set:
/// slot 1). A reload writes the other slot, then flips this bit in one map update, so each
/// event sees either the old or the new filter sets, never a half-written mix.
pub const CFG_FILTER_SLOT1: u64 = 1 << 5;
/// Every kernel-side filter flag: when none is set, `enabled()` does no map lookup.
pub const CFG_FILTERS: u64 = CFG_FILTER_PID | CFG_FILTER_CGROUP | CFG_FILTER_UID;

/// `HashMap<u32 tgid, u8>`: pid filter set; the value holds `FILTER_SLOT*` bits.
pub const MAP_FILTER_PIDS: &str = "FILTER_PIDS";
/// `HashMap<u64 cgroup id, u8>`: cgroup filter set (a cgroup matches its whole subtree).
pub const MAP_FILTER_CGROUPS: &str = "FILTER_CGROUPS";
/// `HashMap<u32 uid, u8>`: uid filter set.
pub const MAP_FILTER_UIDS: &str = "FILTER_UIDS";
/// Filter map value bit: member of generation 0.
pub const FILTER_SLOT0: u8 = 1 << 0;
/// Filter map value bit: member of generation 1.
pub const FILTER_SLOT1: u8 = 1 << 1;
/// Filter map value bit: added by the kernel under `--follow` (a descendant, removed at exit).
pub const FILTER_FOLLOWED: u8 = 1 << 7;
/// Capacity of the pid filter set (roots plus followed descendants).
pub const FILTER_PIDS_MAX: u32 = 65_536;
pub const FILTER_CGROUPS_MAX: u32 = 4096;
pub const FILTER_UIDS_MAX: u32 = 1024;
/// Slot of [`MAP_LOSSES`] (above every kind id) counting `--follow` descendants that did not
/// fit in the pid set: their events are filtered out, so this is a loss.
pub const LOSS_SLOT_FOLLOW: u32 = KIND_SLOTS - 1;
/// Deepest cgroup level checked against the cgroup set.
pub const CGROUP_DEPTH_MAX: u32 = 16;

/// The value bit of the live generation for these `ProbeConfig::flags`.
pub const fn filter_slot_bit(flags: u64) -> u8 {
    if flags & CFG_FILTER_SLOT1 != 0 {
        FILTER_SLOT1
    } else {
        FILTER_SLOT0
    }
}

/// Run-time settings in [`MAP_CONFIG`]; userspace may rewrite them while running.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Bit `1 << kind` set for each enabled [`EventKind`].
    pub enabled: u64,
    /// `CFG_*` bits.
    pub flags: u64,
}

mod file;
mod flow;
mod net;
mod process;
mod respond;
mod security;
pub use file::*;
pub use flow::*;
pub use net::*;
pub use process::*;
pub use respond::*;
pub use security::*;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::ProbeConfig {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowStats {}
    unsafe impl aya::Pod for super::FileConfig {}
    unsafe impl aya::Pod for super::FileOffsets {}
    unsafe impl aya::Pod for super::TaskOffsets {}
    unsafe impl aya::Pod for super::SecConfig {}
    unsafe impl aya::Pod for super::SecOffsets {}
    unsafe impl aya::Pod for super::DenyKey {}
    unsafe impl aya::Pod for super::IsolateAllow {}
}

// Layout checks: the two sides must agree byte for byte.
const _: () = assert!(core::mem::size_of::<HeaderIdentity>() == 64);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 144);
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 140);
