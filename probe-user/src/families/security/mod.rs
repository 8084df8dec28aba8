//! The security family: privilege changes, process tampering, kernel modules and BPF loads,
//! mounts, namespaces, memfds, and sockets in odd places. Its options (`--signals`,
//! `--ptrace-peeks`) and kernel map, BTF offsets, hooks, decoder and names.
pub mod decode;
pub mod names;

use aya::{maps::Array, Ebpf};
use probe_common::{EventKind, SecConfig, SecOffsets, MAP_SEC_CONFIG, SEC_CFG_PTRACE_PEEKS};

use crate::kernel::{
    btf::Btf,
    hook::{syscall, Attach, Hook, MapWriteError},
};

/// Signals `process.signal` reports by default: those whose default action ends or stops the
/// receiver and that are sent on purpose to end or freeze a process (killing or pausing a
/// defence, T1562.001). Routine IPC signals (SIGCHLD, SIGUSR1/2, SIGWINCH, SIGALRM, SIGCONT,
/// SIGPIPE, and signal 0, the existence check) are sent by the thousands by service managers,
/// shells and runtimes: `--signals all` reports them too.
pub const DEFAULT_SIGNALS: &str = "HUP,INT,QUIT,ABRT,KILL,TERM,STOP";

/// SIGKILL, SIGTERM and SIGSTOP: reported whatever `--signals` says, since ending or freezing
/// another process is what a responder must always see.
pub const ALWAYS_SIGNALS: u64 = (1 << 9) | (1 << 15) | (1 << 19);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecurityOptionsError {
    #[error("--signals: {0:?} is not a signal name or number (1-63)")]
    BadSignal(String),
}

/// `tprobe run` flags for the security events (flattened into the run arguments).
#[derive(clap::Args, Debug, Clone)]
pub struct SecurityArgs {
    /// Signals `process.signal` reports, comma-separated names or numbers (`KILL,TERM,9`),
    /// or `all`.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_SIGNALS)]
    pub signals: Vec<String>,
    /// Also report ptrace requests that only read the tracee (PEEKTEXT, GETREGS, ...): off by
    /// default, a debugger makes thousands.
    #[arg(long)]
    pub ptrace_peeks: bool,
}

impl SecurityArgs {
    pub fn into_options(self) -> Result<SecurityOptions, SecurityOptionsError> {
        let mut signals = ALWAYS_SIGNALS;
        for s in self
            .signals
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            if s.eq_ignore_ascii_case("all") {
                signals = !1u64; // 1..=63
                continue;
            }
            let n = names::parse_signal(s)
                .ok_or_else(|| SecurityOptionsError::BadSignal(s.to_owned()))?;
            signals |= 1u64 << n;
        }
        Ok(SecurityOptions {
            signals,
            ptrace_peeks: self.ptrace_peeks,
        })
    }
}

/// Security settings of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityOptions {
    /// Bit `1 << n` for each signal `n` reported.
    pub signals: u64,
    pub ptrace_peeks: bool,
}

impl Default for SecurityOptions {
    fn default() -> Self {
        SecurityArgs {
            signals: DEFAULT_SIGNALS.split(',').map(String::from).collect(),
            ptrace_peeks: false,
        }
        .into_options()
        .expect("default signals are valid")
    }
}

impl SecurityOptions {
    /// For `probe.start`.
    pub fn summary(&self) -> serde_json::Value {
        let signals: Vec<String> = (1..64)
            .filter(|n| self.signals & (1u64 << n) != 0)
            .map(names::signal_name)
            .collect();
        serde_json::json!({ "signals": signals, "ptrace_peeks": self.ptrace_peeks })
    }
}

/// Writes the security config into the loaded object (before any hook attaches).
pub fn write_maps(ebpf: &mut Ebpf, opts: &SecurityOptions) -> Result<(), MapWriteError> {
    let map_err = |e| MapWriteError(MAP_SEC_CONFIG, e);
    let mut cfg: Array<_, SecConfig> = ebpf
        .map_mut(MAP_SEC_CONFIG)
        .ok_or_else(|| MapWriteError::missing(MAP_SEC_CONFIG))?
        .try_into()
        .map_err(map_err)?;
    let flags = if opts.ptrace_peeks {
        SEC_CFG_PTRACE_PEEKS
    } else {
        0
    };
    cfg.set(
        0,
        SecConfig {
            signals: opts.signals,
            flags,
            _pad0: 0,
        },
        0,
    )
    .map_err(map_err)
}

/// Offsets for ptrace tracees, target pids and renames; `valid: 0` when this kernel's BTF
/// lacks one (tracees and renames are then not reported with a kernel-side target).
pub fn offsets(btf: &Btf) -> SecOffsets {
    let get = || -> Result<SecOffsets, crate::kernel::btf::BtfError> {
        let m = |s: &str, f: &str| btf.member_offset(s, f);
        let execve = btf.member_bit_offset("task_struct", "in_execve")?;
        Ok(SecOffsets {
            task_ptraced: m("task_struct", "ptraced")?,
            task_ptrace_entry: m("task_struct", "ptrace_entry")?,
            task_thread_pid: m("task_struct", "thread_pid")?,
            pid_level: m("pid", "level")?,
            pid_numbers: m("pid", "numbers")?,
            upid_size: btf.struct_size("upid")?,
            task_in_execve_byte: execve / 8,
            task_in_execve_mask: 1 << (execve % 8),
            task_comm: m("task_struct", "comm")?,
            valid: 1,
        })
    };
    get().unwrap_or_else(|e| {
        log::warn!("security events: no kernel-side targets or renames ({e})");
        SecOffsets::default()
    })
}

/// Why a tracepoint of this family can be missing, said where the hook is reported skipped.
pub fn missing_hint(tracepoint: &str) -> Option<&'static str> {
    let module = tracepoint.ends_with("init_module") || tracepoint.ends_with("delete_module");
    (module && !std::path::Path::new("/proc/modules").exists())
        .then_some("this kernel is built without module support (CONFIG_MODULES is off)")
}

const SETUID: &[EventKind] = &[EventKind::ProcessSetuid];
const SETGID: &[EventKind] = &[EventKind::ProcessSetgid];
const CAPSET: &[EventKind] = &[EventKind::ProcessCapset];
const PTRACE: &[EventKind] = &[EventKind::ProcessPtrace];
const VM_WRITE: &[EventKind] = &[EventKind::ProcessVmWrite];
const SIGNAL: &[EventKind] = &[EventKind::ProcessSignal];
const MODULE_LOAD: &[EventKind] = &[EventKind::KernelModuleLoad];
const MODULE_UNLOAD: &[EventKind] = &[EventKind::KernelModuleUnload];
const BPF: &[EventKind] = &[EventKind::BpfLoad];
const MOUNT: &[EventKind] = &[EventKind::FileMount];
const UMOUNT: &[EventKind] = &[EventKind::FileUmount];
const UNSHARE: &[EventKind] = &[EventKind::ProcessUnshare];
const SETNS: &[EventKind] = &[EventKind::ProcessSetns];
const MEMFD: &[EventKind] = &[EventKind::ProcessMemfd];
const DUP: &[EventKind] = &[EventKind::ProcessDup];
const SOCKET: &[EventKind] = &[EventKind::NetSocket];

/// The security family's hooks: each syscall's enter and exit, and two raw tracepoints.
pub const HOOKS: &[Hook] = &[
    syscall("sec_enter_setuid", "sys_enter_setuid", SETUID),
    syscall("sec_exit_setuid", "sys_exit_setuid", SETUID),
    syscall("sec_enter_setreuid", "sys_enter_setreuid", SETUID),
    syscall("sec_exit_setreuid", "sys_exit_setreuid", SETUID),
    syscall("sec_enter_setresuid", "sys_enter_setresuid", SETUID),
    syscall("sec_exit_setresuid", "sys_exit_setresuid", SETUID),
    syscall("sec_enter_setfsuid", "sys_enter_setfsuid", SETUID),
    syscall("sec_exit_setfsuid", "sys_exit_setfsuid", SETUID),
    syscall("sec_enter_setgid", "sys_enter_setgid", SETGID),
    syscall("sec_exit_setgid", "sys_exit_setgid", SETGID),
    syscall("sec_enter_setregid", "sys_enter_setregid", SETGID),
    syscall("sec_exit_setregid", "sys_exit_setregid", SETGID),
    syscall("sec_enter_setresgid", "sys_enter_setresgid", SETGID),
    syscall("sec_exit_setresgid", "sys_exit_setresgid", SETGID),
    syscall("sec_enter_setfsgid", "sys_enter_setfsgid", SETGID),
    syscall("sec_exit_setfsgid", "sys_exit_setfsgid", SETGID),
    syscall("sec_enter_capset", "sys_enter_capset", CAPSET),
    syscall("sec_exit_capset", "sys_exit_capset", CAPSET),
    syscall("sec_enter_ptrace", "sys_enter_ptrace", PTRACE),
    syscall("sec_exit_ptrace", "sys_exit_ptrace", PTRACE),
    syscall(
        "sec_enter_process_vm_writev",
        "sys_enter_process_vm_writev",
        VM_WRITE,
    ),
    syscall(
        "sec_exit_process_vm_writev",
        "sys_exit_process_vm_writev",
        VM_WRITE,
    ),
    syscall("sec_enter_kill", "sys_enter_kill", SIGNAL),
    syscall("sec_exit_kill", "sys_exit_kill", SIGNAL),
    syscall("sec_enter_tgkill", "sys_enter_tgkill", SIGNAL),
    syscall("sec_exit_tgkill", "sys_exit_tgkill", SIGNAL),
    syscall("sec_enter_tkill", "sys_enter_tkill", SIGNAL),
    syscall("sec_exit_tkill", "sys_exit_tkill", SIGNAL),
    syscall(
        "sec_enter_pidfd_send_signal",
        "sys_enter_pidfd_send_signal",
        SIGNAL,
    ),
    syscall(
        "sec_exit_pidfd_send_signal",
        "sys_exit_pidfd_send_signal",
        SIGNAL,
    ),
    Hook {
        program: "sec_signal_generate",
        attach: Attach::RawTracePoint("signal_generate"),
        kinds: SIGNAL,
    },
    Hook {
        program: "sec_task_rename",
        attach: Attach::RawTracePoint("task_rename"),
        kinds: &[EventKind::ProcessRename],
    },
    syscall("sec_enter_memfd_create", "sys_enter_memfd_create", MEMFD),
    syscall("sec_exit_memfd_create", "sys_exit_memfd_create", MEMFD),
    syscall("sec_enter_unshare", "sys_enter_unshare", UNSHARE),
    syscall("sec_exit_unshare", "sys_exit_unshare", UNSHARE),
    syscall("sec_enter_setns", "sys_enter_setns", SETNS),
    syscall("sec_exit_setns", "sys_exit_setns", SETNS),
    syscall("sec_enter_dup2", "sys_enter_dup2", DUP),
    syscall("sec_exit_dup2", "sys_exit_dup2", DUP),
    syscall("sec_enter_dup3", "sys_enter_dup3", DUP),
    syscall("sec_exit_dup3", "sys_exit_dup3", DUP),
    syscall("sec_enter_fcntl", "sys_enter_fcntl", DUP),
    syscall("sec_exit_fcntl", "sys_exit_fcntl", DUP),
    syscall("sec_enter_mount", "sys_enter_mount", MOUNT),
    syscall("sec_exit_mount", "sys_exit_mount", MOUNT),
    syscall("sec_enter_umount", "sys_enter_umount", UMOUNT),
    syscall("sec_exit_umount", "sys_exit_umount", UMOUNT),
    syscall("sec_enter_socket", "sys_enter_socket", SOCKET),
    syscall("sec_exit_socket", "sys_exit_socket", SOCKET),
    syscall(
        "sec_enter_init_module",
        "sys_enter_init_module",
        MODULE_LOAD,
    ),
    syscall("sec_exit_init_module", "sys_exit_init_module", MODULE_LOAD),
    syscall(
        "sec_enter_finit_module",
        "sys_enter_finit_module",
        MODULE_LOAD,
    ),
    syscall(
        "sec_exit_finit_module",
        "sys_exit_finit_module",
        MODULE_LOAD,
    ),
    syscall(
        "sec_enter_delete_module",
        "sys_enter_delete_module",
        MODULE_UNLOAD,
    ),
    syscall(
        "sec_exit_delete_module",
        "sys_exit_delete_module",
        MODULE_UNLOAD,
    ),
    syscall("sec_enter_bpf", "sys_enter_bpf", BPF),
    syscall("sec_exit_bpf", "sys_exit_bpf", BPF),
];

/// The kinds this family makes.
pub const KINDS: &[EventKind] = &[
    EventKind::ProcessSetuid,
    EventKind::ProcessSetgid,
    EventKind::ProcessCapset,
    EventKind::ProcessPtrace,
    EventKind::ProcessVmWrite,
    EventKind::ProcessSignal,
    EventKind::ProcessRename,
    EventKind::ProcessMemfd,
    EventKind::ProcessUnshare,
    EventKind::ProcessSetns,
    EventKind::ProcessDup,
    EventKind::FileMount,
    EventKind::FileUmount,
    EventKind::NetSocket,
    EventKind::KernelModuleLoad,
    EventKind::KernelModuleUnload,
    EventKind::BpfLoad,
];
