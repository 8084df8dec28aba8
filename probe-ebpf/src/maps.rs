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

/// A BTF-defined task-local storage map (`BPF_MAP_TYPE_TASK_STORAGE`, Linux 5.11+), which
/// aya-ebpf 0.2 does not wrap. Each thread gets its own value, created on first use and freed
/// with the thread: no hash insert or copy per call, and nothing left behind by a thread that
/// dies mid-syscall. Declare instances with `#[btf_map]`.
#[repr(C)]
pub struct TaskStorage<T> {
    // Field names and pointer-encoded numbers follow the libbpf BTF map convention.
    r#type: *const [i32; aya_ebpf::bindings::bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; aya_ebpf::bindings::BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the fields are placeholders the loader reads from BTF; they are never dereferenced.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        TaskStorage {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }

    #[inline(always)]
    fn get(&self, flags: u64) -> Option<*mut T> {
        use aya_ebpf::helpers::generated::{bpf_get_current_task_btf, bpf_task_storage_get};
        // SAFETY: the current task is always a valid task_struct; the map is this static.
        let p = unsafe {
            bpf_task_storage_get(
                self as *const Self as *mut core::ffi::c_void,
                bpf_get_current_task_btf(),
                core::ptr::null_mut(),
                flags,
            )
        };
        if p.is_null() {
            None
        } else {
            Some(p as *mut T)
        }
    }

    /// The current thread's value, created (zeroed) if it has none yet.
    #[inline(always)]
    pub fn current_or_create(&self) -> Option<*mut T> {
        self.get(aya_ebpf::bindings::BPF_LOCAL_STORAGE_GET_F_CREATE as u64)
    }

    /// The current thread's value, if it has one.
    #[inline(always)]
    pub fn current(&self) -> Option<*mut T> {
        self.get(0)
    }
}
