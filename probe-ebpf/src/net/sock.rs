//! Reading a socket out of the kernel: fd to `struct socket` to `struct sock`, its family,
//! ports and addresses, and the sockaddr the caller passed.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_user};
use probe_common::{
    KernelOffsets, NetInfo, NET_ADDR_LOCAL, NET_HAS_ADDR, NET_HAS_SOCK, SOCKADDR_MAX,
};

use crate::common::bound;
use crate::kernel::{file_of_fd, read_kernel};

const AF_UNIX: u16 = 1;
pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;
pub(crate) const IPPROTO_TCP: u16 = 6;
pub(crate) const IPPROTO_UDP: u16 = 17;
const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;

/// The `struct socket` behind `fd` of the current task, or `None` when `fd` is not a socket
/// (`f_inode->i_mode` is `S_IFSOCK` only for sockets).
#[inline(always)]
pub(crate) fn socket_of_fd(fd: i64, off: &KernelOffsets) -> Option<*const u8> {
    socket_of_file(file_of_fd(fd, off)?, off)
}

/// The `struct socket` of `file`, when it is one.
#[inline(always)]
pub(crate) fn socket_of_file(file: *const u8, off: &KernelOffsets) -> Option<*const u8> {
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
pub(crate) fn peer_of_sk(sk: *const u8, off: &KernelOffsets) -> (u16, u16, [u8; 16]) {
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
pub(crate) fn fill_from_sk(info: &mut NetInfo, sk: *const u8, off: &KernelOffsets) {
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
                // `bound`: LLVM drops a plain mask after the min, and 6.1 then loses the range.
                let n = crate::common::bound((len.max(0) as u32).min(SOCKADDR_MAX as u32), 0x7f);
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
pub(crate) fn fill_from_fd(info: &mut NetInfo, fd: i64, off: &KernelOffsets) -> Option<*const u8> {
    fill_from_socket(info, socket_of_fd(fd, off)?, off)
}

/// Fills `info` from a `struct socket`; returns its `struct sock`.
#[inline(always)]
pub(crate) fn fill_from_socket(
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
pub(crate) fn refill(info: &mut NetInfo, off: &KernelOffsets) -> Option<*const u8> {
    let fd = info.fd as i64;
    fill_from_fd(info, fd, off)
}

/// Copies the caller's sockaddr (bounded by `SOCKADDR_MAX`).
#[inline(always)]
pub(crate) fn read_user_addr(info: &mut NetInfo, uaddr: u64, len: u64) {
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
