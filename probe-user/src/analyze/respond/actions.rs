//! The actions on processes and cgroups: a signal through a pidfd opened for the exact process
//! (pid and start time checked after the open, so a reused pid is never hit), a whole tree
//! stopped first and then killed, and a cgroup frozen through `cgroup.freeze`.
use std::{
    collections::BTreeSet,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

/// Why an action failed: an errno (named in the event) with words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub errno: i32,
    pub reason: String,
}

impl Failure {
    pub fn new(errno: i32, reason: impl Into<String>) -> Self {
        Failure {
            errno,
            reason: reason.into(),
        }
    }

    pub fn gone() -> Self {
        Failure::new(libc::ESRCH, "the process is gone")
    }

    /// `ESRCH`, `EPERM`, ...
    pub fn name(&self) -> String {
        format!("{:?}", nix::errno::Errno::from_raw(self.errno))
    }
}

fn io_failure(e: std::io::Error, what: &str) -> Failure {
    Failure::new(
        e.raw_os_error().unwrap_or(libc::EIO),
        format!("{what}: {e}"),
    )
}

/// One exact process: its pid and its start time (ns since boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub start_ns: u64,
}

/// Reads /proc for the checks; `tick_ns` is the resolution of its start times.
#[derive(Clone, Debug)]
pub struct Procs {
    pub root: PathBuf,
    pub tick_ns: u64,
}

impl Procs {
    pub fn new(root: PathBuf) -> Self {
        Procs {
            root,
            tick_ns: crate::clock::tick_ns(),
        }
    }

    fn stat(&self, pid: u32) -> Option<procfs::process::Stat> {
        procfs::process::Process::new_with_root(self.root.join(pid.to_string()))
            .ok()?
            .stat()
            .ok()
    }

    /// The start time of `pid` now, if it runs.
    pub fn start_ns(&self, pid: u32) -> Option<u64> {
        self.stat(pid).map(|s| s.starttime * self.tick_ns)
    }

    pub fn ppid(&self, pid: u32) -> Option<u32> {
        self.stat(pid).map(|s| s.ppid.max(0) as u32)
    }

    /// A kernel thread (`PF_KTHREAD`).
    pub fn is_kernel_thread(&self, pid: u32) -> bool {
        self.stat(pid).is_some_and(|s| s.flags & 0x0020_0000 != 0)
    }

    pub fn exe(&self, pid: u32) -> Option<PathBuf> {
        std::fs::read_link(self.root.join(format!("{pid}/exe"))).ok()
    }

    /// The pidfd of exactly `p`: opened first, then the start time checked, so the fd can
    /// only name the process that was meant (a pid reused in between fails the check).
    pub fn open(&self, p: Proc) -> Result<OwnedFd, Failure> {
        let pid = Pid::from_raw(p.pid as i32).ok_or_else(Failure::gone)?;
        let fd = pidfd_open(pid, PidfdFlags::empty())
            .map_err(|e| Failure::new(e.raw_os_error(), format!("pidfd_open: {e}")))?;
        if p.start_ns == 0 {
            // Without the start time the pid could name a later process: never guess.
            return Err(Failure::new(
                libc::ESRCH,
                "the process's start time is unknown, so it cannot be told from a reused pid",
            ));
        }
        match self.start_ns(p.pid) {
            Some(s) if s.abs_diff(p.start_ns) < self.tick_ns.max(1) => Ok(fd),
            Some(_) => Err(Failure::new(
                libc::ESRCH,
                "the process is gone (its pid now names another process)",
            )),
            None => Err(Failure::gone()),
        }
    }

    /// Children of every pid in `of`, by a scan of /proc.
    fn children_of(&self, of: &BTreeSet<u32>) -> Vec<Proc> {
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| !of.contains(pid))
            .filter_map(|pid| {
                let st = self.stat(pid)?;
                of.contains(&(st.ppid.max(0) as u32)).then_some(Proc {
                    pid,
                    start_ns: st.starttime * self.tick_ns,
                })
            })
            .collect()
    }
}

pub fn signal(fd: &OwnedFd, sig: Signal) -> Result<(), Failure> {
    pidfd_send_signal(fd, sig)
        .map_err(|e| Failure::new(e.raw_os_error(), format!("pidfd_send_signal: {e}")))
}

/// SIGKILL to exactly `p`.
pub fn kill(procs: &Procs, p: Proc) -> Result<(), Failure> {
    signal(&procs.open(p)?, Signal::KILL)
}

/// `p` and every descendant: each is stopped as it is found (a stopped process forks no
/// more), the tree is walked again until it stops growing, then all are killed. `spare`
/// says which descendants must not be touched (protected). Returns the pids killed.
pub fn kill_tree(
    procs: &Procs,
    p: Proc,
    spare: &dyn Fn(u32) -> Option<String>,
) -> Result<Vec<u32>, Failure> {
    let root = procs.open(p)?;
    signal(&root, Signal::STOP)?;
    let mut fds = vec![(p.pid, root)];
    let mut seen: BTreeSet<u32> = [p.pid].into();
    // Bounded: a tree deeper than this many rounds is killed as found so far.
    for _ in 0..16 {
        let kids = procs.children_of(&seen);
        if kids.is_empty() {
            break;
        }
        for k in kids {
            seen.insert(k.pid);
            if spare(k.pid).is_some() {
                continue;
            }
            if let Ok(fd) = procs.open(k) {
                let _ = signal(&fd, Signal::STOP);
                fds.push((k.pid, fd));
            }
        }
    }
    let mut killed = Vec::new();
    for (pid, fd) in &fds {
        if signal(fd, Signal::KILL).is_ok() {
            killed.push(*pid);
        }
    }
    Ok(killed)
}

/// The cgroup v2 directory whose inode is `id` (the cgroup id the kernel reports), searched
/// breadth-first a few levels deep; a container's cgroup outlives the process that alerted.
pub fn cgroup_by_id(id: u64) -> Result<PathBuf, Failure> {
    use std::os::unix::fs::MetadataExt as _;
    let root = crate::filter::cgroup2_root()
        .ok_or_else(|| Failure::new(libc::ENOENT, "no cgroup v2 mount"))?;
    let mut level = vec![root];
    for _ in 0..8 {
        let mut next = Vec::new();
        for d in &level {
            if std::fs::metadata(d).is_ok_and(|m| m.ino() == id) {
                return Ok(d.clone());
            }
            if let Ok(rd) = std::fs::read_dir(d) {
                next.extend(
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        level = next;
    }
    Err(Failure::new(
        libc::ENOENT,
        format!("no cgroup with id {id} (the container is gone)"),
    ))
}

/// A process of the cgroup `dir`, if any is left.
pub fn member_of(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .ok()?
        .lines()
        .find_map(|l| l.trim().parse().ok())
}

/// Writes `cgroup.freeze` (1: freeze, 0: thaw).
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<(), Failure> {
    std::fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
        .map_err(|e| io_failure(e, &format!("writing {}/cgroup.freeze", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gone_or_reused_pid_is_esrch_and_never_signalled() {
        let procs = Procs::new("/proc".into());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = procs.start_ns(pid).unwrap();
        // The same pid with another start time: another process, never touched.
        let other = Proc {
            pid,
            start_ns: start + 10 * procs.tick_ns,
        };
        let e = kill(&procs, other).unwrap_err();
        assert_eq!(e.name(), "ESRCH");
        assert!(child.try_wait().unwrap().is_none(), "untouched");
        // No start time known: refused, never a guess.
        let unknown = Proc { pid, start_ns: 0 };
        assert_eq!(kill(&procs, unknown).unwrap_err().name(), "ESRCH");
        assert!(child.try_wait().unwrap().is_none(), "untouched");
        kill(
            &procs,
            Proc {
                pid,
                start_ns: start,
            },
        )
        .unwrap();
        let st = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
        // Reaped: gone.
        assert_eq!(
            kill(
                &procs,
                Proc {
                    pid,
                    start_ns: start
                }
            )
            .unwrap_err()
            .name(),
            "ESRCH"
        );
    }
}
