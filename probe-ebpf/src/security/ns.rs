//! Mounts, namespaces and memfds: mount (source, target, fstype, flags), umount2, unshare and
//! setns (the `CLONE_NEW*` flags asked for), memfd_create (name and flags).
use probe_common::{EventKind, SecSyscall};

use super::{sec_syscall, Src, NO_STRINGS};

// mount(source, target, fstype, flags, data): the target (a path) takes the long slot.
sec_syscall!(
    sec_enter_mount,
    sec_exit_mount,
    "sys_enter_mount",
    "sys_exit_mount",
    SecSyscall::Mount,
    5,
    EventKind::FileMount,
    [Src::User(0), Src::User(2), Src::User(1)],
    |_p| true
);
// umount2(target, flags); its tracepoint is named after the kernel's `umount`.
sec_syscall!(
    sec_enter_umount,
    sec_exit_umount,
    "sys_enter_umount",
    "sys_exit_umount",
    SecSyscall::Umount2,
    2,
    EventKind::FileUmount,
    [Src::None, Src::None, Src::User(0)],
    |_p| true
);
sec_syscall!(
    sec_enter_unshare,
    sec_exit_unshare,
    "sys_enter_unshare",
    "sys_exit_unshare",
    SecSyscall::Unshare,
    1,
    EventKind::ProcessUnshare,
    NO_STRINGS,
    |_p| true
);
sec_syscall!(
    sec_enter_setns,
    sec_exit_setns,
    "sys_enter_setns",
    "sys_exit_setns",
    SecSyscall::Setns,
    2,
    EventKind::ProcessSetns,
    NO_STRINGS,
    |_p| true
);
sec_syscall!(
    sec_enter_memfd_create,
    sec_exit_memfd_create,
    "sys_enter_memfd_create",
    "sys_exit_memfd_create",
    SecSyscall::MemfdCreate,
    2,
    EventKind::ProcessMemfd,
    [Src::User(0), Src::None, Src::None],
    |_p| true
);
