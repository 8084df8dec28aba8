//! Reads of kernel memory: the BTF offsets, `bpf_probe_read_kernel`, the current task and its
//! open files. A leaf: the filters and the header fill both read the kernel, and must not need
//! each other for it.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::{
    bpf_get_current_task, bpf_get_current_task_btf, bpf_probe_read_kernel,
};
use probe_common::KernelOffsets;

/// Kernel struct offsets from BTF, set by userspace before load.
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: KernelOffsets = KernelOffsets::zeroed();

#[inline(always)]
pub fn offsets() -> KernelOffsets {
    // Volatile: the value is patched into .rodata at load time, so the compiler must not fold it.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

/// One field of [`OFFSETS`], read straight from the patched rodata: the verifier knows the
/// value (the map is frozen), which [`load_btf`] needs. A copy through the stack may lose it.
macro_rules! koff {
    ($f:ident) => {
        unsafe { core::ptr::read_volatile(&$crate::kernel::OFFSETS.$f) }
    };
}
pub(crate) use koff;

/// The current task as a BTF-typed pointer, for [`load_btf`].
#[inline(always)]
pub fn current_task_btf() -> *const u8 {
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

/// Loads a `T` at `base + off` with a plain load: `base` is a BTF pointer
/// ([`current_task_btf`] or a pointer field loaded through one) and `off` a value the verifier
/// knows (from `koff!`/`toff!`), so it checks the field against BTF and the JIT guards the
/// load. A few instructions where [`read_kernel`] is a helper call. `None` when the offset is
/// unknown or `base` is null.
#[inline(always)]
pub fn load_btf<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    if off == u32::MAX || base.is_null() {
        return None;
    }
    // SAFETY: the verifier types the access from BTF; a fault reads zero instead.
    Some(unsafe { core::ptr::read(base.wrapping_add(off as usize) as *const T) })
}

/// Reads a `T` at `base + off` from kernel memory.
#[inline(always)]
pub fn read_kernel<T: Copy>(base: *const u8, off: u32) -> Result<T, i64> {
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    let src = base.wrapping_add(off as usize);
    let ret = unsafe {
        bpf_probe_read_kernel(
            v.as_mut_ptr() as *mut c_void,
            core::mem::size_of::<T>() as u32,
            src as *const c_void,
        )
    };
    if ret < 0 {
        return Err(ret);
    }
    Ok(unsafe { v.assume_init() })
}

/// The open `struct file` at `fd` of the current task (file and socket hooks both start here).
#[inline(always)]
pub fn file_of_fd(fd: i64, off: &KernelOffsets) -> Option<*const u8> {
    if fd < 0 {
        return None;
    }
    let files: *const u8 = read_kernel(current_task(), off.task_files).ok()?;
    let fdt: *const u8 = read_kernel(files, off.files_fdt).ok()?;
    let max: u32 = read_kernel(fdt, off.fdt_max_fds).ok()?;
    if fd as u64 >= max as u64 {
        return None;
    }
    let arr: *const u8 = read_kernel(fdt, off.fdt_fd).ok()?;
    let file: *const u8 = read_kernel(arr, (fd as u32).wrapping_mul(8)).ok()?;
    (!file.is_null()).then_some(file)
}

#[inline(always)]
pub fn current_task() -> *const u8 {
    unsafe { bpf_get_current_task() as *const u8 }
}
