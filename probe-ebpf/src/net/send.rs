//! sendto, sendmsg and sendmmsg: `net.dns` with the payload of a message to port 53, and
//! `net.send` once per UDP socket and destination, remembered so a repeat costs a few reads.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::bpf_probe_read_user,
    macros::{btf_map, map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};
use probe_common::{
    EventKind, KernelOffsets, NetEvent, NetInfo, NET_DATA_LEN, NET_FIXED_LEN, NET_HAS_ADDR,
    NET_PAYLOAD_TCP,
};

use super::sock::{
    fill_from_socket, peer_of_sk, read_user_addr, socket_of_file, AF_INET, AF_INET6, IPPROTO_TCP,
    IPPROTO_UDP,
};
use super::{mark_dns_client, read_user, remember_owner, DNS_PORT, NET_SCRATCH};
use crate::common::{bound, emit, emit_bytes, enabled, fill_header, sys_arg};
use crate::kernel::{current_task, file_of_fd, offsets, read_kernel};
use crate::maps::TaskStorage;

/// Messages of one sendmmsg call that are looked at (glibc sends A and AAAA as two).
const MMSG_MAX: u32 = 4;
/// `sizeof(struct mmsghdr)` on 64-bit: a `user_msghdr` (56 bytes) and `msg_len`, padded.
const MMSGHDR_SIZE: u64 = 64;

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
        fill_header(&mut ev.head.header, EventKind::NetDns, current_task());
        remember_owner(Some(sk), &ev.head.header);
        mark_dns_client();
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
    fill_header(&mut ev.head.header, EventKind::NetSend, current_task());
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
