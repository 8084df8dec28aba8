//! The open family: open, openat, openat2 and creat.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_probe_read_user;
use probe_common::{EventKind, FileSyscall, AT_FDCWD};

use super::record::{fd, file_syscall, Args};
use super::{O_CREAT, O_TMPFILE_BIT, O_TRUNC, O_WRONLY};
use crate::common::sys_arg;

#[inline(always)]
fn open_kind(flags: u32) -> EventKind {
    if flags & (O_CREAT | O_TMPFILE_BIT) != 0 {
        EventKind::FileCreate
    } else {
        EventKind::FileOpen
    }
}

file_syscall!(file_enter_open, file_exit_open, FileSyscall::Open, |c| {
    let flags = sys_arg(c, 1) as u32;
    let mut a = Args::new(FileSyscall::Open, open_kind(flags), AT_FDCWD, sys_arg(c, 0));
    a.flags = flags;
    a.mode = sys_arg(c, 2) as u32;
    a
});

file_syscall!(
    file_enter_openat,
    file_exit_openat,
    FileSyscall::Openat,
    |c| {
        let flags = sys_arg(c, 2) as u32;
        let mut a = Args::new(
            FileSyscall::Openat,
            open_kind(flags),
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.flags = flags;
        a.mode = sys_arg(c, 3) as u32;
        a
    }
);

file_syscall!(
    file_enter_openat2,
    file_exit_openat2,
    FileSyscall::Openat2,
    |c| {
        // struct open_how { u64 flags; u64 mode; u64 resolve; } in user memory.
        let mut how = [0u64; 2];
        let _ = unsafe {
            bpf_probe_read_user(
                how.as_mut_ptr() as *mut c_void,
                16,
                sys_arg(c, 2) as *const c_void,
            )
        };
        let flags = how[0] as u32;
        let mut a = Args::new(
            FileSyscall::Openat2,
            open_kind(flags),
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.flags = flags;
        a.mode = how[1] as u32;
        a
    }
);

file_syscall!(file_enter_creat, file_exit_creat, FileSyscall::Creat, |c| {
    let mut a = Args::new(
        FileSyscall::Creat,
        EventKind::FileCreate,
        AT_FDCWD,
        sys_arg(c, 0),
    );
    a.flags = O_CREAT | O_WRONLY | O_TRUNC;
    a.mode = sys_arg(c, 1) as u32;
    a
});
