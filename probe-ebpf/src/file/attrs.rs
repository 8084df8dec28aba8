//! Calls that change a file but not its name: chmod, chown and truncate.
use probe_common::{EventKind, FileSyscall, AT_FDCWD};

use super::record::{fd, file_syscall, Args};
use super::AT_SYMLINK_NOFOLLOW;
use crate::common::sys_arg;

file_syscall!(file_enter_chmod, file_exit_chmod, FileSyscall::Chmod, |c| {
    let mut a = Args::new(
        FileSyscall::Chmod,
        EventKind::FileChmod,
        AT_FDCWD,
        sys_arg(c, 0),
    );
    a.mode = sys_arg(c, 1) as u32;
    a
});

file_syscall!(
    file_enter_fchmod,
    file_exit_fchmod,
    FileSyscall::Fchmod,
    |c| {
        let mut a = Args::new(
            FileSyscall::Fchmod,
            EventKind::FileChmod,
            fd(sys_arg(c, 0)),
            0,
        );
        a.mode = sys_arg(c, 1) as u32;
        a
    }
);

file_syscall!(
    file_enter_fchmodat,
    file_exit_fchmodat,
    FileSyscall::Fchmodat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Fchmodat,
            EventKind::FileChmod,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.mode = sys_arg(c, 2) as u32;
        a
    }
);

file_syscall!(
    file_enter_fchmodat2,
    file_exit_fchmodat2,
    FileSyscall::Fchmodat2,
    |c| {
        let mut a = Args::new(
            FileSyscall::Fchmodat2,
            EventKind::FileChmod,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.mode = sys_arg(c, 2) as u32;
        a.flags = sys_arg(c, 3) as u32;
        a
    }
);

file_syscall!(file_enter_chown, file_exit_chown, FileSyscall::Chown, |c| {
    let mut a = Args::new(
        FileSyscall::Chown,
        EventKind::FileChown,
        AT_FDCWD,
        sys_arg(c, 0),
    );
    a.uid = sys_arg(c, 1) as u32;
    a.gid = sys_arg(c, 2) as u32;
    a
});

file_syscall!(
    file_enter_lchown,
    file_exit_lchown,
    FileSyscall::Lchown,
    |c| {
        let mut a = Args::new(
            FileSyscall::Lchown,
            EventKind::FileChown,
            AT_FDCWD,
            sys_arg(c, 0),
        );
        a.uid = sys_arg(c, 1) as u32;
        a.gid = sys_arg(c, 2) as u32;
        a.flags = AT_SYMLINK_NOFOLLOW;
        a
    }
);

file_syscall!(
    file_enter_fchown,
    file_exit_fchown,
    FileSyscall::Fchown,
    |c| {
        let mut a = Args::new(
            FileSyscall::Fchown,
            EventKind::FileChown,
            fd(sys_arg(c, 0)),
            0,
        );
        a.uid = sys_arg(c, 1) as u32;
        a.gid = sys_arg(c, 2) as u32;
        a
    }
);

file_syscall!(
    file_enter_fchownat,
    file_exit_fchownat,
    FileSyscall::Fchownat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Fchownat,
            EventKind::FileChown,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.uid = sys_arg(c, 2) as u32;
        a.gid = sys_arg(c, 3) as u32;
        a.flags = sys_arg(c, 4) as u32;
        a
    }
);

file_syscall!(
    file_enter_truncate,
    file_exit_truncate,
    FileSyscall::Truncate,
    |c| {
        let mut a = Args::new(
            FileSyscall::Truncate,
            EventKind::FileTruncate,
            AT_FDCWD,
            sys_arg(c, 0),
        );
        a.length = sys_arg(c, 1) as i64;
        a
    }
);

file_syscall!(
    file_enter_ftruncate,
    file_exit_ftruncate,
    FileSyscall::Ftruncate,
    |c| {
        let mut a = Args::new(
            FileSyscall::Ftruncate,
            EventKind::FileTruncate,
            fd(sys_arg(c, 0)),
            0,
        );
        a.length = sys_arg(c, 1) as i64;
        a
    }
);
