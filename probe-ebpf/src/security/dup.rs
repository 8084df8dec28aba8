//! Sockets in odd places: a socket's fd duplicated onto stdin, stdout or stderr (dup2, dup3,
//! fcntl F_DUPFD: a reverse shell), and raw and packet sockets (socket(2) of AF_PACKET, or
//! SOCK_RAW on AF_INET/AF_INET6). Both are `NetHead` records: the socket's `NetInfo`, with the
//! old fd in `fd` and the new one in `arg`.
use aya_ebpf::{
    macros::{btf_map, tracepoint},
    programs::TracePointContext,
};
use probe_common::{EventKind, NetHead, NetInfo, NET_HAS_RET};

use crate::common::{count_loss, emit, enabled, fill_header, kind_enabled, sys_arg, sys_ret};
use crate::kernel::{current_task, offsets};
use crate::maps::TaskStorage;
use crate::net::sock::{fill_from_fd, socket_of_fd, AF_INET, AF_INET6};

/// A thread's dup or socket call in flight (`header.kind` 0: none).
#[btf_map]
static SEC_NET_PENDING: TaskStorage<NetHead> = TaskStorage::new();

const F_DUPFD: u64 = 0;
const F_DUPFD_CLOEXEC: u64 = 1030;
const AF_PACKET: u64 = 17;
const SOCK_RAW: u64 = 3;
/// `SOCK_NONBLOCK` and `SOCK_CLOEXEC` share the type argument.
const SOCK_TYPE_MASK: u64 = 0xf;

#[inline(always)]
fn disarm() {
    if let Some(p) = SEC_NET_PENDING.current() {
        unsafe { (*p).header.kind = 0 };
    }
}

/// Starts the thread's pending record of `kind`; `f` fills its `NetInfo`.
#[inline(always)]
fn begin(kind: EventKind, f: impl FnOnce(&mut NetInfo)) {
    let Some(p) = SEC_NET_PENDING.current_or_create() else {
        count_loss(kind);
        return;
    };
    let p = unsafe { &mut *p };
    p.info = NetInfo::zeroed();
    f(&mut p.info);
    // Last: the kind arms the record.
    fill_header(&mut p.header, kind, current_task());
}

/// Completes the pending record of `kind` with the result; `f` may drop it.
#[inline(always)]
fn finish(ctx: &TracePointContext, kind: EventKind, f: impl FnOnce(&mut NetInfo, i64) -> bool) {
    let Some(p) = SEC_NET_PENDING.current() else {
        return;
    };
    let p = unsafe { &mut *p };
    if p.header.kind != kind as u32 {
        return;
    }
    p.header.kind = 0;
    if kind_enabled(kind).is_none() {
        return;
    }
    let ret = sys_ret(ctx);
    p.info.ret = ret;
    p.info.nflags |= NET_HAS_RET;
    if f(&mut p.info, ret) {
        p.header.kind = kind as u32;
        emit(kind, &*p);
        p.header.kind = 0;
    }
}

/// A dup of `oldfd` onto `newfd` (-1: the kernel picks it, fcntl): wanted when the new fd may
/// be 0, 1 or 2 and the old one is a socket.
#[inline(always)]
fn dup_enter(oldfd: u64, newfd: i64, lowest: u64) {
    if enabled(EventKind::ProcessDup).is_none() || lowest > 2 || newfd > 2 || oldfd as i64 == newfd
    {
        disarm();
        return;
    }
    let off = offsets();
    let fd = oldfd as i32 as i64;
    if socket_of_fd(fd, &off).is_none() {
        disarm();
        return;
    }
    begin(EventKind::ProcessDup, |info| {
        info.fd = fd as i32;
        info.arg = newfd as u64;
        let _ = fill_from_fd(info, fd, &off);
    });
}

#[inline(always)]
fn dup_exit(ctx: &TracePointContext) {
    finish(ctx, EventKind::ProcessDup, |info, ret| {
        if ret >= 0 {
            info.arg = ret as u64;
        }
        // fcntl picks the fd: only a landing on 0-2 is one.
        (info.arg as i64) <= 2
    });
}

#[tracepoint(category = "syscalls", name = "sys_enter_dup2")]
pub fn sec_enter_dup2(ctx: TracePointContext) -> u32 {
    dup_enter(sys_arg(&ctx, 0), sys_arg(&ctx, 1) as i32 as i64, 0);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_dup2")]
pub fn sec_exit_dup2(ctx: TracePointContext) -> u32 {
    dup_exit(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_dup3")]
pub fn sec_enter_dup3(ctx: TracePointContext) -> u32 {
    dup_enter(sys_arg(&ctx, 0), sys_arg(&ctx, 1) as i32 as i64, 0);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_dup3")]
pub fn sec_exit_dup3(ctx: TracePointContext) -> u32 {
    dup_exit(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_fcntl")]
pub fn sec_enter_fcntl(ctx: TracePointContext) -> u32 {
    // Most fcntl calls get or set flags: the command is checked before anything else.
    let cmd = sys_arg(&ctx, 1) & 0xffff_ffff;
    if cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC {
        dup_enter(sys_arg(&ctx, 0), -1, sys_arg(&ctx, 2) & 0xffff_ffff);
    } else {
        disarm();
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_fcntl")]
pub fn sec_exit_fcntl(ctx: TracePointContext) -> u32 {
    dup_exit(&ctx);
    0
}

/// socket(family, type, protocol): only packet sockets and raw IP sockets.
#[tracepoint(category = "syscalls", name = "sys_enter_socket")]
pub fn sec_enter_socket(ctx: TracePointContext) -> u32 {
    let family = sys_arg(&ctx, 0) & 0xffff_ffff;
    let ty = sys_arg(&ctx, 1) & SOCK_TYPE_MASK;
    let raw_ip = ty == SOCK_RAW && (family == AF_INET as u64 || family == AF_INET6 as u64);
    if (family != AF_PACKET && !raw_ip) || enabled(EventKind::NetSocket).is_none() {
        disarm();
        return 0;
    }
    let protocol = sys_arg(&ctx, 2);
    begin(EventKind::NetSocket, |info| {
        info.family = family as u16;
        info.sock_type = ty as u16;
        info.protocol = protocol as u16;
    });
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_socket")]
pub fn sec_exit_socket(ctx: TracePointContext) -> u32 {
    finish(&ctx, EventKind::NetSocket, |info, ret| {
        if ret >= 0 {
            info.fd = ret as i32;
        }
        true
    });
    0
}
