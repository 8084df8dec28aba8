//! Pure parser: cgroup path -> container id and runtime, for the layouts real nodes use
//! (cgroupfs and systemd drivers; containerd, CRI-O, Docker, podman; cgroup v1, v2, hybrid).
//! No I/O here: the resolver (`container.rs`) finds the path, this module only reads it.

/// Which runtime the path says made the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
}

impl Runtime {
    /// The `container.runtime` string of the schema.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }
}

/// What a cgroup path tells about the container a process runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMatch {
    pub id: String,
    /// `None` when the layout does not name the runtime (kubelet's cgroupfs driver gives
    /// `/kubepods/.../pod<uid>/<id>` for containerd and cri-dockerd alike): the CRI answer says.
    pub runtime: Option<Runtime>,
    /// Under a `kubepods` hierarchy: ask CRI first.
    pub kube: bool,
    /// Pod uid from a `pod<uid>` segment (dashes restored for the systemd form).
    pub pod_uid: Option<String>,
    /// `/<namespace>/<id>` (containerd outside CRI, e.g. `ctr run`): the namespace.
    pub containerd_namespace: Option<String>,
    /// The path alone is not proof: `/<namespace>/<id>` with a free-form id could be any
    /// two-level cgroup, so only the runtime's answer makes it a container.
    pub needs_confirmation: bool,
}

/// A full 64-hex container id (containerd, CRI-O, Docker and podman all use them).
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// containerd's identifier rule: alphanumerics separated by single `.`, `_` or `-`, at most 76.
fn is_containerd_identifier(s: &str) -> bool {
    if s.is_empty() || s.len() > 76 {
        return false;
    }
    let b = s.as_bytes();
    let sep = |c: u8| matches!(c, b'.' | b'_' | b'-');
    if sep(b[0]) || sep(b[b.len() - 1]) {
        return false;
    }
    b.iter().all(|&c| c.is_ascii_alphanumeric() || sep(c))
        && !b.windows(2).any(|w| sep(w[0]) && sep(w[1]))
}

/// `<prefix><hex64>` with an optional `.scope` suffix (the systemd driver adds it).
fn prefixed_id<'a>(seg: &'a str, prefix: &str, scope: Scope) -> Option<&'a str> {
    let rest = seg.strip_prefix(prefix)?;
    let id = match (rest.strip_suffix(".scope"), scope) {
        (Some(id), _) => id,
        (None, Scope::Optional) => rest,
        (None, Scope::Required) => return None,
    };
    is_hex64(id).then_some(id)
}

#[derive(Clone, Copy)]
enum Scope {
    Required,
    Optional,
}

/// Pod uid from `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid_with_underscores>.slice`.
fn pod_uid(seg: &str) -> Option<String> {
    let s = seg.strip_suffix(".slice").unwrap_or(seg);
    let i = s.rfind("pod")?;
    if i > 0 && !s[..i].ends_with('-') {
        return None;
    }
    let uid = &s[i + 3..];
    let ok = uid.len() >= 32
        && uid
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
    ok.then(|| uid.replace('_', "-"))
}

/// Parses one cgroup path (as in `/proc/<pid>/cgroup` or under the cgroup2 mount).
pub fn parse_path(path: &str) -> Option<CgroupMatch> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let kube_at = segs
        .iter()
        .position(|s| *s == "kubepods" || s.starts_with("kubepods.") || *s == "kubepods.slice");
    let pod = kube_at.and_then(|k| segs[k..].iter().find_map(|s| pod_uid(s)));
    let base = |id: &str, runtime: Option<Runtime>| CgroupMatch {
        id: id.to_owned(),
        runtime,
        kube: kube_at.is_some(),
        pod_uid: pod.clone(),
        containerd_namespace: None,
        needs_confirmation: false,
    };

    // Named forms, innermost first: a container may put its processes in sub-cgroups
    // (`.../libpod-<id>.scope/container`), so the last match wins.
    for seg in segs.iter().rev() {
        // conmon (`crio-conmon-<id>`, `libpod-conmon-<id>`) is the runtime's monitor, on the host.
        if seg.starts_with("crio-conmon-") || seg.starts_with("libpod-conmon-") {
            return None;
        }
        let named = [
            ("cri-containerd-", Scope::Required, Runtime::Containerd),
            ("crio-", Scope::Optional, Runtime::CriO),
            ("docker-", Scope::Required, Runtime::Docker),
            ("libpod-", Scope::Optional, Runtime::Podman),
        ];
        for (prefix, scope, rt) in named {
            if let Some(id) = prefixed_id(seg, prefix, scope) {
                return Some(base(id, Some(rt)));
            }
        }
    }

    // cgroupfs forms, by position.
    if let Some(k) = kube_at {
        // /kubepods[/<qos>]/pod<uid>/<id>: the segment right after the pod segment.
        let p = segs[k..].iter().position(|s| pod_uid(s).is_some())? + k;
        let id = segs.get(p + 1)?;
        return is_hex64(id).then(|| base(id, None));
    }
    match segs.as_slice() {
        ["docker", id, ..] if is_hex64(id) => Some(base(id, Some(Runtime::Docker))),
        // /libpod_parent/[<pod-id>/]libpod-<id> is caught above.
        [ns, id] if is_containerd_namespace(ns) && is_containerd_identifier(id) => {
            let mut m = base(id, Some(Runtime::Containerd));
            m.containerd_namespace = Some((*ns).to_owned());
            m.needs_confirmation = !is_hex64(id);
            Some(m)
        }
        _ => None,
    }
}

/// A containerd namespace, and not a name systemd or the other runtimes use at the top level.
fn is_containerd_namespace(ns: &str) -> bool {
    const NOT: &[&str] = &[
        "docker",
        "libpod_parent",
        "machine",
        "lxc",
        "lxc.payload",
        "kubepods",
        "podruntime",
        "runtime",
        "system",
        "user",
    ];
    is_containerd_identifier(ns)
        && !ns.ends_with(".slice")
        && !ns.ends_with(".scope")
        && !ns.ends_with(".service")
        && !NOT.contains(&ns)
}

/// Picks the container from `/proc/<pid>/cgroup`: the v2 line (`0::`) first, then the v1 lines.
pub fn parse_proc_cgroup(content: &str) -> Option<CgroupMatch> {
    let path_of = |l: &str| l.splitn(3, ':').nth(2).map(str::to_owned);
    let v2 = content.lines().find(|l| l.starts_with("0::"));
    if let Some(m) = v2.and_then(path_of).and_then(|p| parse_path(&p)) {
        return Some(m);
    }
    content
        .lines()
        .filter(|l| !l.starts_with("0::"))
        .filter_map(path_of)
        .find_map(|p| parse_path(&p))
}

/// The v2 path from `/proc/<pid>/cgroup` (the `0::` line), if any.
pub fn v2_path(content: &str) -> Option<&str> {
    content.lines().find_map(|l| l.strip_prefix("0::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f2c1e0b9a8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29180716253443526170ab";
    const POD: &str = "0b5f6c2e-8d4a-4f1b-9c3d-2e7a6b5c4d3e";

    fn m(path: &str) -> CgroupMatch {
        parse_path(path).unwrap_or_else(|| panic!("no match for {path}"))
    }

    #[test]
    fn containerd_systemd_driver() {
        let pod_ = POD.replace('-', "_");
        let p = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod_}.slice/cri-containerd-{ID}.scope"
        );
        let c = m(&p);
        assert_eq!(c.id, ID);
        assert_eq!(c.runtime, Some(Runtime::Containerd));
        assert!(c.kube);
        assert_eq!(c.pod_uid.as_deref(), Some(POD));
        assert!(!c.needs_confirmation);
        // Guaranteed QoS pods sit directly under kubepods.slice.
        let p = format!("/kubepods.slice/kubepods-pod{pod_}.slice/cri-containerd-{ID}.scope");
        assert_eq!(m(&p).pod_uid.as_deref(), Some(POD));
    }

    #[test]
    fn containerd_cgroupfs_driver() {
        let c = m(&format!("/kubepods/besteffort/pod{POD}/{ID}"));
        assert_eq!(c.id, ID);
        assert_eq!(c.runtime, None, "cgroupfs does not name the runtime");
        assert!(c.kube);
        assert_eq!(c.pod_uid.as_deref(), Some(POD));
        let c = m(&format!("/kubepods/pod{POD}/{ID}"));
        assert_eq!(c.id, ID);
        // The pod cgroup itself is not a container.
        assert_eq!(parse_path(&format!("/kubepods/burstable/pod{POD}")), None);
        assert_eq!(parse_path("/kubepods/besteffort"), None);
        assert_eq!(parse_path("/kubepods"), None);
    }

    #[test]
    fn containerd_namespaces() {
        let c = m(&format!("/k8s.io/{ID}"));
        assert_eq!(c.containerd_namespace.as_deref(), Some("k8s.io"));
        assert_eq!(c.runtime, Some(Runtime::Containerd));
        assert!(!c.needs_confirmation);
        let c = m("/default/tprobe-demo-1");
        assert_eq!(c.id, "tprobe-demo-1");
        assert_eq!(c.containerd_namespace.as_deref(), Some("default"));
        assert!(c.needs_confirmation, "a free-form id is only a candidate");
    }

    #[test]
    fn crio() {
        let c = m(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/crio-{ID}.scope",
            POD.replace('-', "_")
        ));
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some(Runtime::CriO)));
        // CRI-O with the cgroupfs manager.
        let c = m(&format!("/kubepods/besteffort/pod{POD}/crio-{ID}"));
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some(Runtime::CriO)));
        assert_eq!(
            parse_path(&format!(
                "/kubepods.slice/kubepods-pod{}.slice/crio-conmon-{ID}.scope",
                POD.replace('-', "_")
            )),
            None
        );
    }

    #[test]
    fn docker() {
        let c = m(&format!("/system.slice/docker-{ID}.scope"));
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some(Runtime::Docker)));
        assert!(!c.kube);
        let c = m(&format!("/docker/{ID}"));
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some(Runtime::Docker)));
        // A docker-in-docker child cgroup.
        let c = m(&format!("/docker/{ID}/init"));
        assert_eq!(c.id, ID);
        assert_eq!(parse_path("/docker"), None);
        assert_eq!(
            parse_path(&format!("/system.slice/docker-{ID}.service")),
            None
        );
        assert_eq!(parse_path("/system.slice/docker.service"), None);
    }

    #[test]
    fn podman() {
        let c = m(&format!("/libpod_parent/libpod-{ID}"));
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some(Runtime::Podman)));
        let pod_id = "a".repeat(64);
        let c = m(&format!("/libpod_parent/{pod_id}/libpod-{ID}"));
        assert_eq!(c.id, ID);
        let c = m(&format!("/machine.slice/libpod-{ID}.scope"));
        assert_eq!(c.id, ID);
        // systemd in the container: processes in a sub-cgroup.
        let c = m(&format!("/machine.slice/libpod-{ID}.scope/container"));
        assert_eq!(c.id, ID);
        // Rootless podman lives in a user slice and is still a container.
        let c = m(&format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
        ));
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some(Runtime::Podman)));
        assert_eq!(
            parse_path(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
        assert_eq!(parse_path("/libpod_parent/conmon"), None);
    }

    #[test]
    fn look_alikes_are_not_containers() {
        for p in [
            "/".to_owned(),
            "".to_owned(),
            "/init.scope".to_owned(),
            "/system.slice/containerd.service".to_owned(),
            "/system.slice/cron.service".to_owned(),
            "/user.slice/user-1000.slice/session-3.scope".to_owned(),
            // 64 hex characters inside a user slice segment are not a container id.
            format!("/user.slice/user-1000.slice/user@1000.service/app.slice/app-{ID}.scope"),
            format!("/user.slice/user-1000.slice/session-{ID}.scope"),
            format!("/user.slice/{ID}"),
            format!("/system.slice/{ID}"),
            format!("/system.slice/run-{ID}.scope"),
            format!("/system.slice/snap.{ID}.scope"),
            // Almost ids: too short, too long, upper case.
            format!("/system.slice/docker-{}.scope", &ID[..63]),
            format!("/system.slice/docker-{ID}0.scope"),
            format!("/system.slice/docker-{}.scope", ID.to_uppercase()),
            format!("/kubepods/besteffort/pod{POD}/{}", &ID[..12]),
            // Three levels without a known runtime layout.
            format!("/a/b/{ID}"),
            "/default/with space".to_owned(),
            "/machine/qemu-1".to_owned(),
        ] {
            assert_eq!(parse_path(&p), None, "{p}");
        }
    }

    #[test]
    fn proc_cgroup_v2_hybrid_and_v1() {
        // Hybrid (this machine): v1 lines, then the unified line.
        let hybrid = format!(
            "12:memory:/default/demo\n1:name=systemd:/default/demo\n0::/kubepods/besteffort/pod{POD}/{ID}\n"
        );
        let c = parse_proc_cgroup(&hybrid).unwrap();
        assert_eq!(c.id, ID);
        assert_eq!(
            v2_path(&hybrid),
            Some(&*format!("/kubepods/besteffort/pod{POD}/{ID}"))
        );
        // Pure v1 (no unified line).
        let v1 =
            format!("11:cpuset:/docker/{ID}\n4:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n");
        let c = parse_proc_cgroup(&v1).unwrap();
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some(Runtime::Docker)));
        assert_eq!(v2_path(&v1), None);
        // Pure v2 on the host.
        assert_eq!(parse_proc_cgroup("0::/init.scope\n"), None);
        assert_eq!(parse_proc_cgroup("0::/\n"), None);
        assert_eq!(parse_proc_cgroup("garbage"), None);
        assert_eq!(parse_proc_cgroup(""), None);
    }

    #[test]
    fn identifiers() {
        assert!(is_containerd_identifier("a.b_c-d9"));
        assert!(!is_containerd_identifier("a..b"));
        assert!(!is_containerd_identifier("-a"));
        assert!(!is_containerd_identifier(&"a".repeat(77)));
        assert!(is_hex64(ID));
        assert!(!is_hex64(&ID.to_uppercase()));
    }
}
