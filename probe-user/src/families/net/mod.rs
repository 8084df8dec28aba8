//! The net family: socket syscalls (connect, accept, bind, listen, close, sends), TCP state
//! changes and DNS questions; its hooks and its decoder.
pub mod decode;
pub mod dns;

use probe_common::EventKind;

use crate::kernel::hook::{syscall, Attach, Hook};

const DNS: &[EventKind] = &[EventKind::NetDns];

/// The net family's hooks.
pub const HOOKS: &[Hook] = &[
    // Also for DNS: a connect to port 53 marks a DNS client, whose reads are then looked at.
    syscall(
        "net_enter_connect",
        "sys_enter_connect",
        &[EventKind::NetConnect, EventKind::NetDns],
    ),
    syscall(
        "net_exit_connect",
        "sys_exit_connect",
        &[EventKind::NetConnect],
    ),
    syscall(
        "net_enter_accept",
        "sys_enter_accept",
        &[EventKind::NetAccept],
    ),
    syscall(
        "net_exit_accept",
        "sys_exit_accept",
        &[EventKind::NetAccept],
    ),
    syscall(
        "net_enter_accept4",
        "sys_enter_accept4",
        &[EventKind::NetAccept],
    ),
    syscall(
        "net_exit_accept4",
        "sys_exit_accept4",
        &[EventKind::NetAccept],
    ),
    syscall("net_enter_bind", "sys_enter_bind", &[EventKind::NetBind]),
    syscall("net_exit_bind", "sys_exit_bind", &[EventKind::NetBind]),
    syscall(
        "net_enter_listen",
        "sys_enter_listen",
        &[EventKind::NetListen],
    ),
    syscall(
        "net_exit_listen",
        "sys_exit_listen",
        &[EventKind::NetListen],
    ),
    syscall("net_enter_close", "sys_enter_close", &[EventKind::NetClose]),
    syscall("net_exit_close", "sys_exit_close", &[EventKind::NetClose]),
    syscall(
        "net_enter_sendto",
        "sys_enter_sendto",
        &[EventKind::NetDns, EventKind::NetSend],
    ),
    syscall(
        "net_enter_sendmsg",
        "sys_enter_sendmsg",
        &[EventKind::NetDns, EventKind::NetSend],
    ),
    syscall(
        "net_enter_sendmmsg",
        "sys_enter_sendmmsg",
        &[EventKind::NetDns, EventKind::NetSend],
    ),
    // DNS responses read from a port-53 peer.
    syscall("net_enter_recvfrom", "sys_enter_recvfrom", DNS),
    syscall("net_exit_recvfrom", "sys_exit_recvfrom", DNS),
    syscall("net_enter_recvmsg", "sys_enter_recvmsg", DNS),
    syscall("net_exit_recvmsg", "sys_exit_recvmsg", DNS),
    syscall("net_enter_recvmmsg", "sys_enter_recvmmsg", DNS),
    syscall("net_exit_recvmmsg", "sys_exit_recvmmsg", DNS),
    syscall("net_enter_read", "sys_enter_read", DNS),
    syscall("net_exit_read", "sys_exit_read", DNS),
    Hook {
        program: "net_inet_sock_set_state",
        attach: Attach::RawTracePoint("inet_sock_set_state"),
        kinds: &[EventKind::NetState],
    },
];
