//! The file family: its options and kernel maps (prefix trie, read-only opens), BTF offsets
//! for the kernel-side path walk, its hooks, its decoder and its names.
pub mod decode;
pub mod names;
pub mod prefix;

use aya::{
    maps::{lpm_trie::Key, Array, LpmTrie},
    Ebpf,
};
use probe_common::{
    EventKind, FileConfig, FileOffsets, FILE_CFG_INCLUDE, FILE_CFG_PREFIXES, FILE_CFG_READS,
    MAP_FILE_CONFIG, MAP_FILE_PREFIXES, PREFIX_EXCLUDE, PREFIX_INCLUDE, PREFIX_KEY_LEN,
};

use crate::kernel::{
    btf::Btf,
    hook::{syscall, Hook, MapWriteError},
};
use prefix::normalize;

/// Excluded by default: the null device and terminals take most modifying opens on a busy
/// node (every `>/dev/null` redirect) and say nothing about the system's state.
pub const DEFAULT_EXCLUDE: &str = "/dev/null,/dev/pts";
/// Most prefixes the kernel trie holds.
pub const MAX_PREFIXES: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileOptionsError {
    #[error("file path prefix {0:?} must be absolute (start with /)")]
    NotAbsolute(String),
    #[error("file path prefix {0:?} is longer than {1} bytes")]
    TooLong(String, usize),
    #[error("more than {MAX_PREFIXES} file path prefixes")]
    TooMany,
}

/// `tprobe run` flags for file events (flattened into the run arguments).
#[derive(clap::Args, Debug, Clone)]
pub struct FileArgs {
    /// Report file events only for paths under these prefixes (comma-separated, e.g.
    /// `/etc,/usr`). Default: everywhere.
    #[arg(long, value_delimiter = ',')]
    pub file_include: Vec<String>,
    /// Drop file events for paths under these prefixes (comma-separated; the longest matching
    /// include/exclude prefix wins). Pass `--file-exclude ''` to exclude nothing.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_EXCLUDE)]
    pub file_exclude: Vec<String>,
    /// Also report read-only opens (`file.open` without write access, O_CREAT or O_TRUNC).
    /// Off by default: on a busy node they outnumber everything else.
    #[arg(long)]
    pub file_reads: bool,
}

impl FileArgs {
    pub fn into_options(self) -> Result<FileOptions, FileOptionsError> {
        let mut prefixes = Vec::new();
        for (list, include) in [(self.file_include, true), (self.file_exclude, false)] {
            for p in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
                prefixes.push((normalize_prefix(p)?, include));
            }
        }
        if prefixes.len() > MAX_PREFIXES {
            return Err(FileOptionsError::TooMany);
        }
        Ok(FileOptions {
            prefixes,
            reads: self.file_reads,
        })
    }
}

/// `/etc/` -> `/etc`, `/` stays `/`; lexical clean-up like every path the filter sees.
fn normalize_prefix(p: &str) -> Result<Vec<u8>, FileOptionsError> {
    if !p.starts_with('/') {
        return Err(FileOptionsError::NotAbsolute(p.to_owned()));
    }
    let n = normalize(p.as_bytes());
    // Stored with a trailing `/` in a trie key of PREFIX_KEY_LEN bytes.
    if n.len() + 1 > PREFIX_KEY_LEN {
        return Err(FileOptionsError::TooLong(p.to_owned(), PREFIX_KEY_LEN - 1));
    }
    Ok(n)
}

/// File settings of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOptions {
    /// (normalised absolute prefix, include?)
    pub prefixes: Vec<(Vec<u8>, bool)>,
    /// Report read-only opens.
    pub reads: bool,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileArgs {
            file_include: Vec::new(),
            file_exclude: DEFAULT_EXCLUDE.split(',').map(String::from).collect(),
            file_reads: false,
        }
        .into_options()
        .expect("default prefixes are valid")
    }
}

impl FileOptions {
    /// For `probe.start`.
    pub fn summary(&self) -> serde_json::Value {
        let list = |inc: bool| {
            self.prefixes
                .iter()
                .filter(|(_, i)| *i == inc)
                .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
        };
        serde_json::json!({ "include": list(true), "exclude": list(false), "reads": self.reads })
    }

    pub fn has_include(&self) -> bool {
        self.prefixes.iter().any(|(_, i)| *i)
    }

    /// The kernel map key of a prefix: the prefix and a `/`.
    fn trie_key(prefix: &[u8]) -> Key<[u8; PREFIX_KEY_LEN]> {
        let mut data = [0u8; PREFIX_KEY_LEN];
        let with_slash: Vec<u8> = if prefix == b"/" {
            b"/".to_vec()
        } else {
            [prefix, b"/"].concat()
        };
        data[..with_slash.len()].copy_from_slice(&with_slash);
        Key::new((with_slash.len() * 8) as u32, data)
    }
}

/// Writes the file config and prefix trie into the loaded object (before any hook attaches).
pub fn write_maps(ebpf: &mut Ebpf, opts: &FileOptions) -> Result<(), MapWriteError> {
    let map_err = |name: &'static str| move |e| MapWriteError(name, e);
    let missing = MapWriteError::missing;
    let mut cfg: Array<_, FileConfig> = ebpf
        .map_mut(MAP_FILE_CONFIG)
        .ok_or_else(|| missing(MAP_FILE_CONFIG))?
        .try_into()
        .map_err(map_err(MAP_FILE_CONFIG))?;
    let mut flags = 0;
    if opts.reads {
        flags |= FILE_CFG_READS;
    }
    if opts.has_include() {
        flags |= FILE_CFG_INCLUDE;
    }
    if !opts.prefixes.is_empty() {
        flags |= FILE_CFG_PREFIXES;
    }
    cfg.set(0, FileConfig { flags, _pad0: 0 }, 0)
        .map_err(map_err(MAP_FILE_CONFIG))?;
    let mut trie: LpmTrie<_, [u8; PREFIX_KEY_LEN], u8> = ebpf
        .map_mut(MAP_FILE_PREFIXES)
        .ok_or_else(|| missing(MAP_FILE_PREFIXES))?
        .try_into()
        .map_err(map_err(MAP_FILE_PREFIXES))?;
    for (p, include) in &opts.prefixes {
        let v = if *include {
            PREFIX_INCLUDE
        } else {
            PREFIX_EXCLUDE
        };
        trie.insert(&FileOptions::trie_key(p), v, 0)
            .map_err(map_err(MAP_FILE_PREFIXES))?;
    }
    Ok(())
}

/// Offsets for the kernel-side path walk; `valid: 0` (walk off, /proc fallback) when this
/// kernel's BTF lacks one of them.
pub fn offsets(btf: &Btf) -> FileOffsets {
    let get = || -> Result<FileOffsets, crate::kernel::btf::BtfError> {
        let m = |s: &str, f: &str| btf.member_offset(s, f);
        Ok(FileOffsets {
            task_fs: m("task_struct", "fs")?,
            fs_pwd: m("fs_struct", "pwd")?,
            path_mnt: m("path", "mnt")?,
            path_dentry: m("path", "dentry")?,
            dentry_parent: m("dentry", "d_parent")?,
            dentry_name: m("dentry", "d_name")?,
            qstr_len: m("qstr", "len")?,
            qstr_name: m("qstr", "name")?,
            vfsmount_root: m("vfsmount", "mnt_root")?,
            mount_mnt: m("mount", "mnt")?,
            mount_parent: m("mount", "mnt_parent")?,
            mount_mountpoint: m("mount", "mnt_mountpoint")?,
            file_path: m("file", "f_path")?,
            valid: 1,
        })
    };
    get().unwrap_or_else(|e| {
        log::warn!("file paths: kernel-side resolution off ({e}); relative paths use /proc");
        FileOffsets::default()
    })
}

/// Kinds served by each family of file syscalls (for the hook table).
pub const OPEN: &[EventKind] = &[EventKind::FileOpen, EventKind::FileCreate];
pub const CREATE: &[EventKind] = &[EventKind::FileCreate];
pub const UNLINK: &[EventKind] = &[EventKind::FileUnlink];
pub const UNLINKAT: &[EventKind] = &[EventKind::FileUnlink, EventKind::FileRmdir];
pub const RMDIR: &[EventKind] = &[EventKind::FileRmdir];
pub const RENAME: &[EventKind] = &[EventKind::FileRename];
pub const MKDIR: &[EventKind] = &[EventKind::FileMkdir];
pub const CHMOD: &[EventKind] = &[EventKind::FileChmod];
pub const CHOWN: &[EventKind] = &[EventKind::FileChown];
pub const LINK: &[EventKind] = &[EventKind::FileLink];
pub const SYMLINK: &[EventKind] = &[EventKind::FileSymlink];
pub const TRUNCATE: &[EventKind] = &[EventKind::FileTruncate];
pub const UTIME: &[EventKind] = &[EventKind::FileUtime];

/// The file family's hooks: each syscall's enter and exit.
pub const HOOKS: &[Hook] = &[
    syscall("file_enter_open", "sys_enter_open", OPEN),
    syscall("file_exit_open", "sys_exit_open", OPEN),
    syscall("file_enter_openat", "sys_enter_openat", OPEN),
    syscall("file_exit_openat", "sys_exit_openat", OPEN),
    syscall("file_enter_openat2", "sys_enter_openat2", OPEN),
    syscall("file_exit_openat2", "sys_exit_openat2", OPEN),
    syscall("file_enter_creat", "sys_enter_creat", CREATE),
    syscall("file_exit_creat", "sys_exit_creat", CREATE),
    syscall("file_enter_unlink", "sys_enter_unlink", UNLINK),
    syscall("file_exit_unlink", "sys_exit_unlink", UNLINK),
    syscall("file_enter_unlinkat", "sys_enter_unlinkat", UNLINKAT),
    syscall("file_exit_unlinkat", "sys_exit_unlinkat", UNLINKAT),
    syscall("file_enter_rmdir", "sys_enter_rmdir", RMDIR),
    syscall("file_exit_rmdir", "sys_exit_rmdir", RMDIR),
    syscall("file_enter_rename", "sys_enter_rename", RENAME),
    syscall("file_exit_rename", "sys_exit_rename", RENAME),
    syscall("file_enter_renameat", "sys_enter_renameat", RENAME),
    syscall("file_exit_renameat", "sys_exit_renameat", RENAME),
    syscall("file_enter_renameat2", "sys_enter_renameat2", RENAME),
    syscall("file_exit_renameat2", "sys_exit_renameat2", RENAME),
    syscall("file_enter_mkdir", "sys_enter_mkdir", MKDIR),
    syscall("file_exit_mkdir", "sys_exit_mkdir", MKDIR),
    syscall("file_enter_mkdirat", "sys_enter_mkdirat", MKDIR),
    syscall("file_exit_mkdirat", "sys_exit_mkdirat", MKDIR),
    syscall("file_enter_chmod", "sys_enter_chmod", CHMOD),
    syscall("file_exit_chmod", "sys_exit_chmod", CHMOD),
    syscall("file_enter_fchmod", "sys_enter_fchmod", CHMOD),
    syscall("file_exit_fchmod", "sys_exit_fchmod", CHMOD),
    syscall("file_enter_fchmodat", "sys_enter_fchmodat", CHMOD),
    syscall("file_exit_fchmodat", "sys_exit_fchmodat", CHMOD),
    syscall("file_enter_fchmodat2", "sys_enter_fchmodat2", CHMOD),
    syscall("file_exit_fchmodat2", "sys_exit_fchmodat2", CHMOD),
    syscall("file_enter_chown", "sys_enter_chown", CHOWN),
    syscall("file_exit_chown", "sys_exit_chown", CHOWN),
    syscall("file_enter_fchown", "sys_enter_fchown", CHOWN),
    syscall("file_exit_fchown", "sys_exit_fchown", CHOWN),
    syscall("file_enter_lchown", "sys_enter_lchown", CHOWN),
    syscall("file_exit_lchown", "sys_exit_lchown", CHOWN),
    syscall("file_enter_fchownat", "sys_enter_fchownat", CHOWN),
    syscall("file_exit_fchownat", "sys_exit_fchownat", CHOWN),
    syscall("file_enter_link", "sys_enter_link", LINK),
    syscall("file_exit_link", "sys_exit_link", LINK),
    syscall("file_enter_linkat", "sys_enter_linkat", LINK),
    syscall("file_exit_linkat", "sys_exit_linkat", LINK),
    syscall("file_enter_symlink", "sys_enter_symlink", SYMLINK),
    syscall("file_exit_symlink", "sys_exit_symlink", SYMLINK),
    syscall("file_enter_symlinkat", "sys_enter_symlinkat", SYMLINK),
    syscall("file_exit_symlinkat", "sys_exit_symlinkat", SYMLINK),
    syscall("file_enter_truncate", "sys_enter_truncate", TRUNCATE),
    syscall("file_exit_truncate", "sys_exit_truncate", TRUNCATE),
    syscall("file_enter_ftruncate", "sys_enter_ftruncate", TRUNCATE),
    syscall("file_exit_ftruncate", "sys_exit_ftruncate", TRUNCATE),
    syscall("file_enter_utimensat", "sys_enter_utimensat", UTIME),
    syscall("file_exit_utimensat", "sys_exit_utimensat", UTIME),
    syscall("file_enter_futimesat", "sys_enter_futimesat", UTIME),
    syscall("file_exit_futimesat", "sys_exit_futimesat", UTIME),
    syscall("file_enter_utimes", "sys_enter_utimes", UTIME),
    syscall("file_exit_utimes", "sys_exit_utimes", UTIME),
    syscall("file_enter_utime", "sys_enter_utime", UTIME),
    syscall("file_exit_utime", "sys_exit_utime", UTIME),
];

#[cfg(test)]
mod tests;
