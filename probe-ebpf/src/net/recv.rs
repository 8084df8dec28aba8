//! DNS responses: recvfrom, recvmsg, recvmmsg and read of a socket whose peer is port 53, by a
//! process that talked DNS lately. The entry looks for the socket (a map lookup first, so
//! every other read costs little) and keeps where the payload will land; the exit copies the
//! bytes received, bounded, as a `net.dns` record with `NET_PAYLOAD_RECV`.
use core::{
    ffi::c_void,
    intrinsics::{atomic_xadd, AtomicOrdering},
};

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_ktime_get_ns, bpf_probe_read_user},
    },
    macros::{btf_map, map, tracepoint},
    maps::Array,
    programs::TracePointContext,
};
use probe_common::{
    EventKind, NetEvent, NetInfo, NET_DATA_LEN, NET_FIXED_LEN, NET_PAYLOAD_RECV, NET_PAYLOAD_TCP,
};

use super::sock::{
    fill_from_socket, peer_of_sk, read_user_addr, socket_of_file, AF_INET, AF_INET6, IPPROTO_TCP,
    IPPROTO_UDP,
};
use super::{mark_dns_client, read_user, DNS_CLIENTS, DNS_PORT, NET_SCRATCH};
use crate::common::{bound, emit_bytes, enabled, fill_header, sys_arg, sys_ret};
use crate::kernel::{current_task, file_of_fd, offsets, read_kernel};
use crate::maps::TaskStorage;

/// How long after its last query (or connect to port 53) a process's reads are looked at.
const CLIENT_WINDOW_NS: u64 = 10_000_000_000;
/// A DNS message has a 12-byte header: shorter reads (a TCP length prefix) are not one.
const DNS_HEADER: u64 = 12;
const MSG_PEEK: u64 = 2;

const RECV_FROM: u32 = 1;
const RECV_MSG: u32 = 2;
const RECV_MMSG: u32 = 3;
const RECV_READ: u32 = 4;

/// A thread's receive in flight on a socket that may be a DNS client's.
#[repr(C)]
struct RecvPending {
    /// `RECV_*` of the call (0: none).
    call: u32,
    fd: i32,
    /// Where the payload lands (the first iovec for the msg calls).
    buf: u64,
    /// The sockaddr the kernel fills with the sender (unconnected sockets), or 0.
    addr: u64,
    /// recvmmsg: where the first message's `msg_len` is (user memory), else 0.
    msg_len_at: u64,
    /// 1 when the socket is connected to port 53; else the sender's port decides at exit.
    peer_ok: u32,
    protocol: u32,
}

#[btf_map]
static NET_RECV: TaskStorage<RecvPending> = TaskStorage::new();

/// A connect to port 53 makes the caller a DNS client (TCP queries, and resolvers that write
/// with write(2), which the send hooks do not see).
#[inline(always)]
pub(super) fn connect_to_dns(uaddr: u64, len: u64) {
    if len < 4 || uaddr == 0 {
        return;
    }
    let Some(head) = read_user::<[u8; 4]>(uaddr) else {
        return;
    };
    let family = u16::from_ne_bytes([head[0], head[1]]);
    let port = u16::from_be_bytes([head[2], head[3]]);
    if (family == AF_INET || family == AF_INET6) && port == DNS_PORT {
        mark_dns_client();
    }
}

/// Whether the current process talked DNS within the window.
#[inline(always)]
fn dns_client() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(t) = (unsafe { DNS_CLIENTS.get(tgid) }) else {
        return false;
    };
    unsafe { bpf_ktime_get_ns() }.wrapping_sub(*t) < CLIENT_WINDOW_NS
}

/// The entry of a receive of `fd` into `buf`, the sender written to `addr` (0: none).
#[inline(always)]
fn recv_enter(call: u32, fd: u64, buf: u64, addr: u64, msg_len_at: u64) {
    // Nothing more for everyone else: not even a disarm (an exit re-checks the socket).
    if !dns_client() || enabled(EventKind::NetDns).is_none() {
        return;
    }
    if !dns_socket(call, fd as i32, buf, addr, msg_len_at) {
        disarm();
    }
}

#[inline(always)]
fn disarm() {
    if let Some(p) = NET_RECV.current() {
        let p = unsafe { &mut *p };
        if p.call != 0 {
            p.call = 0;
            inflight_add(u64::MAX); // -1
        }
    }
}

/// Receives armed and not yet completed, over all threads: while there are none (nearly
/// always), the exit of every `read` returns after one array load, without a task-storage
/// lookup. A thread that dies between an armed entry and its exit leaves the count above
/// zero for good, which only brings that lookup back.
#[map]
static NET_RECV_INFLIGHT: Array<u64> = Array::with_max_entries(1, 0);

#[inline(always)]
fn inflight_add(n: u64) {
    if let Some(c) = NET_RECV_INFLIGHT.get_ptr_mut(0) {
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, n) };
    }
}

/// Arms the pending receive when `fd` is a UDP or TCP socket whose peer is port 53, or an
/// unconnected UDP socket told where to write the sender.
#[inline(always)]
fn dns_socket(call: u32, fd: i32, buf: u64, addr: u64, msg_len_at: u64) -> bool {
    let off = offsets();
    let Some(file) = file_of_fd(fd as i64, &off) else {
        return false;
    };
    let Some(sock) = socket_of_file(file, &off) else {
        return false;
    };
    let Ok(sk) = read_kernel::<*const u8>(sock, off.socket_sk) else {
        return false;
    };
    let protocol: u16 = read_kernel(sk, off.sk_protocol).unwrap_or(0);
    if protocol != IPPROTO_UDP && protocol != IPPROTO_TCP {
        return false;
    }
    let (family, port, _) = peer_of_sk(sk, &off);
    if family != AF_INET && family != AF_INET6 {
        return false;
    }
    let peer_ok = port == DNS_PORT;
    if !peer_ok && !(protocol == IPPROTO_UDP && port == 0 && addr != 0) {
        return false;
    }
    let Some(p) = NET_RECV.current_or_create() else {
        return false;
    };
    let p = unsafe { &mut *p };
    p.fd = fd;
    p.buf = buf;
    p.addr = addr;
    p.msg_len_at = msg_len_at;
    p.peer_ok = peer_ok as u32;
    p.protocol = protocol as u32;
    if p.call == 0 {
        inflight_add(1);
    }
    p.call = call;
    true
}

/// The exit of a receive: copies what arrived from a port-53 peer into a `net.dns` record.
#[inline(always)]
fn recv_exit(ctx: &TracePointContext, call: u32) {
    if NET_RECV_INFLIGHT.get(0).is_none_or(|n| *n == 0) {
        return;
    }
    let Some(p) = NET_RECV.current() else {
        return;
    };
    let p = unsafe { &mut *p };
    if p.call != call {
        return;
    }
    p.call = 0;
    inflight_add(u64::MAX);
    let _ = try_recv_exit(ctx, p);
}

#[inline(always)]
fn try_recv_exit(ctx: &TracePointContext, p: &RecvPending) -> Option<()> {
    let ret = sys_ret(ctx);
    if ret <= 0 {
        return None;
    }
    let mut len = ret as u64;
    if p.msg_len_at != 0 {
        // recvmmsg returns a message count; the first message's length is in its header.
        len = read_user::<u32>(p.msg_len_at)? as u64;
    }
    if len < DNS_HEADER {
        return None;
    }
    let off = offsets();
    let sock = socket_of_file(file_of_fd(p.fd as i64, &off)?, &off)?;
    let ev = NET_SCRATCH.get_ptr_mut(0)?;
    let ev = unsafe { &mut *ev };
    let info = &mut ev.head.info;
    *info = NetInfo::zeroed();
    info.fd = p.fd;
    fill_from_socket(info, sock, &off)?;
    if p.peer_ok != 0 && info.dport != DNS_PORT {
        return None; // left armed by an entry whose exit was not seen
    }
    if p.peer_ok == 0 {
        // Unconnected: the sender the kernel wrote must be port 53.
        read_user_addr(info, p.addr, 28);
        let port = u16::from_be_bytes([info.addr[2], info.addr[3]]);
        if info.addr_len < 8 || port != DNS_PORT {
            return None;
        }
    }
    // The same mask as the send path: a bound every verifier (6.1 too) follows.
    const CAP: u64 = NET_DATA_LEN as u64 - 1;
    let n = bound(len.min(CAP) as u32, CAP as u32);
    let r = unsafe {
        bpf_probe_read_user(
            ev.data.as_mut_ptr() as *mut c_void,
            n,
            p.buf as *const c_void,
        )
    };
    if r != 0 {
        return None;
    }
    let info = &mut ev.head.info;
    info.payload_len = n;
    info.payload_total = len as u32;
    info.nflags |= NET_PAYLOAD_RECV;
    if p.protocol == IPPROTO_TCP as u32 {
        info.nflags |= NET_PAYLOAD_TCP;
    }
    fill_header(&mut ev.head.header, EventKind::NetDns, current_task());
    let n = info.payload_len as usize;
    if n <= NET_DATA_LEN {
        emit_bytes(
            EventKind::NetDns,
            ev as *const NetEvent as *const u8,
            (NET_FIXED_LEN + n) as u64,
        );
    }
    Some(())
}

/// The first iovec of a `user_msghdr` (name at 0, iov at 16): (name, iov base).
#[inline(always)]
fn msghdr_parts(msg: u64) -> Option<(u64, u64)> {
    let name: u64 = read_user(msg)?;
    let iov: u64 = read_user(msg + 16)?;
    let base: u64 = read_user(iov)?;
    Some((name, base))
}

#[tracepoint(category = "syscalls", name = "sys_enter_recvfrom")]
pub fn net_enter_recvfrom(ctx: TracePointContext) -> u32 {
    // recvfrom(fd, buf, len, flags, addr, addrlen)
    if sys_arg(&ctx, 3) & MSG_PEEK == 0 {
        recv_enter(
            RECV_FROM,
            sys_arg(&ctx, 0),
            sys_arg(&ctx, 1),
            sys_arg(&ctx, 4),
            0,
        );
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_recvfrom")]
pub fn net_exit_recvfrom(ctx: TracePointContext) -> u32 {
    recv_exit(&ctx, RECV_FROM);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_recvmsg")]
pub fn net_enter_recvmsg(ctx: TracePointContext) -> u32 {
    // recvmsg(fd, msg, flags)
    if sys_arg(&ctx, 2) & MSG_PEEK == 0 && dns_client() {
        // Read only for DNS clients; recv_enter asks again, a lookup it would make anyway.
        if let Some((name, base)) = msghdr_parts(sys_arg(&ctx, 1)) {
            recv_enter(RECV_MSG, sys_arg(&ctx, 0), base, name, 0);
        }
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_recvmsg")]
pub fn net_exit_recvmsg(ctx: TracePointContext) -> u32 {
    recv_exit(&ctx, RECV_MSG);
    0
}

/// `offsetof(struct mmsghdr, msg_len)` on 64-bit.
const MMSG_LEN_AT: u64 = 56;

#[tracepoint(category = "syscalls", name = "sys_enter_recvmmsg")]
pub fn net_enter_recvmmsg(ctx: TracePointContext) -> u32 {
    // recvmmsg(fd, vec, vlen, flags, timeout): the first message is looked at.
    let vec = sys_arg(&ctx, 1);
    if sys_arg(&ctx, 3) & MSG_PEEK == 0 && sys_arg(&ctx, 2) > 0 && dns_client() {
        if let Some((name, base)) = msghdr_parts(vec) {
            recv_enter(RECV_MMSG, sys_arg(&ctx, 0), base, name, vec + MMSG_LEN_AT);
        }
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_recvmmsg")]
pub fn net_exit_recvmmsg(ctx: TracePointContext) -> u32 {
    recv_exit(&ctx, RECV_MMSG);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_read")]
pub fn net_enter_read(ctx: TracePointContext) -> u32 {
    recv_enter(RECV_READ, sys_arg(&ctx, 0), sys_arg(&ctx, 1), 0, 0);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_read")]
pub fn net_exit_read(ctx: TracePointContext) -> u32 {
    recv_exit(&ctx, RECV_READ);
    0
}
