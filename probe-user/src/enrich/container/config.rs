//! Settings of the container stage and the runtime sockets it looks for.
use std::{path::PathBuf, time::Duration};

/// Usual socket paths, tried in order when no flag names one.
pub const CRI_SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/var/run/crio/crio.sock",
];
/// Docker Engine API, or podman's compatible service.
pub const DOCKER_SOCKETS: &[&str] = &[
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/podman/podman.sock",
];
pub const CONTAINERD_SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
];

/// Settings of the container stage (CLI flags).
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    pub enabled: bool,
    pub cri_socket: Option<PathBuf>,
    pub containerd_socket: Option<PathBuf>,
    /// Docker Engine API socket (Docker, or podman's compatible service).
    pub docker_socket: Option<PathBuf>,
    /// containerd namespaces tried after the one the cgroup path names.
    pub containerd_namespaces: Vec<String>,
    /// Longest time an event waits for its container's first lookup.
    pub wait: Duration,
    /// How often entries of vanished cgroups are evicted.
    pub sweep_interval: Duration,
    /// How long a "not found" answer is kept before the runtime is asked again.
    pub negative_ttl: Duration,
    /// Events held at most (beyond it the oldest goes out without waiting).
    pub hold_capacity: usize,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            enabled: true,
            cri_socket: None,
            containerd_socket: None,
            docker_socket: None,
            containerd_namespaces: vec!["k8s.io".into(), "default".into(), "moby".into()],
            wait: Duration::from_millis(200),
            sweep_interval: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(30),
            hold_capacity: 4096,
        }
    }
}

/// `auto` (or no flag): the first usual path that exists; `none`/empty: off; else the path.
pub fn socket_choice(flag: Option<&str>, defaults: &[&str]) -> Option<PathBuf> {
    match flag.map(str::trim) {
        Some("none") | Some("") => None,
        Some("auto") | None => defaults.iter().map(PathBuf::from).find(|p| p.exists()),
        Some(p) => Some(PathBuf::from(p)),
    }
}
