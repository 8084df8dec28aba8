//! The output filter: what the user asked to see. What the kernel can decide (pid set with `--follow`, cgroup set, uid set) goes into
//! maps through [`FilterSpec::kernel`]; the rest (`--comm`, `--exe`, container, pod, namespace,
//! host/containers only) is decided here, after enrichment.
//!
//! Values of one option are alternatives (OR); different options must all match (AND).
use std::{os::unix::fs::MetadataExt as _, path::PathBuf};

use serde_json::Value;

use crate::event::Event;

/// Which events by container presence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    #[default]
    All,
    HostOnly,
    ContainersOnly,
}

/// Every filter the user asked for, validated (from flags and the config file).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FilterSpec {
    pub pids: Vec<u32>,
    pub follow: bool,
    pub uids: Vec<u32>,
    /// cgroup v2 ids (a cgroup matches with everything below it).
    pub cgroups: Vec<u64>,
    pub comm: Vec<String>,
    pub exe: Vec<String>,
    pub container: Vec<String>,
    /// `(namespace, name)`.
    pub pod: Vec<(String, String)>,
    pub namespace: Vec<String>,
    pub scope: Scope,
}

/// The part of a [`FilterSpec`] the kernel applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelFilterSpec {
    pub pids: Vec<u32>,
    pub follow: bool,
    pub uids: Vec<u32>,
    pub cgroups: Vec<u64>,
}

impl FilterSpec {
    pub fn kernel(&self) -> KernelFilterSpec {
        KernelFilterSpec {
            pids: self.pids.clone(),
            follow: self.follow,
            uids: self.uids.clone(),
            cgroups: self.cgroups.clone(),
        }
    }
}

/// `--pid`: a positive process id.
pub fn parse_pid(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{s:?} is not a process id (a positive number)")),
    }
}

/// `--uid`: a number or a user name known to this host.
pub fn parse_uid(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if let Ok(u) = s.parse::<u32>() {
        return Ok(u);
    }
    match nix::unistd::User::from_name(s) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        _ => Err(format!("{s:?} is neither a uid nor a known user name")),
    }
}

/// The cgroup v2 mount point: `/sys/fs/cgroup` on unified hosts, `/sys/fs/cgroup/unified` on
/// hybrid ones.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// `--cgroup`: a cgroup id, a cgroup v2 directory, or a path below the v2 mount
/// (`/kubepods/besteffort`, as in `/proc/PID/cgroup`).
pub fn parse_cgroup(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(id) = s.parse::<u64>() {
        return Ok(id);
    }
    let root = cgroup2_root();
    let mut candidates = vec![PathBuf::from(s)];
    if let Some(r) = &root {
        candidates.insert(0, r.join(s.trim_start_matches('/')));
    }
    for c in candidates {
        if let Ok(m) = std::fs::metadata(&c) {
            if m.is_dir() && root.as_ref().is_some_and(|r| c.starts_with(r)) {
                return Ok(m.ino());
            }
        }
    }
    Err(format!(
        "{s:?} is not a cgroup id nor a cgroup v2 directory (under {})",
        root.map(|r| r.display().to_string())
            .unwrap_or_else(|| "no cgroup2 mount".into())
    ))
}

/// `--pod`: `namespace/name`.
pub fn parse_pod(s: &str) -> Result<(String, String), String> {
    match s.trim().split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{s:?} is not of the form NAMESPACE/NAME")),
    }
}

/// `--comm` / `--exe`: an exact value or a shell glob (`*`, `?`, `[...]`).
pub fn parse_glob(s: &str) -> Result<String, String> {
    glob::Pattern::new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{s:?} is not a valid pattern: {e}"))
}

/// What the container filters need to know about an event's container: the `container`
/// object of the schema (`id`, `name`, `pod.name`, `pod.namespace`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerFacts {
    pub id: String,
    pub name: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
}

impl ContainerFacts {
    /// From the container enrichment's data for the event's process.
    pub fn from_info(c: &crate::event::container::ContainerInfo) -> Self {
        ContainerFacts {
            id: c.id.clone(),
            name: c.name.clone(),
            pod_name: c.pod.as_ref().and_then(|p| p.name.clone()),
            pod_namespace: c.pod.as_ref().and_then(|p| p.namespace.clone()),
        }
    }

    /// From the schema's `container` JSON object (as the container enrichment renders it).
    pub fn from_json(c: &Value) -> Option<Self> {
        let s = |v: &Value| v.as_str().map(str::to_owned);
        Some(ContainerFacts {
            id: s(&c["id"])?,
            name: s(&c["name"]),
            pod_name: s(&c["pod"]["name"]),
            pod_namespace: s(&c["pod"]["namespace"]),
        })
    }
}

/// The userspace filters, compiled.
#[derive(Clone, Debug, Default)]
pub struct OutputFilter {
    spec: FilterSpec,
    comm: Vec<glob::Pattern>,
    exe: Vec<glob::Pattern>,
}

fn compile(pats: &[String]) -> Result<Vec<glob::Pattern>, String> {
    pats.iter()
        .map(|p| glob::Pattern::new(p).map_err(|e| format!("{p:?}: {e}")))
        .collect()
}

fn any_glob(pats: &[glob::Pattern], value: Option<&[u8]>) -> bool {
    let Some(v) = value else { return false };
    let v = String::from_utf8_lossy(v);
    pats.iter().any(|p| p.matches(&v))
}

impl OutputFilter {
    pub fn new(spec: &FilterSpec) -> Result<Self, String> {
        Ok(OutputFilter {
            spec: spec.clone(),
            comm: compile(&spec.comm)?,
            exe: compile(&spec.exe)?,
        })
    }

    pub fn spec(&self) -> &FilterSpec {
        &self.spec
    }

    /// Nothing for userspace to decide.
    pub fn is_noop(&self) -> bool {
        self.comm.is_empty() && self.exe.is_empty() && !self.needs_container()
    }

    fn needs_container(&self) -> bool {
        let s = &self.spec;
        !(s.container.is_empty()
            && s.pod.is_empty()
            && s.namespace.is_empty()
            && s.scope == Scope::All)
    }

    /// Whether `ev` passes. `probe.*` events always pass; `container` is asked at most once.
    pub fn matches(
        &self,
        ev: &Event,
        container: impl FnOnce(&Event) -> Option<ContainerFacts>,
    ) -> bool {
        let Some(t) = ev.task.as_ref() else {
            return true;
        };
        if !self.comm.is_empty() {
            let comm = ev
                .process
                .as_deref()
                .map(|p| p.comm.as_slice())
                .filter(|c| !c.is_empty())
                .unwrap_or(&t.comm);
            // The kernel's comm of the acting task, or the process's (threads may rename).
            if !any_glob(&self.comm, Some(&t.comm)) && !any_glob(&self.comm, Some(comm)) {
                return false;
            }
        }
        if !self.exe.is_empty() {
            let exe = ev.process.as_deref().and_then(|p| p.exe.as_deref());
            if !any_glob(&self.exe, exe) {
                return false;
            }
        }
        if self.needs_container() {
            return self.container_matches(container(ev).as_ref());
        }
        true
    }

    /// The container part alone (exposed so the container enrichment can test its data).
    pub fn container_matches(&self, c: Option<&ContainerFacts>) -> bool {
        let s = &self.spec;
        match s.scope {
            Scope::HostOnly if c.is_some() => return false,
            Scope::ContainersOnly if c.is_none() => return false,
            _ => {}
        }
        if !s.container.is_empty() {
            let Some(c) = c else { return false };
            let hit = s.container.iter().any(|want| {
                // Full id, a short id (docker-style prefix of 4+ hex digits), or the name.
                c.id == *want
                    || (want.len() >= 4 && c.id.starts_with(want.as_str()))
                    || c.name.as_deref() == Some(want.as_str())
            });
            if !hit {
                return false;
            }
        }
        if !s.pod.is_empty() {
            let Some(c) = c else { return false };
            let hit = s.pod.iter().any(|(ns, name)| {
                c.pod_namespace.as_deref() == Some(ns.as_str())
                    && c.pod_name.as_deref() == Some(name.as_str())
            });
            if !hit {
                return false;
            }
        }
        if !s.namespace.is_empty() {
            let Some(ns) = c.and_then(|c| c.pod_namespace.as_deref()) else {
                return false;
            };
            if !s.namespace.iter().any(|n| n == ns) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        event::process::ProcessInfo,
        event::{Body, ExitStatus, Task},
    };

    fn ev(comm: &str, exe: &str) -> Event {
        Event {
            ts_ns: 1,
            task: Some(Task {
                kind: probe_common::EventKind::ProcessExit,
                flags: 0,
                ts_ns: 1,
                pid: 5,
                tid: 5,
                ppid: 1,
                uid: 0,
                gid: 0,
                cgroup_id: 1,
                start_ns: 1,
                parent_start_ns: 0,
                comm: comm.as_bytes().to_vec(),
                exec_id: 0,
                id: Default::default(),
            }),
            body: Body::Exit(ExitStatus::from_wait_status(0)),
            process: Some(Arc::new(ProcessInfo {
                comm: comm.as_bytes().to_vec(),
                exe: Some(exe.as_bytes().to_vec()),
                ..Default::default()
            })),
            parent: None,
            ancestors: None,
            user: None,
            container: None,
        }
    }

    fn filter(f: impl FnOnce(&mut FilterSpec)) -> OutputFilter {
        let mut s = FilterSpec::default();
        f(&mut s);
        OutputFilter::new(&s).unwrap()
    }

    #[test]
    fn comm_and_exe_globs() {
        let f = filter(|s| s.comm = vec!["curl".into(), "py*".into()]);
        assert!(f.matches(&ev("curl", "/usr/bin/curl"), |_| None));
        assert!(f.matches(&ev("python3", "/usr/bin/python3"), |_| None));
        assert!(!f.matches(&ev("wget", "/usr/bin/wget"), |_| None));
        let f = filter(|s| {
            s.exe = vec!["/usr/bin/*".into()];
            s.comm = vec!["curl".into()];
        });
        assert!(f.matches(&ev("curl", "/usr/bin/curl"), |_| None));
        assert!(!f.matches(&ev("curl", "/opt/curl"), |_| None));
        assert!(!f.matches(&ev("wget", "/usr/bin/wget"), |_| None));
        assert!(filter(|_| {}).is_noop());
        let probe = Event::probe(
            1,
            Body::Loss {
                source: "ringbuf",
                kind: "x".into(),
                count: 1,
                since_ns: 0,
            },
        );
        assert!(f.matches(&probe, |_| None), "probe.* always passes");
    }

    #[test]
    fn container_filters_over_schema_json() {
        let c = ContainerFacts::from_json(&serde_json::json!({
            "id": "3f2a".repeat(16), "runtime": "containerd", "name": "web",
            "pod": {"name": "api-7d", "namespace": "shop", "uid": "u"}
        }))
        .unwrap();
        let host: Option<ContainerFacts> = None;
        let f = filter(|s| s.scope = Scope::HostOnly);
        assert!(f.container_matches(host.as_ref()) && !f.container_matches(Some(&c)));
        let f = filter(|s| s.scope = Scope::ContainersOnly);
        assert!(!f.container_matches(host.as_ref()) && f.container_matches(Some(&c)));
        for want in ["web", "3f2a3f2a3f2a", &"3f2a".repeat(16)] {
            let f = filter(|s| s.container = vec![want.to_owned()]);
            assert!(f.container_matches(Some(&c)), "{want}");
            assert!(!f.container_matches(host.as_ref()));
        }
        let f = filter(|s| s.container = vec!["db".into(), "3f2".into()]);
        assert!(
            !f.container_matches(Some(&c)),
            "3-digit prefixes are too short"
        );
        let f = filter(|s| s.pod = vec![parse_pod("shop/api-7d").unwrap()]);
        assert!(f.container_matches(Some(&c)));
        let f = filter(|s| s.pod = vec![parse_pod("other/api-7d").unwrap()]);
        assert!(!f.container_matches(Some(&c)));
        let f = filter(|s| s.namespace = vec!["kube-system".into(), "shop".into()]);
        assert!(f.container_matches(Some(&c)) && !f.container_matches(host.as_ref()));
        let f = filter(|s| s.namespace = vec!["kube-system".into()]);
        assert!(!f.container_matches(Some(&c)));
        assert!(ContainerFacts::from_json(&serde_json::json!({"name": "x"})).is_none());
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_pid("42"), Ok(42));
        assert!(parse_pid("0").is_err() && parse_pid("x").is_err() && parse_pid("-1").is_err());
        assert_eq!(parse_uid("0"), Ok(0));
        assert_eq!(parse_uid("root"), Ok(0));
        assert!(parse_uid("no-such-user-xyz").is_err());
        assert_eq!(parse_pod("ns/name"), Ok(("ns".into(), "name".into())));
        for bad in ["ns", "/name", "ns/", "a/b/c"] {
            assert!(parse_pod(bad).is_err(), "{bad}");
        }
        assert!(parse_glob("[").is_err());
        assert_eq!(parse_cgroup("12345"), Ok(12345));
        assert!(parse_cgroup("/no/such/cgroup/dir").is_err());
        if let Some(root) = cgroup2_root() {
            let ino = std::fs::metadata(&root).unwrap().ino();
            assert_eq!(parse_cgroup("/"), Ok(ino));
            assert_eq!(parse_cgroup(root.to_str().unwrap()), Ok(ino));
        }
    }
}
