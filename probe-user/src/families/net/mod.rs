//! The net family: socket syscalls (connect, accept, bind, listen, close, sends), TCP state
//! changes and DNS questions; its hooks and its decoder.
pub mod decode;

use probe_common::EventKind;

use crate::kernel::hook::{syscall, Attach, Hook};

/// The net family's hooks.
pub const HOOKS: &[Hook] = &[
    syscall(
        "net_enter_connect",
        "sys_enter_connect",
        &[EventKind::NetConnect],
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
    Hook {
        program: "net_inet_sock_set_state",
        attach: Attach::RawTracePoint("inet_sock_set_state"),
        kinds: &[EventKind::NetState],
    },
];
