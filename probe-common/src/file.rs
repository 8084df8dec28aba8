//! Wire types of the `file.*` events: one record per file syscall, captured at `sys_enter_*`
//! (paths from user memory) and completed at `sys_exit_*` (the result).
use crate::{EventHeader, PATH_MAX};

/// `Array<FileConfig>` with one entry: file-specific run-time settings.
pub const MAP_FILE_CONFIG: &str = "FILE_CONFIG";
/// `LpmTrie<[u8; PREFIX_KEY_LEN], u8>`: path prefixes (each stored with a trailing `/`) mapped to
/// [`PREFIX_INCLUDE`] or [`PREFIX_EXCLUDE`]; the longest match decides.
pub const MAP_FILE_PREFIXES: &str = "FILE_PREFIXES";
/// Bytes of an LPM trie key (the kernel's maximum).
pub const PREFIX_KEY_LEN: usize = 256;
/// Trie value: paths under this prefix are reported.
pub const PREFIX_INCLUDE: u8 = 1;
/// Trie value: paths under this prefix are dropped.
pub const PREFIX_EXCLUDE: u8 = 2;

/// `FileConfig::flags`: report read-only opens too (off: only opens that may modify).
pub const FILE_CFG_READS: u32 = 1 << 0;
/// `FileConfig::flags`: include prefixes exist, so a path matching none of them is dropped.
pub const FILE_CFG_INCLUDE: u32 = 1 << 1;
/// `FileConfig::flags`: the prefix trie holds something (off: the kernel skips the check).
pub const FILE_CFG_PREFIXES: u32 = 1 << 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FileConfig {
    pub flags: u32,
    pub _pad0: u32,
}

/// `FileEvent::fflags`: the path did not fit in `PATH_MAX` bytes.
pub const FILE_PATH_TRUNCATED: u32 = 1 << 0;
/// `FileEvent::fflags`: the path could not be read from user memory.
pub const FILE_PATH_UNREADABLE: u32 = 1 << 1;
/// `FileEvent::fflags`: the second path (rename/link/symlink) did not fit.
pub const FILE_TARGET_TRUNCATED: u32 = 1 << 2;
/// `FileEvent::fflags`: the second path could not be read.
pub const FILE_TARGET_UNREADABLE: u32 = 1 << 3;
/// `FileEvent::fflags`: the record carries a second path at `data[PATH_MAX..]`.
pub const FILE_HAS_TARGET: u32 = 1 << 4;
/// `FileEvent::fflags`: the syscall works on an fd (`dirfd` holds it), no path was passed.
pub const FILE_BY_FD: u32 = 1 << 5;

/// `FileEvent::fflags`: `data` carries, after the paths, the directory `dirfd` names (the cwd
/// for `AT_FDCWD`) or the fd's own path for fd-based calls, resolved in the kernel.
pub const FILE_HAS_BASE: u32 = 1 << 6;
/// `FileEvent::fflags`: the base could not be resolved whole (too deep, too long, unlinked,
/// or a bad fd); userspace falls back to /proc.
pub const FILE_BASE_PARTIAL: u32 = 1 << 7;

/// `FileEvent::fflags`: after the base, the directory of the target's own dirfd.
pub const FILE_HAS_TARGET_BASE: u32 = 1 << 8;

/// `FileEvent::fflags`: utime calls: the times pointer was NULL (both times set to now).
pub const FILE_TIMES_NULL: u32 = 1 << 9;
/// `FileEvent::fflags`: utime calls: the times could not be read from user memory.
pub const FILE_TIMES_UNREADABLE: u32 = 1 << 10;

/// `AT_FDCWD`: a path relative to the current directory.
pub const AT_FDCWD: i32 = -100;

/// Which syscall produced a file event (more precise than the kind).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileSyscall {
    Open = 1,
    Openat = 2,
    Openat2 = 3,
    Creat = 4,
    Unlink = 5,
    Unlinkat = 6,
    Rmdir = 7,
    Rename = 8,
    Renameat = 9,
    Renameat2 = 10,
    Mkdir = 11,
    Mkdirat = 12,
    Chmod = 13,
    Fchmod = 14,
    Fchmodat = 15,
    Fchmodat2 = 16,
    Chown = 17,
    Fchown = 18,
    Lchown = 19,
    Fchownat = 20,
    Link = 21,
    Linkat = 22,
    Symlink = 23,
    Symlinkat = 24,
    Truncate = 25,
    Ftruncate = 26,
    Utimensat = 27,
    Futimesat = 28,
    Utimes = 29,
    Utime = 30,
}

impl FileSyscall {
    pub const ALL: &'static [FileSyscall] = &[
        FileSyscall::Open,
        FileSyscall::Openat,
        FileSyscall::Openat2,
        FileSyscall::Creat,
        FileSyscall::Unlink,
        FileSyscall::Unlinkat,
        FileSyscall::Rmdir,
        FileSyscall::Rename,
        FileSyscall::Renameat,
        FileSyscall::Renameat2,
        FileSyscall::Mkdir,
        FileSyscall::Mkdirat,
        FileSyscall::Chmod,
        FileSyscall::Fchmod,
        FileSyscall::Fchmodat,
        FileSyscall::Fchmodat2,
        FileSyscall::Chown,
        FileSyscall::Fchown,
        FileSyscall::Lchown,
        FileSyscall::Fchownat,
        FileSyscall::Link,
        FileSyscall::Linkat,
        FileSyscall::Symlink,
        FileSyscall::Symlinkat,
        FileSyscall::Truncate,
        FileSyscall::Ftruncate,
        FileSyscall::Utimensat,
        FileSyscall::Futimesat,
        FileSyscall::Utimes,
        FileSyscall::Utime,
    ];

    /// The syscall's name (also the suffix of its `syscalls:sys_enter_*` tracepoint).
    pub const fn name(self) -> &'static str {
        match self {
            FileSyscall::Open => "open",
            FileSyscall::Openat => "openat",
            FileSyscall::Openat2 => "openat2",
            FileSyscall::Creat => "creat",
            FileSyscall::Unlink => "unlink",
            FileSyscall::Unlinkat => "unlinkat",
            FileSyscall::Rmdir => "rmdir",
            FileSyscall::Rename => "rename",
            FileSyscall::Renameat => "renameat",
            FileSyscall::Renameat2 => "renameat2",
            FileSyscall::Mkdir => "mkdir",
            FileSyscall::Mkdirat => "mkdirat",
            FileSyscall::Chmod => "chmod",
            FileSyscall::Fchmod => "fchmod",
            FileSyscall::Fchmodat => "fchmodat",
            FileSyscall::Fchmodat2 => "fchmodat2",
            FileSyscall::Chown => "chown",
            FileSyscall::Fchown => "fchown",
            FileSyscall::Lchown => "lchown",
            FileSyscall::Fchownat => "fchownat",
            FileSyscall::Link => "link",
            FileSyscall::Linkat => "linkat",
            FileSyscall::Symlink => "symlink",
            FileSyscall::Symlinkat => "symlinkat",
            FileSyscall::Truncate => "truncate",
            FileSyscall::Ftruncate => "ftruncate",
            FileSyscall::Utimensat => "utimensat",
            FileSyscall::Futimesat => "futimesat",
            FileSyscall::Utimes => "utimes",
            FileSyscall::Utime => "utime",
        }
    }
}

impl TryFrom<u32> for FileSyscall {
    type Error = u32;

    fn try_from(v: u32) -> Result<Self, u32> {
        FileSyscall::ALL
            .iter()
            .copied()
            .find(|s| *s as u32 == v)
            .ok_or(v)
    }
}

/// `file.*`: fixed part, then `data`: the path (`path_len` bytes), then with `FILE_HAS_TARGET`
/// the second path (`target_len`), then with `FILE_HAS_BASE` the base directory (`base_len`),
/// then with `FILE_HAS_TARGET_BASE` the target's base directory (`target_base_len`).
/// The record ends right after the last of them.
///
/// Generic over the size of `data` so the kernel can keep a call in flight in a small record
/// of the same layout ([`FileEvent`] is the full-size one); only the bytes used are sent.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileRecord<const N: usize> {
    pub header: EventHeader,
    /// The syscall's return value (fd or 0 on success, `-errno` on failure).
    pub ret: i64,
    /// A [`FileSyscall`] value.
    pub syscall: u32,
    /// `FILE_*` bits.
    pub fflags: u32,
    /// Directory fd the path is relative to (`AT_FDCWD` for the cwd); the fd itself for
    /// fd-based calls (`FILE_BY_FD`).
    pub dirfd: i32,
    /// Directory fd of the second path.
    pub target_dirfd: i32,
    /// open flags, `AT_*` flags, or rename flags, depending on the syscall.
    pub flags: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// New length for truncate/ftruncate.
    pub length: i64,
    pub path_len: u32,
    pub target_len: u32,
    /// User addresses of the paths, kept so the exit hook can retry a read that faulted.
    pub path_ptr: u64,
    pub target_ptr: u64,
    pub base_len: u32,
    /// Bytes of the target's own base (its dirfd differs from the path's), after the base.
    pub target_base_len: u32,
    /// utime calls: the times as passed, raw (`timespec[2]` for utimensat, `timeval[2]` for
    /// utimes and futimesat, `utimbuf` in the first two slots for utime).
    pub times: [i64; 4],
    pub data: [u8; N],
}

/// A file record with room for three whole paths.
pub type FileEvent = FileRecord<FILE_DATA_LEN>;

/// Size of [`FileEvent::data`]: three whole paths (path, target, base).
pub const FILE_DATA_LEN: usize = 3 * PATH_MAX;
/// Bytes of [`FileEvent`] before `data`.
pub const FILE_FIXED_LEN: usize = core::mem::size_of::<EventHeader>() + 112;

const _: () = assert!(core::mem::size_of::<FileEvent>() == FILE_FIXED_LEN + FILE_DATA_LEN);
const _: () = assert!(core::mem::size_of::<FileConfig>() == 8);
const _: () = assert!(core::mem::size_of::<FileOffsets>() == 56);

/// Kernel struct offsets for turning a `struct path` into a string (cwd, dirfd, fd), from BTF.
/// The fd table walk to a `struct file` uses the common `KernelOffsets`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FileOffsets {
    pub task_fs: u32,
    pub fs_pwd: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub dentry_parent: u32,
    pub dentry_name: u32,
    pub qstr_len: u32,
    pub qstr_name: u32,
    pub vfsmount_root: u32,
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub file_path: u32,
    /// 0 until userspace has filled the struct: no walk is tried.
    pub valid: u32,
}

impl FileOffsets {
    pub const fn zeroed() -> Self {
        FileOffsets {
            task_fs: 0,
            fs_pwd: 0,
            path_mnt: 0,
            path_dentry: 0,
            dentry_parent: 0,
            dentry_name: 0,
            qstr_len: 0,
            qstr_name: 0,
            vfsmount_root: 0,
            mount_mnt: 0,
            mount_parent: 0,
            mount_mountpoint: 0,
            file_path: 0,
            valid: 0,
        }
    }
}
