//! Calls that add, remove or move names: unlink, rmdir, rename, mkdir, link and symlink.
use probe_common::{EventKind, FileSyscall, AT_FDCWD};

use super::record::{fd, file_syscall, Args};
use super::AT_REMOVEDIR;
use crate::common::sys_arg;

file_syscall!(
    file_enter_unlink,
    file_exit_unlink,
    FileSyscall::Unlink,
    |c| Args::new(
        FileSyscall::Unlink,
        EventKind::FileUnlink,
        AT_FDCWD,
        sys_arg(c, 0)
    )
);

file_syscall!(
    file_enter_unlinkat,
    file_exit_unlinkat,
    FileSyscall::Unlinkat,
    |c| {
        let flags = sys_arg(c, 2) as u32;
        let kind = if flags & AT_REMOVEDIR != 0 {
            EventKind::FileRmdir
        } else {
            EventKind::FileUnlink
        };
        let mut a = Args::new(
            FileSyscall::Unlinkat,
            kind,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.flags = flags;
        a
    }
);

file_syscall!(file_enter_rmdir, file_exit_rmdir, FileSyscall::Rmdir, |c| {
    Args::new(
        FileSyscall::Rmdir,
        EventKind::FileRmdir,
        AT_FDCWD,
        sys_arg(c, 0),
    )
});

file_syscall!(
    file_enter_rename,
    file_exit_rename,
    FileSyscall::Rename,
    |c| {
        let mut a = Args::new(
            FileSyscall::Rename,
            EventKind::FileRename,
            AT_FDCWD,
            sys_arg(c, 0),
        );
        a.target = sys_arg(c, 1);
        a
    }
);

file_syscall!(
    file_enter_renameat,
    file_exit_renameat,
    FileSyscall::Renameat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Renameat,
            EventKind::FileRename,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.target_dirfd = fd(sys_arg(c, 2));
        a.target = sys_arg(c, 3);
        a
    }
);

file_syscall!(
    file_enter_renameat2,
    file_exit_renameat2,
    FileSyscall::Renameat2,
    |c| {
        let mut a = Args::new(
            FileSyscall::Renameat2,
            EventKind::FileRename,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.target_dirfd = fd(sys_arg(c, 2));
        a.target = sys_arg(c, 3);
        a.flags = sys_arg(c, 4) as u32;
        a
    }
);

file_syscall!(file_enter_mkdir, file_exit_mkdir, FileSyscall::Mkdir, |c| {
    let mut a = Args::new(
        FileSyscall::Mkdir,
        EventKind::FileMkdir,
        AT_FDCWD,
        sys_arg(c, 0),
    );
    a.mode = sys_arg(c, 1) as u32;
    a
});

file_syscall!(
    file_enter_mkdirat,
    file_exit_mkdirat,
    FileSyscall::Mkdirat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Mkdirat,
            EventKind::FileMkdir,
            fd(sys_arg(c, 0)),
            sys_arg(c, 1),
        );
        a.mode = sys_arg(c, 2) as u32;
        a
    }
);

// link(old, new): `path` is the new name, `target_path` the existing file it points to.
file_syscall!(file_enter_link, file_exit_link, FileSyscall::Link, |c| {
    let mut a = Args::new(
        FileSyscall::Link,
        EventKind::FileLink,
        AT_FDCWD,
        sys_arg(c, 1),
    );
    a.target = sys_arg(c, 0);
    a
});

file_syscall!(
    file_enter_linkat,
    file_exit_linkat,
    FileSyscall::Linkat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Linkat,
            EventKind::FileLink,
            fd(sys_arg(c, 2)),
            sys_arg(c, 3),
        );
        a.target_dirfd = fd(sys_arg(c, 0));
        a.target = sys_arg(c, 1);
        a.flags = sys_arg(c, 4) as u32;
        a
    }
);

// symlink(target, linkpath): `target_path` is the link's text, kept as written.
file_syscall!(
    file_enter_symlink,
    file_exit_symlink,
    FileSyscall::Symlink,
    |c| {
        let mut a = Args::new(
            FileSyscall::Symlink,
            EventKind::FileSymlink,
            AT_FDCWD,
            sys_arg(c, 1),
        );
        a.target = sys_arg(c, 0);
        a
    }
);

file_syscall!(
    file_enter_symlinkat,
    file_exit_symlinkat,
    FileSyscall::Symlinkat,
    |c| {
        let mut a = Args::new(
            FileSyscall::Symlinkat,
            EventKind::FileSymlink,
            fd(sys_arg(c, 1)),
            sys_arg(c, 2),
        );
        a.target = sys_arg(c, 0);
        a
    }
);
