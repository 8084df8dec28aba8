//! Calls that set a file's times (timestomping): utimensat, futimesat, utimes and utime. The
//! times are read at entry, as passed; userspace knows each syscall's layout.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_probe_read_user;
use probe_common::{EventKind, FileSyscall, AT_FDCWD, FILE_TIMES_NULL, FILE_TIMES_UNREADABLE};

use super::record::{fd, file_syscall, Args};
use crate::common::sys_arg;

/// Copies `LEN` bytes of times at `ptr` into the call's arguments (NULL means "now").
#[inline(always)]
fn read_times<const LEN: u32>(a: &mut Args, ptr: u64) {
    if ptr == 0 {
        a.tflags |= FILE_TIMES_NULL;
        return;
    }
    let r = unsafe {
        bpf_probe_read_user(
            a.times.as_mut_ptr() as *mut c_void,
            LEN,
            ptr as *const c_void,
        )
    };
    if r != 0 {
        a.times = [0; 4];
        a.tflags |= FILE_TIMES_UNREADABLE;
    }
}

file_syscall!(
    file_enter_utimensat,
    file_exit_utimensat,
    FileSyscall::Utimensat,
    |c| {
        // A NULL path is futimens(fd): the call names the fd.
        let mut a = Args::new(
            FileSyscall::Utimensat,
            EventKind::FileUtime,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        read_times::<32>(&mut a, sys_arg(c, 2));
        a.flags = sys_arg(c, 3) as u32;
        a
    }
);

file_syscall!(
    file_enter_futimesat,
    file_exit_futimesat,
    FileSyscall::Futimesat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Futimesat,
            EventKind::FileUtime,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        read_times::<32>(&mut a, sys_arg(c, 2));
        a
    }
);

file_syscall!(
    file_enter_utimes,
    file_exit_utimes,
    FileSyscall::Utimes,
    |c| {
        let mut a = Args::new(
            FileSyscall::Utimes,
            EventKind::FileUtime,
            AT_FDCWD,
            sys_arg(c, 0),
        );
        read_times::<32>(&mut a, sys_arg(c, 1));
        a
    }
);

file_syscall!(file_enter_utime, file_exit_utime, FileSyscall::Utime, |c| {
    let mut a = Args::new(
        FileSyscall::Utime,
        EventKind::FileUtime,
        AT_FDCWD,
        sys_arg(c, 0),
    );
    // struct utimbuf { time_t actime; time_t modtime; }
    read_times::<16>(&mut a, sys_arg(c, 1));
    a
});
