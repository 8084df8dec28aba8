//! The decoded file record every stage reads (`file.*`).
use probe_common::FileSyscall;

/// A decoded file event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub syscall: FileSyscall,
    /// As passed, then made absolute by the path resolver (`enrich/paths.rs`) when it could be.
    pub path: Vec<u8>,
    pub path_truncated: bool,
    pub path_unreadable: bool,
    /// The path is absolute (as passed, or resolved from the cwd or an fd).
    pub path_resolved: bool,
    /// Second path: rename destination, link's existing file, symlink's text.
    pub target: Option<Vec<u8>>,
    pub target_truncated: bool,
    pub target_resolved: bool,
    /// The directory `dirfd` named (or the fd's own path), resolved by the kernel at the call.
    pub base: Option<Vec<u8>>,
    /// The directory of the target's own dirfd, when it differs from the path's.
    pub target_base: Option<Vec<u8>>,
    /// Where a relative path's directory came from: `kernel`, `proc`, or `None`.
    pub resolved_from: Option<&'static str>,
    /// Directory fd of `path` (`AT_FDCWD`), or the fd of an fd-based call.
    pub dirfd: i32,
    pub target_dirfd: i32,
    /// The call named an fd, not a path.
    pub by_fd: bool,
    pub flags: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub length: i64,
    /// Syscall return value: fd or 0, or `-errno`.
    pub ret: i64,
    /// utime calls: the times set, as passed (see [`FileTimes`]).
    pub times: Option<FileTimes>,
}

/// The times a utime call set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileTimes {
    /// `(seconds, nanoseconds)` for atime and mtime; `UTIME_NOW` / `UTIME_OMIT` in the
    /// nanoseconds of utimensat.
    Set([(i64, i64); 2]),
    /// A NULL times pointer: both set to now.
    Now,
    /// The times could not be read from the caller's memory.
    Unreadable,
}

impl FileRecord {
    pub fn is_open(&self) -> bool {
        matches!(
            self.syscall,
            FileSyscall::Open | FileSyscall::Openat | FileSyscall::Openat2 | FileSyscall::Creat
        )
    }

    /// `mode` as the records write it (`"0644"`, permission and setuid bits), when it means
    /// something for this call.
    pub fn mode_text(&self) -> Option<String> {
        self.has_mode()
            .then(|| format!("0{:03o}", self.mode & 0o7777))
    }

    /// Whether `mode` means something for this call.
    pub fn has_mode(&self) -> bool {
        match self.syscall {
            FileSyscall::Creat
            | FileSyscall::Mkdir
            | FileSyscall::Mkdirat
            | FileSyscall::Chmod
            | FileSyscall::Fchmod
            | FileSyscall::Fchmodat
            | FileSyscall::Fchmodat2 => true,
            FileSyscall::Open | FileSyscall::Openat | FileSyscall::Openat2 => {
                self.flags & (libc::O_CREAT as u32 | O_TMPFILE_BIT) != 0
            }
            _ => false,
        }
    }

    pub fn is_chown(&self) -> bool {
        matches!(
            self.syscall,
            FileSyscall::Chown | FileSyscall::Fchown | FileSyscall::Lchown | FileSyscall::Fchownat
        )
    }

    pub fn is_utime(&self) -> bool {
        matches!(
            self.syscall,
            FileSyscall::Utimensat
                | FileSyscall::Futimesat
                | FileSyscall::Utimes
                | FileSyscall::Utime
        )
    }

    pub fn is_truncate(&self) -> bool {
        matches!(self.syscall, FileSyscall::Truncate | FileSyscall::Ftruncate)
    }

    /// The second path names a place (rename, link), not a symlink's text.
    pub fn target_is_place(&self) -> bool {
        !matches!(self.syscall, FileSyscall::Symlink | FileSyscall::Symlinkat)
    }
}

/// `O_TMPFILE` includes `O_DIRECTORY`; its own bit alone says an unnamed file is created.
const O_TMPFILE_BIT: u32 = 0o20000000;
