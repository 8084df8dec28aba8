//! TCP state changes, from softirq: reported under the owner the other hooks recorded.
use aya_ebpf::{
    helpers::generated::bpf_ktime_get_boot_ns,
    macros::{map, raw_tracepoint},
    maps::PerCpuArray,
    programs::RawTracePointContext,
};
use probe_common::{EventHeader, EventKind, NetHead, NetInfo, FLAG_NO_PROCESS};

use super::sock::{fill_from_sk, IPPROTO_TCP};
use super::{NET_LISTENER, NET_OWNER};
use crate::common::{emit, kind_enabled, self_tgid};
use crate::kernel::offsets;

const TCP_ESTABLISHED: u8 = 1;
const TCP_SYN_RECV: u8 = 3;
const TCP_CLOSE: u8 = 7;

/// Scratch for `net.state`: it runs in softirq, which may interrupt a syscall program that is
/// using `NET_HEAD_SCRATCH` on the same CPU.
#[map]
static NET_STATE_SCRATCH: PerCpuArray<NetHead> = PerCpuArray::with_max_entries(1, 0);

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
