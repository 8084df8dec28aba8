//! What every stage knows of a process instance, and the JSON pieces of it rendered once.
use std::sync::OnceLock;

use serde_json::value::RawValue;

/// What we know about one process instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub start_ns: u64,
    pub entity_id: String,
    pub comm: Vec<u8>,
    pub exe: Option<Vec<u8>>,
    pub cwd: Option<Vec<u8>>,
    pub args: Vec<Vec<u8>>,
    pub args_truncated: bool,
    /// For scripts: the file that was executed (absolute) and its interpreter (`#!` path).
    pub script: Option<Script>,
    /// Its JSON rendering, made by the native encoder on first use.
    pub json: JsonCache,
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
