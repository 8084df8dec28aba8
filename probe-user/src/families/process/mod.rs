//! The process family: exec, fork and exit from the scheduler tracepoints and failed execs from
//! the execve/execveat syscalls; their hooks, the BTF offsets of the task identity, and the
//! decoder.
pub mod decode;
pub mod names;

use probe_common::{EventKind, TaskOffsets, NS_COUNT};

use crate::kernel::{
    btf::{Btf, BtfError},
    hook::{syscall, Attach, Hook},
};

const EXEC_FAILED: &[EventKind] = &[EventKind::ProcessExecFailed];

/// `tprobe run` flags for process context (flattened into the run arguments).
#[derive(clap::Args, Debug, Clone)]
pub struct ProcessArgs {
    /// Ancestors on each event (`process.ancestors`, parent first); 0 turns them off.
    #[arg(long, default_value_t = 5)]
    pub ancestors: usize,
    /// Do not hash executables (`process.hash`, `exec.hash`).
    #[arg(long)]
    pub no_hash: bool,
    /// Larger executables are not hashed (`hash_skipped: "too_large"`).
    #[arg(long, default_value = "64M")]
    pub hash_max_size: String,
    /// Longest time an exec event waits for its hash (`0` = never; later ones are counted).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub hash_wait: std::time::Duration,
}

/// `--hash-max-size` default.
pub const DEFAULT_HASH_MAX_SIZE: u64 = 64 << 20;

/// Hashing settings (`--no-hash`, `--hash-max-size`, `--hash-wait`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashConfig {
    pub enabled: bool,
    pub max_size: u64,
    /// Longest hold of an exec event for its hash.
    pub wait: std::time::Duration,
}

impl Default for HashConfig {
    fn default() -> Self {
        HashConfig {
            enabled: true,
            max_size: DEFAULT_HASH_MAX_SIZE,
            wait: std::time::Duration::from_millis(200),
        }
    }
}

/// Process context settings of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessOptions {
    pub ancestors: usize,
    pub hash: HashConfig,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            ancestors: 5,
            hash: Default::default(),
        }
    }
}

impl ProcessOptions {
    /// For `probe.start`.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "ancestors": self.ancestors,
            "hash": self.hash.enabled,
            "hash_max_size": self.hash.max_size,
            "hash_wait_ms": self.hash.wait.as_millis() as u64,
        })
    }
}

/// The process family's hooks.
pub const HOOKS: &[Hook] = &[
    Hook {
        program: "sched_process_exec",
        attach: Attach::RawTracePoint("sched_process_exec"),
        kinds: &[EventKind::ProcessExec],
    },
    Hook {
        program: "sched_process_fork",
        attach: Attach::RawTracePoint("sched_process_fork"),
        kinds: &[EventKind::ProcessFork],
    },
    Hook {
        program: "sched_process_exit",
        attach: Attach::TracePoint("sched", "sched_process_exit"),
        kinds: &[EventKind::ProcessExit],
    },
    syscall("proc_enter_execve", "sys_enter_execve", EXEC_FAILED),
    syscall("proc_exit_execve", "sys_exit_execve", EXEC_FAILED),
    syscall("proc_enter_execveat", "sys_enter_execveat", EXEC_FAILED),
    syscall("proc_exit_execveat", "sys_exit_execveat", EXEC_FAILED),
];

/// Offsets of the header identity, the exec record's inode facts and the exit's CPU times.
/// Each one this kernel's BTF lacks stays unknown (that field reads as 0) and is reported in
/// `missing`, so a kernel without e.g. audit still runs.
pub fn task_offsets(btf: &Btf, missing: &mut Vec<String>) -> TaskOffsets {
    let mut o = TaskOffsets::unknown();
    let mut get = |r: Result<u32, BtfError>| match r {
        Ok(v) => v,
        Err(e) => {
            missing.push(e.to_string());
            u32::MAX
        }
    };
    let m = |s: &str, f: &str| btf.member_offset(s, f);
    let sum = |a: Result<u32, BtfError>, b: Result<u32, BtfError>| Ok(a? + b?);
    o.task_self_exec_id = get(m("task_struct", "self_exec_id"));
    o.task_cred = get(m("task_struct", "cred"));
    o.task_nsproxy = get(m("task_struct", "nsproxy"));
    o.task_loginuid = get(m("task_struct", "loginuid"));
    o.task_thread_pid = get(m("task_struct", "thread_pid"));
    o.task_utime = get(m("task_struct", "utime"));
    o.task_stime = get(m("task_struct", "stime"));
    o.task_runtime = get(sum(
        m("task_struct", "se"),
        m("sched_entity", "sum_exec_runtime"),
    ));
    o.cred_euid = get(m("cred", "euid"));
    o.cred_egid = get(m("cred", "egid"));
    o.cred_cap_effective = get(m("cred", "cap_effective"));
    o.cred_cap_permitted = get(m("cred", "cap_permitted"));
    o.cred_user_ns = get(m("cred", "user_ns"));
    o.nsproxy_uts = get(m("nsproxy", "uts_ns"));
    o.nsproxy_ipc = get(m("nsproxy", "ipc_ns"));
    o.nsproxy_mnt = get(m("nsproxy", "mnt_ns"));
    o.nsproxy_net = get(m("nsproxy", "net_ns"));
    o.nsproxy_cgroup = get(m("nsproxy", "cgroup_ns"));
    // In probe_common::NS_* order: pid, mnt, net, user, uts, ipc, cgroup.
    let ns_structs: [&str; NS_COUNT] = [
        "pid_namespace",
        "mnt_namespace",
        "net",
        "user_namespace",
        "uts_namespace",
        "ipc_namespace",
        "cgroup_namespace",
    ];
    for (i, s) in ns_structs.iter().enumerate() {
        o.ns_inum[i] = get(sum(m(s, "ns"), m("ns_common", "inum")));
    }
    o.pid_level = get(m("pid", "level"));
    o.pid_numbers = get(m("pid", "numbers"));
    o.upid_size = get(btf.struct_size("upid"));
    o.upid_ns = get(m("upid", "ns"));
    o.signal_tty = get(m("signal_struct", "tty"));
    o.signal_utime = get(m("signal_struct", "utime"));
    o.signal_stime = get(m("signal_struct", "stime"));
    o.signal_runtime = get(m("signal_struct", "sum_sched_runtime"));
    o.tty_index = get(m("tty_struct", "index"));
    o.tty_driver = get(m("tty_struct", "driver"));
    o.driver_major = get(m("tty_driver", "major"));
    o.driver_minor_start = get(m("tty_driver", "minor_start"));
    o.bprm_file = get(m("linux_binprm", "file"));
    o.dentry_inode = get(m("dentry", "d_inode"));
    o.inode_nlink = get(m("inode", "i_nlink"));
    o.inode_ino = get(m("inode", "i_ino"));
    o.inode_sb = get(m("inode", "i_sb"));
    o.inode_size = get(m("inode", "i_size"));
    o.sb_dev = get(m("super_block", "s_dev"));
    o.task_comm = get(m("task_struct", "comm"));
    // ctime moved over the years: i_ctime (timespec64), __i_ctime (6.6), then
    // i_ctime_sec/i_ctime_nsec (6.11). Only its absence is not an error here.
    let ts = |f: &str| {
        m("inode", f).and_then(|at| {
            Ok((
                at + m("timespec64", "tv_sec")?,
                at + m("timespec64", "tv_nsec")?,
            ))
        })
    };
    match (m("inode", "i_ctime_sec"), m("inode", "i_ctime_nsec")) {
        (Ok(s), Ok(n)) => (o.inode_ctime_sec, o.inode_ctime_nsec) = (s, n),
        _ => {
            if let Ok((s, n)) = ts("__i_ctime").or_else(|_| ts("i_ctime")) {
                (o.inode_ctime_sec, o.inode_ctime_nsec) = (s, n);
            } else {
                missing.push("inode ctime not found in kernel BTF".into());
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_kernel_has_every_task_offset() {
        let path = std::path::Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            return;
        }
        let mut missing = Vec::new();
        let o = task_offsets(&Btf::from_file(path).unwrap(), &mut missing);
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(o.upid_size, 16);
        assert!(o.ns_inum.iter().all(|&v| v != u32::MAX));
    }
}
