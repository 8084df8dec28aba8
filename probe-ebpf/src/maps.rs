//! Maps shared by every program family.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use probe_common::{
    ExecEvent, ProbeConfig, FILTER_CGROUPS_MAX, FILTER_PIDS_MAX, FILTER_UIDS_MAX, KIND_SLOTS,
};

/// Every event leaves the kernel through this ring buffer; userspace sets its size at load.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Failed ring buffer outputs per event kind (per CPU, so counting never contends).
#[map]
pub static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_SLOTS, 0);

/// Run-time configuration written by userspace (enabled kinds, flags).
#[map]
pub static CONFIG: Array<ProbeConfig> = Array::with_max_entries(1, 0);

/// Scratch space for exec records, too large for the 512-byte BPF stack.
#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// Pid filter set (`--pid`, grown by `--follow`); see `probe_common::MAP_FILTER_PIDS`.
#[map]
pub static FILTER_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(FILTER_PIDS_MAX, 0);

/// Cgroup filter set (`--cgroup`): a cgroup id matches the cgroup and everything below it.
#[map]
pub static FILTER_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(FILTER_CGROUPS_MAX, 0);

/// Uid filter set (`--uid`).
#[map]
pub static FILTER_UIDS: HashMap<u32, u8> = HashMap::with_max_entries(FILTER_UIDS_MAX, 0);
