//! Privilege changes: setuid, setreuid, setresuid, setfsuid and their gid twins, and capset.
//! The arguments are the ids asked for (-1: unchanged); userspace names them.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_probe_read_user;
use probe_common::{EventKind, SecSyscall, SEC_EXTRA_UNREADABLE, SEC_HAS_EXTRA};

use super::{sec_syscall, Pending, NO_STRINGS};

const UID: EventKind = EventKind::ProcessSetuid;
const GID: EventKind = EventKind::ProcessSetgid;

sec_syscall!(
    sec_enter_setuid,
    sec_exit_setuid,
    "sys_enter_setuid",
    "sys_exit_setuid",
    SecSyscall::Setuid,
    1,
    UID,
    NO_STRINGS,
    |_p| true
);
sec_syscall!(
    sec_enter_setreuid,
    sec_exit_setreuid,
    "sys_enter_setreuid",
    "sys_exit_setreuid",
    SecSyscall::Setreuid,
    2,
    UID,
    NO_STRINGS,
    |_p| true
);
sec_syscall!(
    sec_enter_setresuid,
    sec_exit_setresuid,
    "sys_enter_setresuid",
    "sys_exit_setresuid",
    SecSyscall::Setresuid,
    3,
    UID,
    NO_STRINGS,
    |_p| true
);
sec_syscall!(
    sec_enter_setfsuid,
    sec_exit_setfsuid,
    "sys_enter_setfsuid",
    "sys_exit_setfsuid",
    SecSyscall::Setfsuid,
    1,
    UID,
    NO_STRINGS,
    |_p| true
);
sec_syscall!(
    sec_enter_setgid,
    sec_exit_setgid,
    "sys_enter_setgid",
    "sys_exit_setgid",
    SecSyscall::Setgid,
    1,
    GID,
    NO_STRINGS,
    |_p| true
);
sec_syscall!(
    sec_enter_setregid,
    sec_exit_setregid,
    "sys_enter_setregid",
    "sys_exit_setregid",
    SecSyscall::Setregid,
    2,
    GID,
    NO_STRINGS,
    |_p| true
);
sec_syscall!(
    sec_enter_setresgid,
    sec_exit_setresgid,
    "sys_enter_setresgid",
    "sys_exit_setresgid",
    SecSyscall::Setresgid,
    3,
    GID,
    NO_STRINGS,
    |_p| true
);
sec_syscall!(
    sec_enter_setfsgid,
    sec_exit_setfsgid,
    "sys_enter_setfsgid",
    "sys_exit_setfsgid",
    SecSyscall::Setfsgid,
    1,
    GID,
    NO_STRINGS,
    |_p| true
);

/// capset(hdrp, datap): the header (version, pid) goes to `extra[3]`, the two
/// `{effective, permitted, inheritable}` words of the data to `extra[0..3]`.
#[inline(always)]
fn capset_args(p: &mut Pending) -> bool {
    let read = |dst: *mut u64, len: u32, src: u64| unsafe {
        src != 0 && bpf_probe_read_user(dst as *mut c_void, len, src as *const c_void) == 0
    };
    let ok = read(p.extra.as_mut_ptr().wrapping_add(3), 8, p.args[0])
        && read(p.extra.as_mut_ptr(), 24, p.args[1]);
    p.sflags |= if ok {
        SEC_HAS_EXTRA
    } else {
        p.extra = [0; 4];
        SEC_EXTRA_UNREADABLE
    };
    true
}

sec_syscall!(
    sec_enter_capset,
    sec_exit_capset,
    "sys_enter_capset",
    "sys_exit_capset",
    SecSyscall::Capset,
    2,
    EventKind::ProcessCapset,
    NO_STRINGS,
    |p| capset_args(p)
);
