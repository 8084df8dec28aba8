//! Network: connect/accept/bind/listen/close paired per thread from the syscall tracepoints, UDP
//! destinations and DNS payloads from sendto/sendmsg/sendmmsg, and TCP state changes from
//! `inet_sock_set_state`. Addresses come from the kernel's `struct sock` (offsets from BTF) and
//! from the sockaddr the caller passed; userspace turns the raw bytes into JSON.
//!
//! `calls` pairs the connect/accept/bind/listen/close syscalls, `send` reads sends (DNS and
//! UDP destinations), `state` reports TCP state changes and `sock` reads a socket out of the
//! kernel for all of them. This module holds who owns a sock, which they all record or read.
use aya_ebpf::{macros::map, maps::LruHashMap};
use probe_common::EventHeader;

mod calls;
mod send;
mod sock;
mod state;

/// The process that last used a `struct sock` (connect, accept, bind, listen, send): TCP state
/// changes run in softirq context, where the current task is whoever happened to be running.
#[map]
static NET_OWNER: LruHashMap<u64, EventHeader> = LruHashMap::with_max_entries(16384, 0);

/// The process listening on a local port: owner of server-side connections before accept.
#[map]
static NET_LISTENER: LruHashMap<u16, EventHeader> = LruHashMap::with_max_entries(4096, 0);

#[inline(always)]
fn remember_owner(sk: Option<*const u8>, header: &EventHeader) {
    if let Some(sk) = sk {
        let _ = NET_OWNER.insert(sk as u64, header, 0);
    }
}
