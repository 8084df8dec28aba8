//! File activity in userspace: options and their kernel maps, the decoded record, symbolic names
//! (`O_*`, `AT_*`, `RENAME_*`, errno), path prefix filters, and the pipeline stage that makes
//! relative and fd-based paths absolute from `/proc/<tid>/{cwd,fd}`.
use std::{os::unix::ffi::OsStrExt as _, path::PathBuf};

use aya::{
    maps::{lpm_trie::Key, Array, LpmTrie},
    Ebpf,
};
use probe_common::{
    EventKind, FileConfig, FileEvent, FileOffsets, FileSyscall, AT_FDCWD, FILE_BASE_PARTIAL,
    FILE_BY_FD, FILE_CFG_INCLUDE, FILE_CFG_READS, FILE_FIXED_LEN, FILE_HAS_BASE, FILE_HAS_TARGET,
    FILE_HAS_TARGET_BASE, FILE_PATH_TRUNCATED, FILE_PATH_UNREADABLE, FILE_TARGET_TRUNCATED,
    FILE_TARGET_UNREADABLE, MAP_FILE_CONFIG, MAP_FILE_PREFIXES, PATH_MAX, PREFIX_EXCLUDE,
    PREFIX_INCLUDE, PREFIX_KEY_LEN,
};

use crate::{
    btf::Btf,
    event::{Body, Event},
    loader::{Attach, Hook, LoadError},
};

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

    fn has_include(&self) -> bool {
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
pub fn write_maps(ebpf: &mut Ebpf, opts: &FileOptions) -> Result<(), LoadError> {
    let map_err = |name: &'static str| move |e| LoadError::Map(name, e);
    let missing = |name: &'static str| {
        LoadError::Map(name, aya::maps::MapError::InvalidName { name: name.into() })
    };
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
    let get = || -> Result<FileOffsets, crate::btf::BtfError> {
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

/// A `syscalls:sys_{enter,exit}_<name>` hook row for `loader::HOOKS`.
pub const fn hook(
    program: &'static str,
    tracepoint: &'static str,
    kinds: &'static [EventKind],
) -> Hook {
    Hook {
        program,
        attach: Attach::TracePoint("syscalls", tracepoint),
        kinds,
    }
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

/// A decoded file event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub syscall: FileSyscall,
    /// As passed, then made absolute by [`FileStage`] when it could be.
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
}

/// Decodes the body of a file record; `None` when lengths do not add up.
pub fn decode(bytes: &[u8]) -> Option<FileRecord> {
    if bytes.len() < FILE_FIXED_LEN {
        return None;
    }
    // SAFETY: length checked; FileEvent's fixed part is plain data, read unaligned.
    let mut fixed = std::mem::MaybeUninit::<FileEvent>::zeroed();
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            fixed.as_mut_ptr() as *mut u8,
            FILE_FIXED_LEN,
        )
    };
    let ev = unsafe { fixed.assume_init() };
    let syscall = FileSyscall::try_from(ev.syscall).ok()?;
    let data = &bytes[FILE_FIXED_LEN..];
    let take = |len: u32, present: bool, at: &mut usize| -> Option<Option<Vec<u8>>> {
        if !present {
            return Some(None);
        }
        let len = len as usize;
        if len >= PATH_MAX || data.len() < *at + len {
            return None;
        }
        let v = data[*at..*at + len].to_vec();
        *at += len;
        Some(Some(v))
    };
    let mut at = 0;
    let path = take(ev.path_len, true, &mut at)?.unwrap_or_default();
    let target = take(ev.target_len, ev.fflags & FILE_HAS_TARGET != 0, &mut at)?;
    let base = take(ev.base_len, ev.fflags & FILE_HAS_BASE != 0, &mut at)?;
    let target_base = take(
        ev.target_base_len,
        ev.fflags & FILE_HAS_TARGET_BASE != 0,
        &mut at,
    )?;
    let _ = FILE_BASE_PARTIAL; // no base: userspace falls back to /proc
    Some(FileRecord {
        syscall,
        path_resolved: path.first() == Some(&b'/'),
        target_resolved: target.as_ref().is_some_and(|t| t.first() == Some(&b'/')),
        path,
        path_truncated: ev.fflags & FILE_PATH_TRUNCATED != 0,
        path_unreadable: ev.fflags & FILE_PATH_UNREADABLE != 0,
        target,
        target_truncated: ev.fflags & (FILE_TARGET_TRUNCATED | FILE_TARGET_UNREADABLE) != 0,
        base,
        target_base,
        resolved_from: None,
        dirfd: ev.dirfd,
        target_dirfd: ev.target_dirfd,
        by_fd: ev.fflags & FILE_BY_FD != 0,
        flags: ev.flags,
        mode: ev.mode,
        uid: ev.uid,
        gid: ev.gid,
        length: ev.length,
        ret: ev.ret,
    })
}

impl FileRecord {
    pub fn is_open(&self) -> bool {
        matches!(
            self.syscall,
            FileSyscall::Open | FileSyscall::Openat | FileSyscall::Openat2 | FileSyscall::Creat
        )
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

    pub fn is_truncate(&self) -> bool {
        matches!(self.syscall, FileSyscall::Truncate | FileSyscall::Ftruncate)
    }

    /// The second path names a place (rename, link), not a symlink's text.
    fn target_is_place(&self) -> bool {
        !matches!(self.syscall, FileSyscall::Symlink | FileSyscall::Symlinkat)
    }

    /// Symbolic names of `flags` for this syscall.
    pub fn flag_names(&self) -> FlagNames {
        match self.syscall {
            FileSyscall::Open | FileSyscall::Openat | FileSyscall::Openat2 | FileSyscall::Creat => {
                open_flag_names(self.flags)
            }
            FileSyscall::Renameat2 => bit_names(self.flags, RENAME_FLAGS),
            _ => bit_names(self.flags, AT_FLAGS),
        }
    }
}

const O_TMPFILE_BIT: u32 = 0o20000000;

/// Open flags in the order `open(2)` lists them; the access mode comes first.
const OPEN_FLAGS: &[(u32, &str)] = &[
    (libc::O_CREAT as u32, "O_CREAT"),
    (libc::O_EXCL as u32, "O_EXCL"),
    (libc::O_NOCTTY as u32, "O_NOCTTY"),
    (libc::O_TRUNC as u32, "O_TRUNC"),
    (libc::O_APPEND as u32, "O_APPEND"),
    (libc::O_NONBLOCK as u32, "O_NONBLOCK"),
    (libc::O_SYNC as u32, "O_SYNC"),
    (libc::O_DSYNC as u32, "O_DSYNC"),
    (libc::O_ASYNC as u32, "O_ASYNC"),
    (libc::O_DIRECT as u32, "O_DIRECT"),
    // libc says 0 on 64-bit targets, but the kernel's bit is what the syscall carries.
    (0o100000, "O_LARGEFILE"),
    (libc::O_TMPFILE as u32, "O_TMPFILE"),
    (libc::O_DIRECTORY as u32, "O_DIRECTORY"),
    (libc::O_NOFOLLOW as u32, "O_NOFOLLOW"),
    (libc::O_NOATIME as u32, "O_NOATIME"),
    (libc::O_CLOEXEC as u32, "O_CLOEXEC"),
    (libc::O_PATH as u32, "O_PATH"),
];

const AT_FLAGS: &[(u32, &str)] = &[
    (libc::AT_SYMLINK_NOFOLLOW as u32, "AT_SYMLINK_NOFOLLOW"),
    (libc::AT_REMOVEDIR as u32, "AT_REMOVEDIR"),
    (libc::AT_SYMLINK_FOLLOW as u32, "AT_SYMLINK_FOLLOW"),
    (libc::AT_NO_AUTOMOUNT as u32, "AT_NO_AUTOMOUNT"),
    (libc::AT_EMPTY_PATH as u32, "AT_EMPTY_PATH"),
];

const RENAME_FLAGS: &[(u32, &str)] = &[
    (1, "RENAME_NOREPLACE"),
    (2, "RENAME_EXCHANGE"),
    (4, "RENAME_WHITEOUT"),
];

/// Symbolic names of a set of flag bits, kept on the stack: the names are static and unknown
/// bits are one number, so naming the flags of an event allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct FlagNames {
    names: [&'static str; 24],
    n: usize,
    /// Bits no name covers, written as one hex string (0: none).
    rest: u32,
}

impl FlagNames {
    fn new() -> Self {
        FlagNames {
            names: [""; 24],
            n: 0,
            rest: 0,
        }
    }

    fn push(&mut self, name: &'static str) {
        if let Some(slot) = self.names.get_mut(self.n) {
            *slot = name;
            self.n += 1;
        }
    }

    /// Adds the names of the bits of `v` found in `table`; multi-bit flags (O_SYNC,
    /// O_TMPFILE) win over their parts, and bits left over are kept as a number.
    fn add_bits(&mut self, v: u32, table: &[(u32, &'static str)]) {
        let mut rest = v;
        for &(bits, name) in table {
            if bits != 0 && rest & bits == bits {
                self.push(name);
                rest &= !bits;
            }
        }
        self.rest |= rest;
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0 && self.rest == 0
    }

    /// The names as a list (what the JSON array holds), for tests.
    #[cfg(test)]
    fn to_vec(self) -> Vec<std::borrow::Cow<'static, str>> {
        use std::borrow::Cow;
        let mut v: Vec<Cow<'static, str>> = self.names[..self.n]
            .iter()
            .map(|&s| Cow::Borrowed(s))
            .collect();
        if self.rest != 0 {
            v.push(Cow::Owned(format!("{:#x}", self.rest)));
        }
        v
    }
}

impl serde::Serialize for FlagNames {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut seq = s.serialize_seq(Some(self.n + usize::from(self.rest != 0)))?;
        for name in &self.names[..self.n] {
            seq.serialize_element(name)?;
        }
        if self.rest != 0 {
            seq.serialize_element(&format_args!("{:#x}", self.rest))?;
        }
        seq.end()
    }
}

fn bit_names(v: u32, table: &[(u32, &'static str)]) -> FlagNames {
    let mut f = FlagNames::new();
    f.add_bits(v, table);
    f
}

/// Open flags by name, the access mode first.
pub fn open_flag_names(flags: u32) -> FlagNames {
    let acc = match flags & libc::O_ACCMODE as u32 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let mut f = FlagNames::new();
    f.push(acc);
    f.add_bits(flags & !(libc::O_ACCMODE as u32), OPEN_FLAGS);
    f
}

/// Whether `normalize` would give `path` back unchanged: absolute, no empty, `.` or `..`
/// component, no trailing `/` (other than `/` itself).
fn is_normal(path: &[u8]) -> bool {
    if path == b"/" {
        return true;
    }
    path.first() == Some(&b'/')
        && path.last() != Some(&b'/')
        && !path
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'))
}

/// Lexical clean-up of an absolute path: `//` and `.` dropped, `..` pops a component. Used for
/// filtering only (symlinks are not followed, so it is not the real path).
pub fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Include/exclude prefixes, the same rule as the kernel trie: the longest matching prefix
/// decides; with no match, a path is kept unless include prefixes exist.
#[derive(Clone, Debug, Default)]
pub struct PathFilter {
    rules: Vec<(Vec<u8>, bool)>,
    has_include: bool,
}

impl PathFilter {
    pub fn new(opts: &FileOptions) -> Self {
        PathFilter {
            rules: opts
                .prefixes
                .iter()
                .map(|(p, inc)| {
                    let key = if p == b"/" {
                        p.clone()
                    } else {
                        [p.as_slice(), b"/"].concat()
                    };
                    (key, *inc)
                })
                .collect(),
            has_include: opts.has_include(),
        }
    }

    /// Whether an absolute path is kept. Relative (unresolved) paths are always kept.
    pub fn keeps(&self, path: &[u8]) -> bool {
        if path.first() != Some(&b'/') {
            return true;
        }
        if self.rules.is_empty() {
            return true;
        }
        // Nearly every path is already normal: match it as it is, with no copy.
        let normal;
        let p: &[u8] = if is_normal(path) {
            path
        } else {
            normal = normalize(path);
            &normal
        };
        // `p` plus a trailing `/` starts with the key (keys end in `/`; `/` is its own key).
        let under = |k: &[u8]| {
            if p == b"/" {
                return k == b"/";
            }
            let stem = &k[..k.len().saturating_sub(1)];
            p.starts_with(stem) && (p.len() == stem.len() || p[stem.len()] == b'/')
        };
        self.rules
            .iter()
            .filter(|(k, _)| under(k))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, inc)| *inc)
            .unwrap_or(!self.has_include)
    }
}

/// Pipeline stage for file events: resolve relative and fd-based paths, then apply the prefix
/// filters to what the kernel could not judge.
#[derive(Clone, Debug)]
pub struct FileStage {
    pub filter: PathFilter,
    pub proc_root: PathBuf,
}

impl Default for FileStage {
    fn default() -> Self {
        FileStage::new(&FileOptions::default())
    }
}

impl FileStage {
    pub fn new(opts: &FileOptions) -> Self {
        FileStage {
            filter: PathFilter::new(opts),
            proc_root: "/proc".into(),
        }
    }

    /// `readlink /proc/<tid>/cwd` or `/proc/<tid>/fd/<fd>`.
    fn base(&self, tid: u32, dirfd: i32) -> Option<Vec<u8>> {
        let link = if dirfd == AT_FDCWD {
            self.proc_root.join(tid.to_string()).join("cwd")
        } else if dirfd >= 0 {
            self.proc_root
                .join(tid.to_string())
                .join("fd")
                .join(dirfd.to_string())
        } else {
            return None;
        };
        let target = std::fs::read_link(link).ok()?;
        let b = target.as_os_str().as_bytes();
        // Sockets, pipes and anonymous inodes read as `type:[inode]`: not a directory.
        (b.first() == Some(&b'/')).then(|| b.to_vec())
    }

    /// Makes `path` absolute against `base` (from the kernel) or else /proc; returns where the
    /// directory came from, `None` when it could not be found.
    fn resolve(
        &self,
        tid: u32,
        dirfd: i32,
        path: &mut Vec<u8>,
        base: Option<&[u8]>,
    ) -> Option<&'static str> {
        let (dir, from) = match base {
            Some(b) => (b.to_vec(), "kernel"),
            None => (self.base(tid, dirfd)?, "proc"),
        };
        *path = join(&dir, path);
        Some(from)
    }

    /// Completes a file event; false when the prefix filters drop it.
    pub fn apply(&self, ev: &mut Event) -> bool {
        let Some(tid) = ev.task.as_ref().map(|t| t.tid) else {
            return true;
        };
        let Body::File(f) = &mut ev.body else {
            return true;
        };
        let base = f.base.take();
        if !f.path_unreadable && !f.path_resolved {
            f.resolved_from = self.resolve(tid, f.dirfd, &mut f.path, base.as_deref());
            f.path_resolved = f.resolved_from.is_some();
        }
        if f.target_is_place() && !f.target_resolved && !f.target_truncated {
            if let Some(t) = f.target.as_mut() {
                // The kernel resolved the path's directory; it serves the target when both
                // name the same dirfd.
                let tb = match f.target_base.take() {
                    Some(b) => Some(b),
                    None => base.clone().filter(|_| f.target_dirfd == f.dirfd),
                };
                let tb = tb.as_deref();
                f.target_resolved = self.resolve(tid, f.target_dirfd, t, tb).is_some();
            }
        }
        let mut keep = f.path_unreadable || self.filter.keeps(&f.path);
        if !keep && f.target_is_place() {
            keep = f.target.as_deref().is_some_and(|t| self.filter.keeps(t));
        }
        keep
    }
}

/// `dir` + `/` + `rel`; an empty `rel` (fd-based calls, `AT_EMPTY_PATH`) names `dir` itself.
fn join(dir: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut out = dir.to_vec();
    if !rel.is_empty() {
        if out.last() != Some(&b'/') {
            out.push(b'/');
        }
        out.extend_from_slice(rel);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(inc: &[&str], exc: &[&str]) -> FileOptions {
        FileArgs {
            file_include: inc.iter().map(|s| s.to_string()).collect(),
            file_exclude: exc.iter().map(|s| s.to_string()).collect(),
            file_reads: false,
        }
        .into_options()
        .unwrap()
    }

    #[test]
    fn open_flags_by_name() {
        assert_eq!(open_flag_names(0).to_vec(), vec!["O_RDONLY"]);
        assert_eq!(
            open_flag_names(
                (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC) as u32
            )
            .to_vec(),
            vec!["O_WRONLY", "O_CREAT", "O_TRUNC", "O_CLOEXEC"]
        );
        assert_eq!(
            open_flag_names((libc::O_RDWR | libc::O_TMPFILE) as u32).to_vec(),
            vec!["O_RDWR", "O_TMPFILE"]
        );
        assert_eq!(
            open_flag_names(libc::O_SYNC as u32).to_vec(),
            vec!["O_RDONLY", "O_SYNC"]
        );
        assert_eq!(
            open_flag_names(1 << 30).to_vec(),
            vec!["O_RDONLY", "0x40000000"]
        );
        // The JSON array is the same list, unknown bits last.
        assert_eq!(
            serde_json::to_string(&open_flag_names((libc::O_WRONLY as u32) | 1 << 30)).unwrap(),
            r#"["O_WRONLY","0x40000000"]"#
        );
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize(b"/a//b/./c/../d/"), b"/a/b/d");
        assert_eq!(normalize(b"/../.."), b"/");
        assert_eq!(normalize(b"/dev/pts/../../etc/passwd"), b"/etc/passwd");
    }

    #[test]
    fn prefixes_longest_match_and_boundaries() {
        let f = PathFilter::new(&opts(&["/etc", "/usr/"], &["/usr/share", "/dev/null"]));
        assert!(f.keeps(b"/etc"));
        assert!(f.keeps(b"/etc/passwd"));
        assert!(!f.keeps(b"/etcx/passwd"));
        assert!(f.keeps(b"/usr/bin/x"));
        assert!(!f.keeps(b"/usr/share/doc"));
        assert!(!f.keeps(b"/tmp/x"));
        assert!(f.keeps(b"/tmp/../etc/shadow"));
        assert!(f.keeps(b"relative/unresolved"));
        let f = PathFilter::new(&opts(&[], &["/dev/pts"]));
        assert!(f.keeps(b"/tmp/x"));
        assert!(!f.keeps(b"/dev/pts/3"));
        assert!(f.keeps(b"/dev/pts/../../etc/passwd"));
        assert!(!f.keeps(b"/dev/pts/./3"));
        assert!(!f.keeps(b"/dev//pts/3"));
        assert!(!f.keeps(b"/dev/pts/"));
        assert!(!f.keeps(b"/dev/pts"));
        assert!(f.keeps(b"/dev/ptsx"));
        let f = PathFilter::new(&opts(&["/"], &["/proc"]));
        assert!(f.keeps(b"/x"));
        assert!(f.keeps(b"/"));
        assert!(!f.keeps(b"/proc/1/x"));
        assert!(!f.keeps(b"/proc"));
        assert!(f.keeps(b"/procx"));
        let f = PathFilter::new(&opts(&["/srv"], &[]));
        assert!(!f.keeps(b"/"), "/ is not under /srv");
        assert!(f.keeps(b"/srv/"));
        assert!(f.keeps(b"//srv/a"));
    }

    #[test]
    fn bad_prefixes() {
        let bad = |p: &str| {
            FileArgs {
                file_include: vec![p.into()],
                file_exclude: vec![],
                file_reads: false,
            }
            .into_options()
        };
        assert!(matches!(bad("etc"), Err(FileOptionsError::NotAbsolute(_))));
        assert!(matches!(
            bad(&format!("/{}", "a".repeat(300))),
            Err(FileOptionsError::TooLong(..))
        ));
        // Empty items (e.g. `--file-exclude ''`) select nothing.
        assert!(opts(&[], &[""]).prefixes.is_empty());
    }

    #[test]
    fn trie_keys_end_in_slash() {
        let k = FileOptions::trie_key(b"/etc");
        assert_eq!(k.prefix_len(), 5 * 8);
        assert_eq!(&k.data()[..5], b"/etc/");
        assert_eq!(FileOptions::trie_key(b"/").prefix_len(), 8);
    }

    fn record(syscall: FileSyscall, fflags: u32, path: &[u8], target: Option<&[u8]>) -> Vec<u8> {
        let mut ev: FileEvent = unsafe { std::mem::zeroed() };
        ev.header.kind = EventKind::FileRename as u32;
        ev.syscall = syscall as u32;
        ev.fflags = fflags;
        ev.ret = -2;
        ev.path_len = path.len() as u32;
        ev.data[..path.len()].copy_from_slice(path);
        let mut end = FILE_FIXED_LEN + path.len();
        if let Some(t) = target {
            ev.fflags |= FILE_HAS_TARGET;
            ev.target_len = t.len() as u32;
            ev.data[path.len()..path.len() + t.len()].copy_from_slice(t);
            end += t.len();
        }
        let all = unsafe {
            std::slice::from_raw_parts(
                &ev as *const FileEvent as *const u8,
                std::mem::size_of::<FileEvent>(),
            )
        };
        all[..end].to_vec()
    }

    #[test]
    fn decode_records_and_reject_bad_lengths() {
        let rec = record(FileSyscall::Renameat2, 0, b"a\n\xff", Some(b"/b c"));
        assert_eq!(join(b"/", b"x"), b"/x");
        assert_eq!(join(b"/a", b""), b"/a");
        assert_eq!(join(b"/a", b"b/c"), b"/a/b/c");
        let f = decode(&rec).unwrap();
        assert_eq!(f.path, b"a\n\xff");
        assert!(!f.path_resolved);
        assert_eq!(f.target.as_deref(), Some(&b"/b c"[..]));
        assert!(f.target_resolved);
        assert_eq!(f.ret, -2);
        // Cut short, or a length pointing past the end: rejected, never a panic.
        assert!(decode(&rec[..rec.len() - 1]).is_none());
        let mut bad = record(FileSyscall::Open, 0, b"/x", None);
        let off = std::mem::offset_of!(FileEvent, path_len);
        bad[off..off + 4].copy_from_slice(&5000u32.to_le_bytes());
        assert!(decode(&bad).is_none());
        let mut bad = record(FileSyscall::Open, 0, b"/x", None);
        let off = std::mem::offset_of!(FileEvent, syscall);
        bad[off..off + 4].copy_from_slice(&999u32.to_le_bytes());
        assert!(decode(&bad).is_none());
        for n in 0..rec.len().min(400) {
            let _ = decode(&rec[..n]);
        }
    }

    fn file_event(f: FileRecord) -> Event {
        let task = crate::event::Task {
            kind: EventKind::FileChown,
            flags: 0,
            ts_ns: 1,
            pid: 10,
            tid: 11,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 7,
            start_ns: 1,
            parent_start_ns: 0,
            comm: b"x".to_vec(),
        };
        Event {
            ts_ns: 1,
            task: Some(task),
            body: Body::File(Box::new(f)),
            process: None,
            parent: None,
            user: None,
            container: None,
        }
    }

    fn encode(ev: &Event) -> serde_json::Value {
        use crate::encode::Encoder as _;
        let n = crate::encode::native::Native::new("h".into(), crate::clock::BootClock::measure());
        let mut out = Vec::new();
        n.encode(ev, 1, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&out).unwrap()
    }

    fn chown_record() -> FileRecord {
        let rec = record(FileSyscall::Fchownat, 0, b"/t/a\nb\xff", None);
        let mut f = decode(&rec).unwrap();
        f.uid = 0;
        f.gid = u32::MAX;
        f.flags = libc::AT_SYMLINK_NOFOLLOW as u32;
        f.ret = -13;
        f
    }

    #[test]
    fn native_json_of_a_failed_chown() {
        let v = encode(&file_event(chown_record()));
        assert_eq!(v["kind"], "file.chown");
        let f = &v["file"];
        assert_eq!(f["path"], "/t/a\nb\u{fffd}");
        assert_eq!(f["path_b64"], "L3QvYQpi/w==");
        assert_eq!(f["syscall"], "fchownat");
        assert_eq!(f["uid"], 0);
        assert!(f.get("gid").is_none(), "-1 means unchanged");
        assert!(f.get("mode").is_none());
        assert_eq!(f["flags"], serde_json::json!(["AT_SYMLINK_NOFOLLOW"]));
        assert_eq!(
            v["result"],
            serde_json::json!({"ok": false, "errno": 13, "error": "EACCES"})
        );
    }

    #[test]
    fn stage_resolves_from_the_kernel_base_and_filters() {
        let mut f = chown_record();
        f.path = b"rel".to_vec();
        f.path_resolved = false;
        f.base = Some(b"/srv/x".to_vec());
        let stage = FileStage::new(&opts(&[], &["/srv/x/rel"]));
        let mut ev = file_event(f.clone());
        assert!(!stage.apply(&mut ev), "excluded after resolution");
        let stage = FileStage::new(&opts(&["/srv"], &[]));
        let mut ev = file_event(f.clone());
        assert!(stage.apply(&mut ev));
        let Body::File(g) = &ev.body else { panic!() };
        assert_eq!(g.path, b"/srv/x/rel");
        assert_eq!(g.resolved_from, Some("kernel"));
        // No base and no such process in /proc: kept as written, flagged.
        let mut stage = FileStage::new(&opts(&[], &[]));
        stage.proc_root = "/nonexistent-proc".into();
        f.base = None;
        let mut ev = file_event(f);
        assert!(stage.apply(&mut ev));
        let Body::File(g) = &ev.body else { panic!() };
        assert_eq!((g.path.as_slice(), g.path_resolved), (&b"rel"[..], false));
        assert_eq!(encode(&ev)["file"]["path_resolved"], false);
    }
}
