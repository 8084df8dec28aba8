//! Enrichment: fills in what the kernel did not send (exe, cwd, args of long-running processes,
//! user names) from /proc, cached per process instance.
pub mod cgroup;
pub mod container;
pub mod docker;
pub mod flows;
pub mod process;
pub mod users;
