//! What the probe never touches (pid 1, kernel threads, itself and its ancestors, the protect
//! list), and the rate limits per rule and in all. A refusal is an event with its reason.
use std::{
    collections::{HashMap, VecDeque},
    path::Path,
    time::Instant,
};

use super::{actions::Procs, config::Rate};

pub struct Guard {
    /// The probe and every ancestor of it, at start.
    own: Vec<u32>,
    /// Exe paths (with a `/`) or exe/container names.
    protect: Vec<String>,
}

impl Guard {
    pub fn new(procs: &Procs, protect: Vec<String>) -> Self {
        let mut own = vec![std::process::id()];
        let mut at = std::process::id();
        // Bounded: a chain longer than this is not a real process tree.
        for _ in 0..256 {
            match procs.ppid(at) {
                Some(p) if p > 0 && !own.contains(&p) => {
                    own.push(p);
                    at = p;
                }
                _ => break,
            }
        }
        Guard { own, protect }
    }

    fn protected_name(&self, exe: &Path) -> Option<&str> {
        let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("");
        self.protect
            .iter()
            .find(|p| {
                if p.contains('/') {
                    Path::new(p.as_str()) == exe
                } else {
                    p.as_str() == name
                }
            })
            .map(String::as_str)
    }

    /// Why the process must not be touched, if it must not. `exe` is what the event says it
    /// runs; the exe /proc gives now is checked too.
    pub fn refuse_process(&self, procs: &Procs, pid: u32, exe: Option<&Path>) -> Option<String> {
        if pid <= 1 {
            return Some("pid 1 (init) is never touched".into());
        }
        if self.own.contains(&pid) {
            return Some(if pid == std::process::id() {
                "the probe itself is never touched".into()
            } else {
                "an ancestor of the probe is never touched".into()
            });
        }
        if procs.is_kernel_thread(pid) {
            return Some("kernel threads are never touched".into());
        }
        let now = procs.exe(pid);
        for e in exe.into_iter().chain(now.as_deref()) {
            if let Some(p) = self.protected_name(e) {
                return Some(format!("protected ({p}, respond.protect)"));
            }
        }
        None
    }

    /// Why the cgroup `dir` must not be frozen or killed: the probe runs in it or below it
    /// (e.g. tprobe's own DaemonSet container), and would stop itself.
    pub fn refuse_cgroup(&self, dir: &Path) -> Option<String> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
        let root = crate::filter::cgroup2_root()?;
        root.join(rel.trim().trim_start_matches('/'))
            .starts_with(dir)
            .then(|| "the probe itself runs in this cgroup; it is never frozen or killed".into())
    }

    /// Why a container must not be touched, if it must not.
    pub fn refuse_container(&self, name: Option<&str>) -> Option<String> {
        let n = name?;
        self.protect
            .iter()
            .any(|p| p == n)
            .then(|| format!("protected container ({n}, respond.protect)"))
    }
}

/// Sliding-window limits: per binding and in all.
pub struct Limiter {
    per_rule: Rate,
    global: Rate,
    rules: HashMap<String, VecDeque<Instant>>,
    all: VecDeque<Instant>,
    /// Actions refused by a limit.
    pub refused: u64,
}

fn admit(q: &mut VecDeque<Instant>, r: Rate, now: Instant) -> bool {
    while q.front().is_some_and(|t| now.duration_since(*t) >= r.per) {
        q.pop_front();
    }
    (q.len() as u32) < r.max
}

impl Limiter {
    pub fn new(per_rule: Rate, global: Rate) -> Self {
        Limiter {
            per_rule,
            global,
            rules: HashMap::new(),
            all: VecDeque::new(),
            refused: 0,
        }
    }

    /// `None` when the action may go ahead (it is counted), else the reason.
    pub fn take(&mut self, rule: &str) -> Option<String> {
        let now = Instant::now();
        let q = self.rules.entry(rule.to_owned()).or_default();
        if !admit(q, self.per_rule, now) {
            self.refused += 1;
            return Some(format!(
                "rate limit of rule {rule}: {} per {:?}",
                self.per_rule.max, self.per_rule.per
            ));
        }
        if !admit(&mut self.all, self.global, now) {
            self.refused += 1;
            return Some(format!(
                "global rate limit: {} per {:?}",
                self.global.max, self.global.per
            ));
        }
        q.push_back(now);
        self.all.push_back(now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_beyond_the_rate_and_count() {
        let r = Rate {
            max: 2,
            per: std::time::Duration::from_secs(60),
        };
        let g = Rate {
            max: 3,
            per: std::time::Duration::from_secs(60),
        };
        let mut l = Limiter::new(r, g);
        assert!(l.take("a").is_none());
        assert!(l.take("a").is_none());
        assert!(l.take("a").unwrap().contains("rule a"));
        assert!(l.take("b").is_none());
        assert!(l.take("b").unwrap().contains("global"));
        assert_eq!(l.refused, 2);
    }

    #[test]
    fn the_probe_and_pid_1_are_never_touched() {
        let procs = Procs::new("/proc".into());
        let g = Guard::new(&procs, vec!["sshd".into(), "/usr/bin/x".into()]);
        assert!(g.refuse_process(&procs, 1, None).is_some());
        assert!(g.refuse_process(&procs, std::process::id(), None).is_some());
        assert!(g
            .refuse_process(&procs, 999_999_999, Some(Path::new("/usr/sbin/sshd")))
            .unwrap()
            .contains("protected"));
        assert!(g
            .refuse_process(&procs, 999_999_999, Some(Path::new("/usr/bin/y")))
            .is_none());
    }
}

#[cfg(test)]
mod cgroup_tests {
    use super::*;

    #[test]
    fn the_probes_own_cgroup_is_refused() {
        let procs = Procs::new("/proc".into());
        let g = Guard::new(&procs, Vec::new());
        let Some(root) = crate::filter::cgroup2_root() else {
            return;
        };
        // The root holds every cgroup, the probe's too.
        assert!(g.refuse_cgroup(&root).is_some());
        assert!(g
            .refuse_cgroup(&root.join("tprobe-no-such-cgroup"))
            .is_none());
    }
}
