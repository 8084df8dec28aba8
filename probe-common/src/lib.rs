//! Wire contract between the eBPF programs and userspace.
//!
//! Every record in the ring buffer starts with an [`EventHeader`]; its `kind` (a `u32`, decoded
//! with `TryFrom`) says which payload follows. All types are `#[repr(C)]` with explicit padding
//! fields so both sides agree on every byte, and carry no `bool` (any byte pattern is valid).
#![no_std]

/// Length of `task_struct.comm`.
pub const COMM_LEN: usize = 16;
/// Longest path captured whole (Linux `PATH_MAX`, including the NUL).
pub const PATH_MAX: usize = 4096;
/// Bytes of argv captured at exec (NUL-separated strings, as laid out by the kernel).
pub const ARGS_MAX: usize = 8192;
/// Largest number of argv entries reported; more set `FLAG_ARGS_TRUNCATED`.
pub const ARGC_MAX: usize = 64;

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
    NetConnect = 30,
    NetAccept = 31,
    NetBind = 32,
    NetListen = 33,
    NetClose = 34,
    NetDns = 35,
    NetState = 36,
    NetSend = 37,
    FlowUpdate = 40,
    FlowEnd = 41,
    FlowNew = 42,
}

impl EventKind {
    pub const ALL: &'static [EventKind] = &[
        EventKind::ProcessExec,
        EventKind::ProcessFork,
        EventKind::ProcessExit,
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
        EventKind::NetConnect,
        EventKind::NetAccept,
        EventKind::NetBind,
        EventKind::NetListen,
        EventKind::NetClose,
        EventKind::NetDns,
        EventKind::NetState,
        EventKind::NetSend,
        EventKind::FlowUpdate,
        EventKind::FlowEnd,
        EventKind::FlowNew,
    ];

    /// `<category>.<action>` as it appears in the JSON `kind` field.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::ProcessExec => "process.exec",
            EventKind::ProcessFork => "process.fork",
            EventKind::ProcessExit => "process.exit",
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

/// Common header of every ring buffer record (80 bytes, no implicit padding).
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
    pub _pad0: u32,
    /// cgroup v2 id (inode of the cgroup directory).
    pub cgroup_id: u64,
    /// `group_leader->start_boottime`: with `pid` it names one process instance.
    pub start_ns: u64,
    /// `real_parent->group_leader->start_boottime`.
    pub parent_start_ns: u64,
    pub comm: [u8; COMM_LEN],
}

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
            _pad0: 0,
            cgroup_id: 0,
            start_ns: 0,
            parent_start_ns: 0,
            comm: [0; COMM_LEN],
        }
    }
}

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
pub use file::*;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::ProbeConfig {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowStats {}
    unsafe impl aya::Pod for super::FileConfig {}
    unsafe impl aya::Pod for super::FileOffsets {}
}

// Layout checks: the two sides must agree byte for byte.
const _: () = assert!(core::mem::size_of::<EventHeader>() == 80);
const _: () = assert!(core::mem::size_of::<ForkEvent>() == 96);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 88);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == EXEC_FIXED_LEN + EXEC_DATA_LEN);
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 140);

/// Bytes of a datagram payload captured for DNS parsing (a query fits; longer ones are cut and
/// `NetInfo::payload_total` tells).
pub const NET_DATA_LEN: usize = 512;
const _: () = assert!(NET_DATA_LEN.is_power_of_two());
/// Room for a raw `sockaddr` (`sockaddr_un` is the largest one: 110 bytes).
pub const SOCKADDR_MAX: usize = 112;

/// `NetInfo::nflags`: `ret` holds the syscall's return value.
pub const NET_HAS_RET: u32 = 1 << 0;
/// `NetInfo::nflags`: the socket was found; `family`..`daddr` come from its `struct sock`.
pub const NET_HAS_SOCK: u32 = 1 << 1;
/// `NetInfo::nflags`: `addr` holds the sockaddr the caller passed (connect/bind/sendto) or the
/// bound unix address of the socket.
pub const NET_HAS_ADDR: u32 = 1 << 2;
/// `NetInfo::nflags`: `addr` is the socket's own (local) address, not the peer's.
pub const NET_ADDR_LOCAL: u32 = 1 << 3;
/// `NetInfo::nflags`: the payload came from a TCP stream (DNS over TCP, 2-byte length prefix).
pub const NET_PAYLOAD_TCP: u32 = 1 << 4;
/// `EventHeader::flags`: the event has no process context (e.g. a TCP state change of a socket
/// no process was seen to own yet); the header's task fields are zero.
pub const FLAG_NO_PROCESS: u32 = 1 << 16;

/// The fixed part of every `net.*` record after the header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetInfo {
    /// Syscall return value (negative errno on failure); valid with `NET_HAS_RET`.
    pub ret: i64,
    /// `listen` backlog.
    pub arg: u64,
    /// Socket fd (the new fd for accept).
    pub fd: i32,
    /// `NET_*` bits.
    pub nflags: u32,
    /// `AF_*` of the socket.
    pub family: u16,
    /// `SOCK_*` type of the socket.
    pub sock_type: u16,
    /// `IPPROTO_*` of the socket.
    pub protocol: u16,
    /// Local port, host byte order.
    pub sport: u16,
    /// Remote port, host byte order.
    pub dport: u16,
    /// `TCP_*` states of `net.state`.
    pub old_state: u8,
    pub new_state: u8,
    /// Bytes of `addr` that are valid.
    pub addr_len: u16,
    pub _pad0: u16,
    /// Local address (IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Remote address (IPv4 in the first 4 bytes).
    pub daddr: [u8; 16],
    /// A raw `struct sockaddr_*`.
    pub addr: [u8; SOCKADDR_MAX],
    /// Bytes of payload in `NetEvent::data`.
    pub payload_len: u32,
    /// Full length of the datagram the payload was cut from.
    pub payload_total: u32,
}

impl NetInfo {
    pub const fn zeroed() -> Self {
        NetInfo {
            ret: 0,
            arg: 0,
            fd: -1,
            nflags: 0,
            family: 0,
            sock_type: 0,
            protocol: 0,
            sport: 0,
            dport: 0,
            old_state: 0,
            new_state: 0,
            addr_len: 0,
            _pad0: 0,
            saddr: [0; 16],
            daddr: [0; 16],
            addr: [0; SOCKADDR_MAX],
            payload_len: 0,
            payload_total: 0,
        }
    }
}

/// Header plus [`NetInfo`]: what syscall events carry (no payload).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetHead {
    pub header: EventHeader,
    pub info: NetInfo,
}

/// A `net.*` record. Variable length: it ends `payload_len` bytes into `data`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NetEvent {
    pub head: NetHead,
    pub data: [u8; NET_DATA_LEN],
}

/// Bytes of [`NetEvent`] before `data`.
pub const NET_FIXED_LEN: usize = core::mem::size_of::<NetHead>();

const _: () = assert!(core::mem::size_of::<NetInfo>() == 192);
const _: () = assert!(NET_FIXED_LEN == 272);
const _: () = assert!(core::mem::size_of::<NetEvent>() == NET_FIXED_LEN + NET_DATA_LEN);

// ---- XDP flows (kinds 40-49) ----

/// LRU hash of live flows: [`FlowKey`] -> [`FlowStats`].
pub const MAP_FLOWS: &str = "FLOWS";
/// Per-CPU `u64` packet counters of the XDP parser, indexed by `XDP_*`.
pub const MAP_XDP_STATS: &str = "XDP_STATS";
/// Default number of flows the kernel keeps (the least recently used one is evicted beyond it).
pub const FLOW_ENTRIES: u32 = 65536;

/// `XDP_STATS` indexes. Packets the parser looked at.
pub const XDP_PACKETS: u32 = 0;
/// Not IPv4/IPv6 (ARP, LLDP, ...): passed, no flow.
pub const XDP_NON_IP: u32 = 1;
/// Frame shorter than an Ethernet header (or its VLAN tags).
pub const XDP_TRUNC_ETH: u32 = 2;
/// More than two VLAN tags.
pub const XDP_VLAN_TOO_DEEP: u32 = 3;
/// IPv4 header (20 bytes, or `ihl * 4` with options) cut short.
pub const XDP_TRUNC_IPV4: u32 = 4;
/// IPv4 `ihl` below 5, or the version nibble disagrees with the ethertype.
pub const XDP_BAD_IHL: u32 = 5;
/// IPv4 `tot_len` smaller than the header or larger than the frame.
pub const XDP_BAD_IPV4_LEN: u32 = 6;
/// IPv4 fragments (counted; also accounted to a flow).
pub const XDP_IPV4_FRAGMENTS: u32 = 7;
/// IPv6 fixed header or an extension header cut short.
pub const XDP_TRUNC_IPV6: u32 = 8;
/// IPv6 extension chain longer than `IPV6_EXT_MAX`.
pub const XDP_IPV6_EXT_TOO_DEEP: u32 = 9;
/// IPv6 fragments (fragment extension header seen).
pub const XDP_IPV6_FRAGMENTS: u32 = 10;
/// TCP/UDP/ICMP header cut short.
pub const XDP_TRUNC_L4: u32 = 11;
/// TCP data offset below 5 or past the IP payload; or UDP length below 8.
pub const XDP_BAD_L4: u32 = 12;
/// IPv6 payload length larger than the frame.
pub const XDP_BAD_IPV6_LEN: u32 = 13;
/// Flows created in the LRU map (successful `BPF_NOEXIST` inserts).
pub const XDP_FLOW_INSERTS: u32 = 14;
/// Flow inserts that failed (other than a concurrent insert of the same key).
pub const XDP_FLOW_INSERT_FAILED: u32 = 15;
/// Flows removed by the kernel at TCP FIN/RST.
pub const XDP_FLOW_KERNEL_DELETES: u32 = 16;
/// Number of `XDP_STATS` slots.
pub const XDP_STAT_SLOTS: u32 = 24;

/// Longest IPv6 extension-header chain the parser follows.
pub const IPV6_EXT_MAX: u32 = 6;

/// `FlowKey::direction`: received on the interface (XDP sees ingress only).
pub const DIR_INGRESS: u8 = 0;

/// `FlowStats::flags`: a fragment was accounted to this flow (ports may be missing from some).
pub const FLOW_F_FRAGMENT: u32 = 1 << 0;
/// `FlowEvent::reason`: TCP FIN seen.
pub const FLOW_END_FIN: u32 = 1;
/// `FlowEvent::reason`: TCP RST seen.
pub const FLOW_END_RST: u32 = 2;

/// One direction of one flow. Addresses are 16 bytes (IPv4 in the first 4, rest zero), ports in
/// host byte order. For ICMP/ICMPv6 `src_port` is the echo identifier (0 for other messages)
/// and `dst_port` is `type << 8 | code`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub ifindex: u32,
    /// 4 or 6.
    pub family: u8,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub proto: u8,
    /// `DIR_*`.
    pub direction: u8,
    pub _pad0: u8,
}

/// Counters of one flow. Updated with atomics by every CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowStats {
    /// `bpf_ktime_get_boot_ns()` of the first and the latest packet.
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub packets: u64,
    /// IP bytes (IPv4 `tot_len`, IPv6 `payload_len + 40`): no link-layer header or padding.
    pub bytes: u64,
    /// Transport payload bytes (after the TCP/UDP/ICMP header).
    pub payload_bytes: u64,
    /// OR of the TCP flag bytes seen (FIN 0x01 .. CWR 0x80).
    pub tcp_flags: u32,
    /// `FLOW_F_*`.
    pub flags: u32,
}

/// `flow.end` (TCP FIN/RST, from the kernel) and `flow.new` (first packet of a flow, so
/// userspace can find the owning socket while it still exists). Header task fields are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    pub header: EventHeader,
    pub key: FlowKey,
    /// `FLOW_END_*` for `flow.end`, 0 for `flow.new`.
    pub reason: u32,
    pub stats: FlowStats,
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 44);
const _: () = assert!(core::mem::size_of::<FlowStats>() == 48);
const _: () = assert!(core::mem::size_of::<FlowEvent>() == 80 + 44 + 4 + 48);
