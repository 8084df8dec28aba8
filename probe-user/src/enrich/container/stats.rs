//! Counters of the container stage, for `probe.stop` and `/metrics`.
use std::sync::atomic::AtomicU64;

/// Counters for `probe.stop`.
#[derive(Default)]
pub struct ContainerStats {
    pub lookups: AtomicU64,
    pub found_cri: AtomicU64,
    pub found_containerd: AtomicU64,
    pub not_found: AtomicU64,
    pub cri_errors: AtomicU64,
    pub containerd_errors: AtomicU64,
    pub found_docker: AtomicU64,
    pub docker_errors: AtomicU64,
    /// Cgroup ids whose path could not be found (cgroup already gone, no /proc entry).
    pub path_unknown: AtomicU64,
    pub held: AtomicU64,
    /// Events emitted while their container's lookup was still running: they carry the
    /// cgroup-only object (`source: "cgroup"`).
    pub emitted_without_metadata: AtomicU64,
    pub hold_overflow: AtomicU64,
    pub evicted: AtomicU64,
}
