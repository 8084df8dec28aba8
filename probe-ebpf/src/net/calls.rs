//! connect, accept, bind, listen and close: the entry starts a per-thread pending record, the
//! exit completes it with the result and what the socket looks like then.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{map, tracepoint},
    maps::{LruHashMap, PerCpuArray},
    programs::TracePointContext,
};
use probe_common::{
    EventHeader, EventKind, KernelOffsets, NetHead, NetInfo, NET_ADDR_LOCAL, NET_HAS_RET,
};

use super::recv::connect_to_dns;
use super::sock::{fill_from_fd, read_user_addr, refill, socket_of_fd, IPPROTO_TCP};
use super::{remember_owner, NET_LISTENER};
use crate::common::{emit, enabled, fill_header, sys_arg, sys_ret};
use crate::kernel::{current_task, offsets};

const EAGAIN: i64 = 11;

/// What a thread's pending syscall has gathered at entry, completed at exit.
#[map]
static NET_PENDING: LruHashMap<u32, NetHead> = LruHashMap::with_max_entries(8192, 0);

/// Scratch for building a pending record (too large for the stack).
#[map]
static NET_HEAD_SCRATCH: PerCpuArray<NetHead> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

/// Starts a pending record for the current thread; `f` adds what entry knows.
#[inline(always)]
fn begin(kind: EventKind, fd: i64, f: impl FnOnce(&mut NetHead, &KernelOffsets)) -> Option<()> {
    let off = offsets();
    let h = NET_HEAD_SCRATCH.get_ptr_mut(0)?;
    let h = unsafe { &mut *h };
    fill_header(&mut h.header, kind, current_task());
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

// ---- connect ----

#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn net_enter_connect(ctx: TracePointContext) -> u32 {
    let _ = try_enter_connect(&ctx);
    0
}

fn try_enter_connect(ctx: &TracePointContext) -> Option<()> {
    if enabled(EventKind::NetDns).is_some() {
        connect_to_dns(sys_arg(ctx, 1), sys_arg(ctx, 2));
    }
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
