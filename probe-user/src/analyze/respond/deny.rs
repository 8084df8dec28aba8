//! The exec deny list. Paths are resolved to (device, inode) at start and written to the
//! kernel map that `sched_process_exec` checks; a `sha256:` entry gets its file's (device,
//! inode) once an exec of it is hashed (the first such exec is killed from userspace, later
//! ones in the kernel). A denied path whose file was replaced since start is caught by path
//! in userspace and its new inode added.
use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aya::maps::{HashMap as BpfHashMap, MapData};
use probe_common::DenyKey;

use super::config::DenyEntry;

#[derive(Debug, thiserror::Error)]
pub enum DenyError {
    #[error("--deny-exec {0}: {1}")]
    Path(PathBuf, std::io::Error),
    #[error("--deny-exec {0}: not a regular file")]
    NotFile(PathBuf),
    #[error("the exec deny map: {0}")]
    Map(#[from] aya::maps::MapError),
}

/// A userspace `st_dev` in the kernel's `s_dev` encoding (`major << 20 | minor`).
pub fn kernel_dev(dev: u64) -> u32 {
    (libc::major(dev) << 20) | (libc::minor(dev) & 0xf_ffff)
}

pub struct DenyList {
    map: Option<BpfHashMap<MapData, DenyKey, u32>>,
    /// Denied paths (as given) and the entry index of each.
    paths: HashMap<PathBuf, u32>,
    sha: HashMap<String, u32>,
    /// (device, inode) in the kernel map, to skip rewrites.
    known: HashSet<DenyKey>,
    pub entries: Vec<DenyEntry>,
    /// Map inserts that failed (a full map); counted for `probe.stop`.
    pub insert_failed: u64,
}

impl DenyList {
    /// Resolves the paths now; `map` is the kernel's deny map (absent only in unit tests).
    pub fn new(
        entries: &[DenyEntry],
        map: Option<BpfHashMap<MapData, DenyKey, u32>>,
    ) -> Result<DenyList, DenyError> {
        let mut d = DenyList {
            map,
            paths: HashMap::new(),
            sha: HashMap::new(),
            known: HashSet::new(),
            entries: entries.to_vec(),
            insert_failed: 0,
        };
        for (i, e) in entries.iter().enumerate() {
            match e {
                DenyEntry::Path(p) => {
                    let m = std::fs::metadata(p).map_err(|e| DenyError::Path(p.clone(), e))?;
                    if !m.is_file() {
                        return Err(DenyError::NotFile(p.clone()));
                    }
                    d.paths.insert(p.clone(), i as u32);
                    // The exe of an event is the resolved path (`/bin/sh` runs as dash).
                    if let Ok(c) = std::fs::canonicalize(p) {
                        d.paths.insert(c, i as u32);
                    }
                    d.learn(m.dev(), m.ino(), i as u32)?;
                }
                DenyEntry::Sha256(h) => {
                    d.sha.insert(h.clone(), i as u32);
                }
            }
        }
        Ok(d)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Puts a file into the kernel map; `dev` is a userspace `st_dev`.
    pub fn learn(&mut self, dev: u64, ino: u64, entry: u32) -> Result<bool, DenyError> {
        let key = DenyKey {
            dev: kernel_dev(dev),
            _pad0: 0,
            ino,
        };
        if !self.known.insert(key) {
            return Ok(false);
        }
        if let Some(m) = &mut self.map {
            if let Err(e) = m.insert(key, entry, 0) {
                self.known.remove(&key);
                self.insert_failed += 1;
                return Err(e.into());
            }
        }
        Ok(true)
    }

    /// The entry an exec of `exe` (with this hash) matches, if any.
    pub fn matches(&self, exe: Option<&[u8]>, sha256: Option<&str>) -> Option<u32> {
        use std::os::unix::ffi::OsStrExt as _;
        if let Some(e) = exe {
            let p = Path::new(std::ffi::OsStr::from_bytes(e));
            if let Some(i) = self.paths.get(p) {
                return Some(*i);
            }
        }
        sha256.and_then(|h| self.sha.get(h).copied())
    }

    pub fn entry(&self, i: u32) -> Option<&DenyEntry> {
        self.entries.get(i as usize)
    }

    /// Entries in the kernel map.
    pub fn kernel_entries(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_and_match_by_path_or_hash() {
        let h = "a".repeat(64);
        let d = DenyList::new(
            &[
                DenyEntry::Path("/bin/sh".into()),
                DenyEntry::Sha256(h.clone()),
            ],
            None,
        )
        .unwrap();
        assert_eq!(d.kernel_entries(), 1);
        assert_eq!(d.matches(Some(b"/bin/sh"), None), Some(0));
        assert_eq!(d.matches(Some(b"/bin/true"), Some(&h)), Some(1));
        assert_eq!(d.matches(Some(b"/bin/true"), None), None);
        assert!(DenyList::new(&[DenyEntry::Path("/nonexistent/x".into())], None).is_err());
        let m = std::fs::metadata("/bin/sh").unwrap();
        assert_eq!(kernel_dev(m.dev()) >> 20, libc::major(m.dev()));
    }
}
