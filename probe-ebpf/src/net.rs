//! Network: connect/accept/bind/listen/close paired per thread from the syscall tracepoints, UDP
//! destinations and DNS payloads from sendto/sendmsg/sendmmsg, and TCP state changes from
//! `inet_sock_set_state`. Addresses come from the kernel's `struct sock` (offsets from BTF) and
//! from the sockaddr the caller passed; userspace turns the raw bytes into JSON.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_ktime_get_boot_ns, bpf_probe_read_kernel, bpf_probe_read_user},
    },
    macros::{btf_map, map, raw_tracepoint, tracepoint},
    maps::{LruHashMap, PerCpuArray},
    programs::{RawTracePointContext, TracePointContext},
};
use probe_common::{
    EventHeader, EventKind, KernelOffsets, NetEvent, NetHead, NetInfo, FLAG_NO_PROCESS,
    NET_ADDR_LOCAL, NET_DATA_LEN, NET_FIXED_LEN, NET_HAS_ADDR, NET_HAS_RET, NET_HAS_SOCK,
    NET_PAYLOAD_TCP, SOCKADDR_MAX,
};

use crate::common::{
    bound, current_task, emit, emit_bytes, enabled, file_of_fd, fill_header, kind_enabled, offsets,
    read_kernel, self_tgid, sys_arg, sys_ret,
};
use crate::maps::TaskStorage;

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const TCP_ESTABLISHED: u8 = 1;
const TCP_SYN_RECV: u8 = 3;
const TCP_CLOSE: u8 = 7;
const EAGAIN: i64 = 11;
const DNS_PORT: u16 = 53;
/// Messages of one sendmmsg call that are looked at (glibc sends A and AAAA as two).
const MMSG_MAX: u32 = 4;
/// `sizeof(struct mmsghdr)` on 64-bit: a `user_msghdr` (56 bytes) and `msg_len`, padded.
const MMSGHDR_SIZE: u64 = 64;

/// What a thread's pending syscall has gathered at entry, completed at exit.
#[map]
static NET_PENDING: LruHashMap<u32, NetHead> = LruHashMap::with_max_entries(8192, 0);

/// Scratch for building a pending record (too large for the stack).
#[map]
static NET_HEAD_SCRATCH: PerCpuArray<NetHead> = PerCpuArray::with_max_entries(1, 0);

/// Scratch for `net.state`: it runs in softirq, which may interrupt a syscall program that is
/// using `NET_HEAD_SCRATCH` on the same CPU.
#[map]
static NET_STATE_SCRATCH: PerCpuArray<NetHead> = PerCpuArray::with_max_entries(1, 0);

/// Scratch for records with a payload.
#[map]
static NET_SCRATCH: PerCpuArray<NetEvent> = PerCpuArray::with_max_entries(1, 0);

/// The process that last used a `struct sock` (connect, accept, bind, listen, send): TCP state
/// changes run in softirq context, where the current task is whoever happened to be running.
#[map]
static NET_OWNER: LruHashMap<u64, EventHeader> = LruHashMap::with_max_entries(16384, 0);

/// The process listening on a local port: owner of server-side connections before accept.
#[map]
static NET_LISTENER: LruHashMap<u16, EventHeader> = LruHashMap::with_max_entries(4096, 0);

/// A UDP destination already reported for a socket (`net.send` is once per socket and peer).
#[repr(C)]
#[derive(Clone, Copy)]
struct SendKey {
    sk: u64,
    family: u16,
    port: u16,
    _pad0: u32,
    addr: [u8; 16],
}

#[map]
static NET_SENT: LruHashMap<SendKey, u8> = LruHashMap::with_max_entries(16384, 0);

/// The destination a thread last sent a UDP datagram to that needed no event (reported
/// already), by the `struct file` it went through. A client sending to one peer again and
/// again is recognised with a few reads instead of a walk of its socket and a map lookup.
#[repr(C)]
struct LastSend {
    file: u64,
    family: u16,
    port: u16,
    _pad0: u32,
    addr: [u8; 16],
}

#[btf_map]
static NET_LAST_SEND: TaskStorage<LastSend> = TaskStorage::new();

#[inline(always)]
fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

/// The `struct socket` behind `fd` of the current task, or `None` when `fd` is not a socket
/// (`f_inode->i_mode` is `S_IFSOCK` only for sockets).
#[inline(always)]
fn socket_of_fd(fd: i64, off: &KernelOffsets) -> Option<*const u8> {
    socket_of_file(file_of_fd(fd, off)?, off)
}

/// The `struct socket` of `file`, when it is one.
#[inline(always)]
fn socket_of_file(file: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    let inode: *const u8 = read_kernel(file, off.file_f_inode).ok()?;
    let mode: u16 = read_kernel(inode, off.inode_i_mode).ok()?;
    if mode & S_IFMT != S_IFSOCK {
        return None;
    }
    let sock: *const u8 = read_kernel(file, off.file_private_data).ok()?;
    (!sock.is_null()).then_some(sock)
}

/// Family, peer port and peer address of a `struct sock` (zeros where a read fails, and for the
/// address of a family other than IPv4 and IPv6).
#[inline(always)]
fn peer_of_sk(sk: *const u8, off: &KernelOffsets) -> (u16, u16, [u8; 16]) {
    let family = read_kernel(sk, off.sk_family).unwrap_or(0);
    let port = u16::from_be(read_kernel(sk, off.sk_dport).unwrap_or(0));
    let mut addr = [0u8; 16];
    match family {
        AF_INET => {
            let d: [u8; 4] = read_kernel(sk, off.sk_daddr).unwrap_or([0; 4]);
            addr[..4].copy_from_slice(&d);
        }
        AF_INET6 => addr = read_kernel(sk, off.sk_v6_daddr).unwrap_or([0; 16]),
        _ => {}
    }
    (family, port, addr)
}

/// Family, protocol, ports and addresses of a `struct sock`; for a unix socket without a
/// caller-given address, its own bound address.
#[inline(always)]
fn fill_from_sk(info: &mut NetInfo, sk: *const u8, off: &KernelOffsets) {
    (info.family, info.dport, info.daddr) = peer_of_sk(sk, off);
    info.protocol = read_kernel(sk, off.sk_protocol).unwrap_or(0);
    info.sport = read_kernel(sk, off.sk_num).unwrap_or(0);
    if info.sport == 0 && (info.family == AF_INET || info.family == AF_INET6) {
        // Cleared when the socket leaves the hash tables (close); inet_sport stays.
        info.sport = u16::from_be(read_kernel(sk, off.inet_sport).unwrap_or(0));
    }
    match info.family {
        AF_INET => {
            let s: [u8; 4] = read_kernel(sk, off.sk_rcv_saddr).unwrap_or([0; 4]);
            info.saddr[..4].copy_from_slice(&s);
        }
        AF_INET6 => {
            info.saddr = read_kernel(sk, off.sk_v6_rcv_saddr).unwrap_or([0; 16]);
        }
        AF_UNIX if info.nflags & NET_HAS_ADDR == 0 => {
            let ua: *const u8 = read_kernel(sk, off.unix_addr).unwrap_or(core::ptr::null());
            if !ua.is_null() {
                let len: i32 = read_kernel(ua, off.unix_address_len).unwrap_or(0);
                let n = ((len.max(0) as u32).min(SOCKADDR_MAX as u32)) & 0x7f;
                let src = ua.wrapping_add(off.unix_address_name as usize);
                let ret = unsafe {
                    bpf_probe_read_kernel(
                        info.addr.as_mut_ptr() as *mut c_void,
                        n,
                        src as *const c_void,
                    )
                };
                if ret == 0 && n > 0 {
                    info.addr_len = n as u16;
                    info.nflags |= NET_HAS_ADDR | NET_ADDR_LOCAL;
                }
            }
        }
        _ => {}
    }
    info.nflags |= NET_HAS_SOCK;
}

/// Fills `info` from the socket behind `fd`; returns its `struct sock`.
#[inline(always)]
fn fill_from_fd(info: &mut NetInfo, fd: i64, off: &KernelOffsets) -> Option<*const u8> {
    fill_from_socket(info, socket_of_fd(fd, off)?, off)
}

/// Fills `info` from a `struct socket`; returns its `struct sock`.
#[inline(always)]
fn fill_from_socket(
    info: &mut NetInfo,
    socket: *const u8,
    off: &KernelOffsets,
) -> Option<*const u8> {
    info.sock_type = read_kernel::<i16>(socket, off.socket_type).unwrap_or(0) as u16;
    let sk: *const u8 = read_kernel(socket, off.socket_sk).ok()?;
    if sk.is_null() {
        return None;
    }
    fill_from_sk(info, sk, off);
    Some(sk)
}

/// Fills `info` again from its own fd (state that changed during the syscall).
#[inline(always)]
fn refill(info: &mut NetInfo, off: &KernelOffsets) -> Option<*const u8> {
    let fd = info.fd as i64;
    fill_from_fd(info, fd, off)
}

/// Copies the caller's sockaddr (bounded by `SOCKADDR_MAX`).
#[inline(always)]
fn read_user_addr(info: &mut NetInfo, uaddr: u64, len: u64) {
    // The mask keeps the bound visible to the verifier after the compiler's rewrites.
    let n = bound(len.min(SOCKADDR_MAX as u64) as u32, 0x7f);
    if uaddr == 0 || n == 0 {
        return;
    }
    let ret = unsafe {
        bpf_probe_read_user(
            info.addr.as_mut_ptr() as *mut c_void,
            n,
            uaddr as *const c_void,
        )
    };
    if ret == 0 {
        info.addr_len = n as u16;
        info.nflags |= NET_HAS_ADDR;
    }
}

/// Starts a pending record for the current thread; `f` adds what entry knows.
#[inline(always)]
fn begin(kind: EventKind, fd: i64, f: impl FnOnce(&mut NetHead, &KernelOffsets)) -> Option<()> {
    let off = offsets();
    let h = NET_HEAD_SCRATCH.get_ptr_mut(0)?;
    let h = unsafe { &mut *h };
    fill_header(&mut h.header, kind, current_task(), &off);
    h.info = NetInfo::zeroed();
    h.info.fd = fd as i32;
    f(h, &off);
    // By reference: a 272-byte copy would not fit the stack budget.
    let rec: &NetHead = h;
    NET_PENDING.insert(current_tid(), rec, 0).ok()
}

/// Completes the current thread's pending record of `kind` with the syscall result, lets `f`
/// add what exit knows (returning false drops the record), and emits it.
#[inline(always)]
fn finish(
    ctx: &TracePointContext,
    kind: EventKind,
    f: impl FnOnce(&mut NetHead, i64, &KernelOffsets) -> bool,
) -> Option<()> {
    let tid = current_tid();
    let p = NET_PENDING.get_ptr_mut(tid)?;
    let p = unsafe { &mut *p };
    if p.header.kind == kind as u32 {
        let ret = sys_ret(ctx);
        p.info.ret = ret;
        p.info.nflags |= NET_HAS_RET;
        let off = offsets();
        if f(p, ret, &off) {
            emit(kind, p);
        }
    }
    let _ = NET_PENDING.remove(tid);
    Some(())
}

#[inline(always)]
fn remember_owner(sk: Option<*const u8>, header: &EventHeader) {
    if let Some(sk) = sk {
        let _ = NET_OWNER.insert(sk as u64, header, 0);
    }
}

// ---- connect ----

#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn net_enter_connect(ctx: TracePointContext) -> u32 {
    let _ = try_enter_connect(&ctx);
    0
}

fn try_enter_connect(ctx: &TracePointContext) -> Option<()> {
    enabled(EventKind::NetConnect)?;
    let fd = sys_arg(ctx, 0) as i64;
    begin(EventKind::NetConnect, fd, |h, off| {
        read_user_addr(&mut h.info, sys_arg(ctx, 1), sys_arg(ctx, 2));
        let sk = fill_from_fd(&mut h.info, fd, off);
        remember_owner(sk, &h.header);
    })
}

#[tracepoint(category = "syscalls", name = "sys_exit_connect")]
pub fn net_exit_connect(ctx: TracePointContext) -> u32 {
    let _ = try_exit_connect(&ctx);
    0
}

fn try_exit_connect(ctx: &TracePointContext) -> Option<()> {
    enabled(EventKind::NetConnect)?;
    finish(ctx, EventKind::NetConnect, |h, _ret, off| {
        // The local port is chosen during connect.
        let _ = refill(&mut h.info, off);
        true
    })
}

// ---- accept / accept4 ----

#[tracepoint(category = "syscalls", name = "sys_enter_accept")]
pub fn net_enter_accept(ctx: TracePointContext) -> u32 {
    let _ = try_enter_accept(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_accept4")]
pub fn net_enter_accept4(ctx: TracePointContext) -> u32 {
    let _ = try_enter_accept(&ctx);
    0
}

fn try_enter_accept(ctx: &TracePointContext) -> Option<()> {
    enabled(EventKind::NetAccept)?;
    begin(EventKind::NetAccept, sys_arg(ctx, 0) as i64, |_, _| {})
}

#[tracepoint(category = "syscalls", name = "sys_exit_accept")]
pub fn net_exit_accept(ctx: TracePointContext) -> u32 {
    let _ = try_exit_accept(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_accept4")]
pub fn net_exit_accept4(ctx: TracePointContext) -> u32 {
    let _ = try_exit_accept(&ctx);
    0
}

fn try_exit_accept(ctx: &TracePointContext) -> Option<()> {
    enabled(EventKind::NetAccept)?;
    finish(ctx, EventKind::NetAccept, |h, ret, off| {
        // A non-blocking accept with nothing queued is polling, not an event.
        if ret == -EAGAIN {
            return false;
        }
        if ret >= 0 {
            // The new connection: its local and peer addresses and its fd.
            h.info.fd = ret as i32;
            let sk = fill_from_fd(&mut h.info, ret, off);
            remember_owner(sk, &h.header);
        } else {
            let _ = refill(&mut h.info, off);
        }
        true
    })
}

// ---- bind ----

#[tracepoint(category = "syscalls", name = "sys_enter_bind")]
pub fn net_enter_bind(ctx: TracePointContext) -> u32 {
    let _ = try_enter_bind(&ctx);
    0
}

fn try_enter_bind(ctx: &TracePointContext) -> Option<()> {
    enabled(EventKind::NetBind)?;
    let fd = sys_arg(ctx, 0) as i64;
    begin(EventKind::NetBind, fd, |h, _| {
        read_user_addr(&mut h.info, sys_arg(ctx, 1), sys_arg(ctx, 2));
        h.info.nflags |= NET_ADDR_LOCAL;
    })
}

#[tracepoint(category = "syscalls", name = "sys_exit_bind")]
pub fn net_exit_bind(ctx: TracePointContext) -> u32 {
    let _ = try_exit_bind(&ctx);
    0
}

fn try_exit_bind(ctx: &TracePointContext) -> Option<()> {
    enabled(EventKind::NetBind)?;
    finish(ctx, EventKind::NetBind, |h, _ret, off| {
        // After bind the sock holds the port the kernel picked for port 0.
        let sk = refill(&mut h.info, off);
        remember_owner(sk, &h.header);
        true
    })
}

// ---- listen ----

#[tracepoint(category = "syscalls", name = "sys_enter_listen")]
pub fn net_enter_listen(ctx: TracePointContext) -> u32 {
    let _ = try_enter_listen(&ctx);
    0
}

fn try_enter_listen(ctx: &TracePointContext) -> Option<()> {
    enabled(EventKind::NetListen)?;
    begin(EventKind::NetListen, sys_arg(ctx, 0) as i64, |h, _| {
        h.info.arg = sys_arg(ctx, 1);
    })
}

#[tracepoint(category = "syscalls", name = "sys_exit_listen")]
pub fn net_exit_listen(ctx: TracePointContext) -> u32 {
    let _ = try_exit_listen(&ctx);
    0
}

fn try_exit_listen(ctx: &TracePointContext) -> Option<()> {
    enabled(EventKind::NetListen)?;
    finish(ctx, EventKind::NetListen, |h, ret, off| {
        let sk = refill(&mut h.info, off);
        remember_owner(sk, &h.header);
        if ret == 0 && h.info.protocol == IPPROTO_TCP {
            let hdr: &EventHeader = &h.header;
            let _ = NET_LISTENER.insert(h.info.sport, hdr, 0);
        }
        true
    })
}

// ---- close (sockets only) ----

#[tracepoint(category = "syscalls", name = "sys_enter_close")]
pub fn net_enter_close(ctx: TracePointContext) -> u32 {
    let _ = try_enter_close(&ctx);
    0
}

fn try_enter_close(ctx: &TracePointContext) -> Option<()> {
    enabled(EventKind::NetClose)?;
    let fd = sys_arg(ctx, 0) as i64;
    let off = offsets();
    // Most closes are of files: look before building anything.
    socket_of_fd(fd, &off)?;
    begin(EventKind::NetClose, fd, |h, off| {
        // The final addresses, read while the socket still exists.
        let _ = fill_from_fd(&mut h.info, fd, off);
    })
}

#[tracepoint(category = "syscalls", name = "sys_exit_close")]
pub fn net_exit_close(ctx: TracePointContext) -> u32 {
    let _ = try_exit_close(&ctx);
    0
}

fn try_exit_close(ctx: &TracePointContext) -> Option<()> {
    enabled(EventKind::NetClose)?;
    finish(ctx, EventKind::NetClose, |_, _, _| true)
}

// ---- sendto / sendmsg / sendmmsg: UDP destinations and DNS payloads ----

/// Family, port and address in the first bytes of a sockaddr of `len` bytes (family 0 when it
/// holds none).
#[inline(always)]
fn sockaddr_dest(a: &[u8; 28], len: usize) -> (u16, u16, [u8; 16]) {
    let mut addr = [0u8; 16];
    if len < 8 {
        return (0, 0, addr);
    }
    let family = u16::from_ne_bytes([a[0], a[1]]);
    let port = u16::from_be_bytes([a[2], a[3]]);
    if family == AF_INET {
        addr[..4].copy_from_slice(&a[4..8]);
    } else if family == AF_INET6 && len >= 24 {
        addr.copy_from_slice(&a[8..24]);
    }
    (family, port, addr)
}

/// Port and address of the destination: the caller's sockaddr when given, else the peer of a
/// connected socket.
#[inline(always)]
fn send_dest(info: &NetInfo) -> (u16, u16, [u8; 16]) {
    if info.nflags & NET_HAS_ADDR != 0 && info.addr_len >= 8 {
        let mut a = [0u8; 28];
        a.copy_from_slice(&info.addr[..28]);
        return sockaddr_dest(&a, info.addr_len as usize);
    }
    (info.family, info.dport, info.daddr)
}

/// The destination of a send through `file`, read the cheap way: from the caller's sockaddr,
/// or from the peer of the socket.
#[inline(always)]
fn quick_dest(
    file: *const u8,
    uaddr: u64,
    ulen: u64,
    off: &KernelOffsets,
) -> Option<(u16, u16, [u8; 16])> {
    if uaddr != 0 {
        let a: [u8; 28] = read_user(uaddr)?;
        return Some(sockaddr_dest(&a, ulen.min(28) as usize));
    }
    let sock: *const u8 = read_kernel(file, off.file_private_data).ok()?;
    let sk: *const u8 = read_kernel(sock, off.socket_sk).ok()?;
    // A peer that cannot be read comes out as zeros, which no remembered UDP peer equals.
    Some(peer_of_sk(sk, off))
}

/// Whether this thread's last send through `file` went to the same destination and needed no
/// event, so this one needs none either.
#[inline(always)]
fn sent_before(file: *const u8, uaddr: u64, ulen: u64, off: &KernelOffsets) -> bool {
    let Some(last) = NET_LAST_SEND.current() else {
        return false;
    };
    let last = unsafe { &*last };
    if last.file != file as u64 {
        return false;
    }
    match quick_dest(file, uaddr, ulen, off) {
        Some((family, port, addr)) => {
            port != DNS_PORT && family == last.family && port == last.port && addr == last.addr
        }
        None => false,
    }
}

/// One message sent on `fd`: `net.dns` with the payload prefix when it goes to port 53,
/// otherwise `net.send` the first time a UDP socket sends to a destination.
#[inline(always)]
fn send_one(fd: i64, uaddr: u64, ulen: u64, buf: u64, len: u64, tcp_prefix: bool) -> Option<()> {
    let off = offsets();
    let dns = enabled(EventKind::NetDns).is_some();
    let send = enabled(EventKind::NetSend).is_some();
    let file = file_of_fd(fd, &off)?;
    if sent_before(file, uaddr, ulen, &off) {
        return None;
    }
    let socket = socket_of_file(file, &off)?;
    let ev = NET_SCRATCH.get_ptr_mut(0)?;
    let ev = unsafe { &mut *ev };
    let info = &mut ev.head.info;
    *info = NetInfo::zeroed();
    info.fd = fd as i32;
    let sk = fill_from_socket(info, socket, &off)?;
    if info.family != AF_INET && info.family != AF_INET6 {
        return None;
    }
    read_user_addr(info, uaddr, ulen);
    let (family, port, addr) = send_dest(info);
    let proto = info.protocol;
    if dns && port == DNS_PORT && (proto == IPPROTO_UDP || proto == IPPROTO_TCP) {
        // A mask the verifier can follow on every kernel (6.1 loses the bound of a plain
        // min): at most NET_DATA_LEN - 1 bytes, ample for a DNS query.
        const CAP: u64 = NET_DATA_LEN as u64 - 1;
        let n = bound(len.min(CAP) as u32, CAP as u32);
        let ret = unsafe {
            bpf_probe_read_user(ev.data.as_mut_ptr() as *mut c_void, n, buf as *const c_void)
        };
        let info = &mut ev.head.info;
        info.payload_total = len as u32;
        info.payload_len = if ret == 0 { n } else { 0 };
        if proto == IPPROTO_TCP && tcp_prefix {
            info.nflags |= NET_PAYLOAD_TCP;
        }
        let n = info.payload_len as usize;
        fill_header(&mut ev.head.header, EventKind::NetDns, current_task(), &off);
        remember_owner(Some(sk), &ev.head.header);
        if n <= NET_DATA_LEN {
            emit_bytes(
                EventKind::NetDns,
                ev as *const NetEvent as *const u8,
                (NET_FIXED_LEN + n) as u64,
            );
        }
        return Some(());
    }
    if !send || proto != IPPROTO_UDP {
        return None;
    }
    let key = SendKey {
        sk: sk as u64,
        family,
        port,
        _pad0: 0,
        addr,
    };
    if let Some(last) = NET_LAST_SEND.current_or_create() {
        let last = unsafe { &mut *last };
        last.file = file as u64;
        last.family = family;
        last.port = port;
        last.addr = addr;
    }
    if NET_SENT.get_ptr(key).is_some() {
        return None;
    }
    let _ = NET_SENT.insert(key, 1u8, 0);
    fill_header(
        &mut ev.head.header,
        EventKind::NetSend,
        current_task(),
        &off,
    );
    remember_owner(Some(sk), &ev.head.header);
    emit(EventKind::NetSend, &ev.head);
    Some(())
}

/// Any of the two kinds the send hooks serve is enabled.
#[inline(always)]
fn send_enabled() -> bool {
    enabled(EventKind::NetDns).is_some() || enabled(EventKind::NetSend).is_some()
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendto")]
pub fn net_enter_sendto(ctx: TracePointContext) -> u32 {
    if send_enabled() {
        let (fd, buf, len) = (sys_arg(&ctx, 0), sys_arg(&ctx, 1), sys_arg(&ctx, 2));
        let (uaddr, ulen) = (sys_arg(&ctx, 4), sys_arg(&ctx, 5));
        let _ = send_one(fd as i64, uaddr, ulen, buf, len, true);
    }
    0
}

/// `struct user_msghdr` (userspace ABI, 64-bit): name, namelen, iov, iovlen at 0, 8, 16, 24.
/// A function of its own (not inlined): sendmmsg calls it in a loop, and four inlined copies
/// overflow the 512-byte stack on verifiers that add up frames (6.1).
#[inline(never)]
fn send_msghdr(fd: i64, msg: u64) -> Option<()> {
    let name: u64 = read_user(msg)?;
    let namelen: u32 = read_user(msg + 8)?;
    let iov: u64 = read_user(msg + 16)?;
    let iovlen: u64 = read_user(msg + 24)?;
    if iovlen == 0 {
        return send_one(fd, name, namelen as u64, 0, 0, false);
    }
    let mut base: u64 = read_user(iov)?;
    let mut len: u64 = read_user(iov + 8)?;
    let mut tcp_prefix = true;
    // DNS over TCP is often written as [2-byte length][message]: take the message.
    if len < 12 && iovlen > 1 {
        base = read_user(iov + 16)?;
        len = read_user(iov + 24)?;
        tcp_prefix = false;
    }
    send_one(fd, name, namelen as u64, base, len, tcp_prefix)
}

#[inline(always)]
fn read_user<T: Copy>(addr: u64) -> Option<T> {
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    let ret = unsafe {
        bpf_probe_read_user(
            v.as_mut_ptr() as *mut c_void,
            core::mem::size_of::<T>() as u32,
            addr as *const c_void,
        )
    };
    (ret == 0).then(|| unsafe { v.assume_init() })
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendmsg")]
pub fn net_enter_sendmsg(ctx: TracePointContext) -> u32 {
    if send_enabled() {
        let _ = send_msghdr(sys_arg(&ctx, 0) as i64, sys_arg(&ctx, 1));
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendmmsg")]
pub fn net_enter_sendmmsg(ctx: TracePointContext) -> u32 {
    if send_enabled() {
        let fd = sys_arg(&ctx, 0) as i64;
        let vec = sys_arg(&ctx, 1);
        let vlen = (sys_arg(&ctx, 2) as u32).min(MMSG_MAX);
        for i in 0..MMSG_MAX {
            if i >= vlen {
                break;
            }
            let _ = send_msghdr(fd, vec + i as u64 * MMSGHDR_SIZE);
        }
    }
    0
}

// ---- TCP state changes ----

/// Raw tracepoint `inet_sock_set_state(sk, oldstate, newstate)`: the arguments are the same on
/// every kernel, unlike the record layout. Only entering ESTABLISHED and CLOSE is reported.
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn net_inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    let _ = try_state(&ctx);
    0
}

fn try_state(ctx: &RawTracePointContext) -> Option<()> {
    // Softirq: the current task is whoever was interrupted, so only the kind is checked here
    // and the probe's own sockets are recognised by their owner below.
    kind_enabled(EventKind::NetState)?;
    let sk = ctx.arg::<u64>(0) as *const u8;
    let old = ctx.arg::<u64>(1) as u8;
    let new = ctx.arg::<u64>(2) as u8;
    if new != TCP_ESTABLISHED && new != TCP_CLOSE {
        return None;
    }
    let off = offsets();
    let h = NET_STATE_SCRATCH.get_ptr_mut(0)?;
    let h = unsafe { &mut *h };
    h.info = NetInfo::zeroed();
    fill_from_sk(&mut h.info, sk, &off);
    if h.info.protocol != IPPROTO_TCP {
        return None;
    }
    h.info.old_state = old;
    h.info.new_state = new;
    // Softirq context: the owner is the process seen using this sock (or, for a connection
    // not accepted yet, listening on its port), not the current task.
    let owner = match NET_OWNER.get_ptr(sk as u64) {
        Some(o) => Some(o),
        None if old == TCP_SYN_RECV => NET_LISTENER.get_ptr(h.info.sport),
        None => None,
    };
    match owner {
        Some(o) if unsafe { (*o).pid } == self_tgid() => return None,
        Some(o) => h.header = unsafe { *o },
        None => {
            h.header = EventHeader::zeroed();
            h.header.flags = FLAG_NO_PROCESS;
        }
    }
    h.header.kind = EventKind::NetState as u32;
    h.header.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    emit(EventKind::NetState, &*h);
    if new == TCP_CLOSE {
        let _ = NET_OWNER.remove(sk as u64);
    }
    Some(())
}
