//! Path resolution: makes relative and fd-based file paths absolute (from the directory the
//! kernel sent, else `/proc/<tid>/{cwd,fd}`), then applies the prefix filters to what the
//! kernel could not judge.
use std::{os::unix::ffi::OsStrExt as _, path::PathBuf};

use probe_common::AT_FDCWD;

use crate::{
    event::{Body, Event},
    families::file::{prefix::PathFilter, FileOptions},
};

/// Resolves relative and fd-based paths of file events, then applies the prefix filters.
#[derive(Clone, Debug)]
pub struct PathResolver {
    pub filter: PathFilter,
    pub proc_root: PathBuf,
}

impl Default for PathResolver {
    fn default() -> Self {
        PathResolver::new(&FileOptions::default())
    }
}

impl PathResolver {
    pub fn new(opts: &FileOptions) -> Self {
        PathResolver {
            filter: PathFilter::new(&opts.prefixes),
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
pub fn join(dir: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut out = dir.to_vec();
    if !rel.is_empty() {
        if out.last() != Some(&b'/') {
            out.push(b'/');
        }
        out.extend_from_slice(rel);
    }
    out
}
