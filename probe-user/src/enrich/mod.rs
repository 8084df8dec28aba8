//! Enrichment: fills in what the kernel did not send. The process table (kernel facts first,
//! /proc only for processes older than the probe), user names, containers (cgroup -> runtime
//! APIs), paths made absolute, and flows joined to their processes.
pub mod container;
pub mod dns;
pub mod flows;
pub mod hash;
pub mod paths;
pub mod process;
pub mod targets;
pub mod users;
