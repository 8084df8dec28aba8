//! What every stage knows of a process instance and image, the JSON pieces of it rendered
//! once, and what the kernel sends at an exec or a failed exec.
use std::sync::{Arc, OnceLock};

use serde_json::value::RawValue;

/// Stable id of a process instance: FNV-1a 64 over host name, pid and start time (ns since boot),
/// hex encoded. Documented in docs/process.md so consumers can recompute it.
pub fn entity_id(host: &str, pid: u32, start_ns: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(host.as_bytes());
    eat(&[0]);
    eat(&pid.to_le_bytes());
    eat(&start_ns.to_le_bytes());
    format!("{h:016x}")
}

/// The executed file as the kernel saw it at the exec: what the hasher checks the file it
/// opens against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExeInode {
    /// Userspace `dev_t` (as `stat` gives it).
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// (seconds, nanoseconds), when this kernel's BTF names the field.
    pub ctime: Option<(i64, u32)>,
}

/// `process.exec` as decoded: everything read in the kernel at the exec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecRecord {
    /// The path given to exec.
    pub filename: Vec<u8>,
    /// `bprm->interp`: the interpreter of a script, else equal to `filename`.
    pub interp: Vec<u8>,
    /// The file that runs, walked from its dentry (for a script, its interpreter); for a file
    /// without a path (a memfd), its name (`memfd:NAME`).
    pub exe: Vec<u8>,
    pub exe_truncated: bool,
    /// The file is in no mount (a memfd or another kernel-internal file).
    pub exe_pseudo: bool,
    pub cwd: Option<Vec<u8>>,
    pub cwd_truncated: bool,
    /// The cwd directory was removed.
    pub cwd_deleted: bool,
    pub args: Vec<Vec<u8>>,
    pub args_truncated: bool,
    /// The executed file had no link left (deleted, or a memfd).
    pub nlink0: bool,
    pub inode: Option<ExeInode>,
    /// The file is on the exec deny list: `Some(true)` the kernel sent SIGKILL before the
    /// image ran, `Some(false)` sending it failed.
    pub kernel_deny: Option<bool>,
}

/// `process.exec_failed` as decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecFailure {
    pub filename: Vec<u8>,
    pub filename_truncated: bool,
    pub args: Vec<Vec<u8>>,
    pub args_truncated: bool,
    /// execveat's dirfd (`AT_FDCWD` for execve) and flags.
    pub dirfd: i32,
    pub at_flags: u32,
    pub ret: i64,
}

/// Where an image's exe, argv and cwd came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProcSource {
    /// Read in the kernel at its exec (or inherited at fork from such an image).
    #[default]
    Kernel,
    /// Read from /proc: a process older than the probe, or one whose exec was never seen.
    Procfs,
}

/// The outcome of hashing a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOutcome {
    /// Lowercase hex SHA-256.
    Sha256(String),
    /// Not hashed on purpose (`too_large`).
    Skipped(&'static str),
    /// Could not be hashed truthfully (`deleted`, `replaced`, `root_unavailable`, ...).
    Error(String),
}

/// A hash that a worker fills in later; every event of the image sees it once set.
#[derive(Debug, Default)]
pub struct HashCell(OnceLock<HashOutcome>);

impl HashCell {
    pub fn get(&self) -> Option<&HashOutcome> {
        self.0.get()
    }

    /// Sets the outcome (the first one wins).
    pub fn set(&self, h: HashOutcome) {
        let _ = self.0.set(h);
    }
}

impl PartialEq for HashCell {
    fn eq(&self, o: &Self) -> bool {
        self.get() == o.get()
    }
}

impl Eq for HashCell {}

/// What we know about one process instance, in one of its exec images.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub start_ns: u64,
    /// The parent's start time (with `ppid` it names the parent instance; tick resolution for
    /// processes read from /proc).
    pub parent_start_ns: u64,
    pub entity_id: String,
    pub comm: Vec<u8>,
    /// The image's exec id (`None`: read from /proc, not yet matched to a kernel event).
    pub exec_id: Option<u32>,
    /// When the image began (its exec, or the fork for an image inherited from the parent).
    pub exec_ts_ns: u64,
    pub source: ProcSource,
    pub exe: Option<Vec<u8>>,
    pub exe_truncated: bool,
    pub cwd: Option<Vec<u8>>,
    pub cwd_truncated: bool,
    pub cwd_deleted: bool,
    pub args: Vec<Vec<u8>>,
    pub args_truncated: bool,
    /// The name given to exec (`exec.filename`).
    pub filename: Option<Vec<u8>>,
    /// For scripts: the file that was executed (absolute) and its interpreter (`#!` path).
    pub script: Option<Script>,
    /// The executed file was a memfd or had no link left.
    pub fileless: bool,
    pub memfd_name: Option<Vec<u8>>,
    pub exe_inode: Option<ExeInode>,
    /// SHA-256 of `exe` (absent with `--no-hash`).
    pub hash: Option<Arc<HashCell>>,
    /// SHA-256 of a script's own file.
    pub script_hash: Option<Arc<HashCell>>,
    /// Its JSON rendering, made by the native encoder on first use.
    pub json: JsonCache,
}

/// The processes above an event's process, parent first (`process.ancestors`), shared by every
/// event whose chain is made of the same images, with its JSON rendered once.
#[derive(Debug)]
pub struct Ancestors {
    pub list: Vec<Arc<ProcessInfo>>,
    pub json: OnceLock<Box<RawValue>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    pub filename: Vec<u8>,
    pub interpreter: Vec<u8>,
}

/// The parts of a `process` (and `parent`) object that stay the same for every event of one
/// process, rendered once: escaping each event's argv again was most of the encoder's time.
pub struct ProcessJson {
    pub exe: Option<Box<RawValue>>,
    pub exe_b64: Option<Box<RawValue>>,
    pub args: Box<RawValue>,
    pub args_b64: Option<Box<RawValue>>,
    pub cwd: Option<Box<RawValue>>,
    pub cwd_b64: Option<Box<RawValue>>,
    /// `start_time` as rendered for the process's own `start_ns`.
    pub start_time: Box<RawValue>,
    /// The whole object as another event's `parent`, made on first use.
    pub as_parent: OnceLock<Box<RawValue>>,
}

/// A process's [`ProcessJson`], made on first use and kept with it. A clone starts empty (a
/// clone is made to be changed), and the cache is never part of equality.
#[derive(Default)]
pub struct JsonCache(OnceLock<ProcessJson>);

impl JsonCache {
    pub fn get_or_init(&self, f: impl FnOnce() -> ProcessJson) -> &ProcessJson {
        self.0.get_or_init(f)
    }
}

impl Clone for JsonCache {
    fn clone(&self) -> Self {
        JsonCache::default()
    }
}

impl PartialEq for JsonCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for JsonCache {}

impl std::fmt::Debug for JsonCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonCache")
    }
}
