//! Code entering the kernel: init_module, finit_module (the module file's path, from its fd)
//! and delete_module, and bpf(BPF_PROG_LOAD) with the program's type and name. A load the
//! kernel refuses is reported too.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_probe_read_user;
use probe_common::{EventKind, SecSyscall, SEC_EXTRA_UNREADABLE, SEC_HAS_EXTRA};

use super::{sec_syscall, Pending, Src};

const LOAD: EventKind = EventKind::KernelModuleLoad;

// init_module(image, len, params): the parameters; the image is not parsed.
sec_syscall!(
    sec_enter_init_module,
    sec_exit_init_module,
    "sys_enter_init_module",
    "sys_exit_init_module",
    SecSyscall::InitModule,
    3,
    LOAD,
    [Src::None, Src::User(2), Src::None],
    |_p| true
);
// finit_module(fd, params, flags): the parameters and the path of the module file.
sec_syscall!(
    sec_enter_finit_module,
    sec_exit_finit_module,
    "sys_enter_finit_module",
    "sys_exit_finit_module",
    SecSyscall::FinitModule,
    3,
    LOAD,
    [Src::None, Src::User(1), Src::FdPath(0)],
    |_p| true
);
// delete_module(name, flags)
sec_syscall!(
    sec_enter_delete_module,
    sec_exit_delete_module,
    "sys_enter_delete_module",
    "sys_exit_delete_module",
    SecSyscall::DeleteModule,
    2,
    EventKind::KernelModuleUnload,
    [Src::User(0), Src::None, Src::None],
    |_p| true
);

const BPF_PROG_LOAD: u64 = 5;
/// `union bpf_attr` for BPF_PROG_LOAD: prog_type and insn_cnt at 0, prog_name[16] at 48,
/// expected_attach_type at 68.
const ATTR_NAME: u64 = 48;
const ATTR_ATTACH_TYPE: u64 = 68;

/// bpf(cmd, attr, size): only program loads. `extra[0]` = prog_type | insn_cnt << 32,
/// `extra[1..3]` = the name, `extra[3]` = the expected attach type.
#[inline(always)]
fn prog_load(p: &mut Pending) -> bool {
    if p.args[0] != BPF_PROG_LOAD {
        return false;
    }
    let (attr, size) = (p.args[1], p.args[2]);
    let read = |dst: *mut u64, len: u32, off: u64| unsafe {
        bpf_probe_read_user(dst as *mut c_void, len, (attr + off) as *const c_void) == 0
    };
    let extra = p.extra.as_mut_ptr();
    let mut ok = attr != 0 && read(extra, 8, 0);
    if ok && size >= ATTR_NAME + 16 {
        ok = read(extra.wrapping_add(1), 16, ATTR_NAME);
    }
    if ok && size >= ATTR_ATTACH_TYPE + 4 {
        ok = read(extra.wrapping_add(3), 4, ATTR_ATTACH_TYPE);
    }
    p.sflags |= if ok {
        SEC_HAS_EXTRA
    } else {
        p.extra = [0; 4];
        SEC_EXTRA_UNREADABLE
    };
    true
}

sec_syscall!(
    sec_enter_bpf,
    sec_exit_bpf,
    "sys_enter_bpf",
    "sys_exit_bpf",
    SecSyscall::Bpf,
    3,
    EventKind::BpfLoad,
    [Src::None; 3],
    |p| prog_load(p)
);
