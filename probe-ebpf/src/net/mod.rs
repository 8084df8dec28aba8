//! Network: connect/accept/bind/listen/close paired per thread from the syscall tracepoints, UDP
//! destinations and DNS payloads from sendto/sendmsg/sendmmsg, and TCP state changes from
//! `inet_sock_set_state`. Addresses come from the kernel's `struct sock` (offsets from BTF) and
//! from the sockaddr the caller passed; userspace turns the raw bytes into JSON.
//!
//! `calls` pairs the connect/accept/bind/listen/close syscalls, `send` reads sends (DNS and
//! UDP destinations), `recv` reads DNS responses, `state` reports TCP state changes and `sock`
//! reads a socket out of the kernel for all of them. This module holds who owns a sock, which
//! they all record or read, and which processes talk DNS.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_ktime_get_ns, bpf_probe_read_user},
    },
    macros::map,
    maps::{LruHashMap, PerCpuArray},
};
use probe_common::{EventHeader, NetEvent};

mod calls;
mod recv;
mod send;
pub(crate) mod sock;
mod state;

const DNS_PORT: u16 = 53;

/// Scratch for records with a payload.
#[map]
static NET_SCRATCH: PerCpuArray<NetEvent> = PerCpuArray::with_max_entries(1, 0);

/// Processes that talked to a DNS server lately (a query sent, or a connect to port 53), and
/// when: only their reads are looked at for responses, so any other process's `read` costs
/// one lookup here.
#[map]
static DNS_CLIENTS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(8192, 0);

/// Marks the current process as a DNS client now.
#[inline(always)]
fn mark_dns_client() {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let now = unsafe { bpf_ktime_get_ns() };
    let _ = DNS_CLIENTS.insert(tgid, now, 0);
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
