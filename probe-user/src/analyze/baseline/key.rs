//! The workload an event belongs to: what a profile is learned for.
//!
//! - A container: its image repository without tag or digest, with the container name and
//!   the pod namespace when there are any: `tprobe.local/busybox` (a plain containerd
//!   container), `web@registry.local/nginx` (a named container), `shop/web@registry.local/nginx`
//!   (a container `web` of a pod in namespace `shop`).
//! - A host process: `host:` and its cgroup path (`host:system.slice/nginx.service`); in the
//!   root cgroup or a login session, `host:session:` and the executable of the session's
//!   leader (`host:session:/usr/sbin/sshd`).
//! - The label `tprobe.io/profile=NAME` on the container or its pod names the workload
//!   `NAME` instead.
use std::{collections::HashMap, sync::Arc};

use crate::{
    enrich::container::cgroupfs::CgroupFs,
    event::{container::ContainerInfo, Event},
};

/// The label that names a workload's profile.
pub const PROFILE_LABEL: &str = "tprobe.io/profile";

/// Caches are dropped whole when they grow past this (rebuilt as events come).
const CACHE_CAP: usize = 16384;

pub struct Keys {
    cgroupfs: Option<CgroupFs>,
    proc_root: std::path::PathBuf,
    containers: HashMap<String, Option<Arc<str>>>,
    cgroups: HashMap<u64, Option<Arc<str>>>,
    sessions: HashMap<(u32, u64), Arc<str>>,
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new("/proc".into())
    }
}

/// An image reference without its tag or digest: `reg:5000/a/b:1@sha256:..` → `reg:5000/a/b`.
pub fn image_repo(image: &str) -> &str {
    let no_digest = image.split_once('@').map_or(image, |(r, _)| r);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    }
}

/// The key of a container, `None` while its image is not known (a cgroup-only answer).
pub fn container_key(c: &ContainerInfo) -> Option<String> {
    let label = |l: &Option<std::collections::BTreeMap<String, String>>| {
        l.as_ref()?
            .get(PROFILE_LABEL)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    };
    if let Some(n) = label(&c.labels).or_else(|| c.pod.as_ref().and_then(|p| label(&p.labels))) {
        return Some(n);
    }
    let repo = image_repo(c.image.as_deref()?);
    let ns = c.pod.as_ref().and_then(|p| p.namespace.as_deref());
    Some(match (ns, c.name.as_deref()) {
        (Some(ns), Some(name)) => format!("{ns}/{name}@{repo}"),
        (Some(ns), None) => format!("{ns}/*@{repo}"),
        (None, Some(name)) => format!("{name}@{repo}"),
        (None, None) => repo.to_owned(),
    })
}

/// A host cgroup that names a service (not the root, not a login session or user slice).
fn service_cgroup(path: &str) -> Option<&str> {
    let p = path.trim_start_matches('/');
    let session = p.is_empty()
        || p.starts_with("user.slice")
        || p.split('/')
            .any(|c| c.starts_with("session-") && c.ends_with(".scope"))
        || p == "init.scope";
    (!session).then_some(p)
}

impl Keys {
    pub fn new(proc_root: std::path::PathBuf) -> Keys {
        Keys {
            cgroupfs: CgroupFs::find(),
            proc_root,
            containers: HashMap::new(),
            cgroups: HashMap::new(),
            sessions: HashMap::new(),
        }
    }

    /// The workload of `ev`; `None` when it cannot be told yet (a container whose image is
    /// not known, an event without a process).
    pub fn key(&mut self, ev: &Event) -> Option<Arc<str>> {
        if let Some(c) = ev.container.as_deref() {
            if let Some(k) = self.containers.get(&c.id) {
                return k.clone();
            }
            let k: Option<Arc<str>> = container_key(c).map(Into::into);
            // A cgroup-only answer may still become a full one: only full ones are kept.
            if k.is_some() {
                if self.containers.len() >= CACHE_CAP {
                    self.containers.clear();
                }
                self.containers.insert(c.id.clone(), k.clone());
            }
            return k;
        }
        let task = ev.task.as_ref()?;
        let cg = match self.cgroups.get(&task.cgroup_id) {
            Some(k) => k.clone(),
            None => {
                let k = self
                    .cgroupfs
                    .as_ref()
                    .and_then(|fs| fs.path(task.cgroup_id))
                    .or_else(|| self.proc_cgroup(task.pid))
                    .and_then(|p| service_cgroup(&p).map(|s| Arc::from(format!("host:{s}"))));
                if self.cgroups.len() >= CACHE_CAP {
                    self.cgroups.clear();
                }
                self.cgroups.insert(task.cgroup_id, k.clone());
                k
            }
        };
        if cg.is_some() {
            return cg;
        }
        let id = (task.pid, task.start_ns);
        if let Some(k) = self.sessions.get(&id) {
            return Some(k.clone());
        }
        let k: Arc<str> = format!("host:session:{}", self.session_exe(task.pid, ev)).into();
        if self.sessions.len() >= CACHE_CAP {
            self.sessions.clear();
        }
        self.sessions.insert(id, k.clone());
        Some(k)
    }

    /// The v2 line of `/proc/<pid>/cgroup` (no cgroup2 mount to open handles on).
    fn proc_cgroup(&self, pid: u32) -> Option<String> {
        let s =
            std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("cgroup")).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned)
    }

    /// The executable of the session leader of `pid` (a slow fact, read once per process);
    /// the process's own when the leader is gone or unreadable.
    fn session_exe(&self, pid: u32, ev: &Event) -> String {
        let own = || {
            ev.process
                .as_deref()
                .and_then(|p| p.exe.as_deref())
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .unwrap_or_else(|| "unknown".into())
        };
        let stat = std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("stat"));
        // The session id is the 4th field after the `(comm)` (which may hold spaces).
        let sid = stat.ok().and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().nth(3)?.parse::<u32>().ok()
        });
        match sid.filter(|s| *s > 1) {
            Some(sid) => std::fs::read_link(self.proc_root.join(sid.to_string()).join("exe"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| own()),
            None => own(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_repositories_lose_tag_and_digest() {
        assert_eq!(image_repo("tprobe.local/busybox:1"), "tprobe.local/busybox");
        assert_eq!(image_repo("reg:5000/a/b:1.2@sha256:00ff"), "reg:5000/a/b");
        assert_eq!(image_repo("reg:5000/a/b"), "reg:5000/a/b");
        assert_eq!(image_repo("nginx"), "nginx");
    }

    #[test]
    fn container_keys_and_the_override_label() {
        let mut c = ContainerInfo {
            id: "abc".into(),
            image: Some("tprobe.local/busybox:1".into()),
            ..Default::default()
        };
        assert_eq!(container_key(&c).unwrap(), "tprobe.local/busybox");
        c.name = Some("web".into());
        assert_eq!(container_key(&c).unwrap(), "web@tprobe.local/busybox");
        c.pod = Some(crate::event::container::PodInfo {
            namespace: Some("shop".into()),
            labels: Some([(PROFILE_LABEL.to_owned(), "front".to_owned())].into()),
            ..Default::default()
        });
        assert_eq!(container_key(&c).unwrap(), "front");
        c.pod.as_mut().unwrap().labels = None;
        assert_eq!(container_key(&c).unwrap(), "shop/web@tprobe.local/busybox");
        c.image = None;
        assert!(container_key(&c).is_none());
    }

    #[test]
    fn service_cgroups_and_sessions() {
        assert_eq!(
            service_cgroup("/system.slice/nginx.service"),
            Some("system.slice/nginx.service")
        );
        assert_eq!(service_cgroup("/"), None);
        assert_eq!(
            service_cgroup("/user.slice/user-0.slice/session-3.scope"),
            None
        );
        assert_eq!(service_cgroup("/tprobe-job"), Some("tprobe-job"));
    }
}
