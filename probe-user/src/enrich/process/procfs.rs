//! What /proc tells about a process: only for processes that were running before the probe
//! started (the start-up snapshot), or whose exec the probe never saw. Everything read here is
//! marked `source: procfs`.
use std::{
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use crate::{
    event::process::{entity_id, ProcSource, ProcessInfo},
    families::process::decode::split_args,
};

/// Start time of `pid` from /proc/<pid>/stat, in ns since boot (tick resolution), and its ppid.
pub fn stat(root: &Path, pid: u32, tick_ns: u64) -> Option<(u64, u32, Vec<u8>)> {
    let st = procfs::process::Process::new_with_root(root.join(pid.to_string()))
        .ok()?
        .stat()
        .ok()?;
    Some((
        st.starttime * tick_ns,
        st.ppid.max(0) as u32,
        st.comm.into_bytes(),
    ))
}

/// Start time of `pid` (tick resolution).
pub fn start_ns(root: &Path, pid: u32, tick_ns: u64) -> Option<u64> {
    stat(root, pid, tick_ns).map(|s| s.0)
}

pub fn link(p: &Path) -> Option<Vec<u8>> {
    std::fs::read_link(p)
        .ok()
        .map(|l| l.as_os_str().as_bytes().to_vec())
}

/// /proc/<pid> as a [`ProcessInfo`] image (exec id unknown until a kernel event binds it).
/// `start`: the exact start time when known; `parent_start`: the parent's, when known.
pub fn read(
    root: &Path,
    host: &str,
    pid: u32,
    want_start: Option<u64>,
    parent_start: Option<u64>,
    tick_ns: u64,
) -> Option<ProcessInfo> {
    let dir: PathBuf = root.join(pid.to_string());
    let (proc_start, ppid, comm) = stat(root, pid, tick_ns)?;
    if want_start.is_some_and(|s| !near(proc_start, s, tick_ns)) {
        return None;
    }
    let start = want_start.unwrap_or(proc_start);
    let parent_start_ns = parent_start
        .or_else(|| (ppid != 0).then(|| start_ns(root, ppid, tick_ns)).flatten())
        .unwrap_or(0);
    let mut exe = link(&dir.join("exe"));
    let mut fileless = false;
    if let Some(e) = exe.as_mut() {
        // readlink marks an unlinked file so; the path itself has no such suffix.
        if let Some(stripped) = e.strip_suffix(b" (deleted)") {
            *e = stripped.to_vec();
            fileless = true;
        }
    }
    let mut info = ProcessInfo {
        pid,
        ppid,
        start_ns: start,
        parent_start_ns,
        entity_id: entity_id(host, pid, start),
        comm,
        source: ProcSource::Procfs,
        exe,
        cwd: link(&dir.join("cwd")),
        fileless,
        ..Default::default()
    };
    if let Ok(raw) = std::fs::read(dir.join("cmdline")) {
        let (args, cut) = split_args(&raw);
        info.args = args;
        info.args_truncated = cut;
    }
    Some(info)
}

pub fn near(a: u64, b: u64, tick: u64) -> bool {
    a.abs_diff(b) < tick
}
