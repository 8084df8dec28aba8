//! Do-nothing eBPF programs loaded with raw `bpf(2)`, attached where tprobe's are: the floor
//! a section's numbers are read against.
use std::ffi::CString;

use anyhow::{bail, Context as _, Result};

fn put32(a: &mut [u8], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Loads `r0 = ret; exit` as a program of `prog_type` with raw `bpf(2)` calls, so the floors
/// below share nothing with tprobe.
fn load_empty(prog_type: u32, expected_attach_type: u32, ret: u8) -> Result<std::os::fd::OwnedFd> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    let insns: [u8; 16] = [0xb7, 0, 0, 0, ret, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = c"GPL";
    // union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, ...,
    // expected_attach_type at 68.
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, prog_type);
    put32(&mut attr, 4, 2);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    put32(&mut attr, 68, expected_attach_type);
    bpf(BPF_PROG_LOAD, &attr).context("loading an empty program")
}

/// `bpf(cmd, attr)` for a command that returns a new fd.
fn bpf(cmd: libc::c_long, attr: &[u8]) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: `attr` is a correctly laid out `union bpf_attr` prefix of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), attr.len() as u32) };
    if fd < 0 {
        bail!("bpf({cmd}): {}", std::io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Empty programs on tracepoints: the cost of the hook itself, the floor under any probe that
/// uses it. Dropping the value detaches them.
pub(super) struct EmptyTracepoints {
    _fds: Vec<std::os::fd::OwnedFd>,
}

impl EmptyTracepoints {
    /// `names` are `category/event` under tracefs `events/`.
    pub(super) fn attach(names: &[&str]) -> Result<EmptyTracepoints> {
        use std::os::fd::{AsRawFd, FromRawFd};
        const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
        const PERF_TYPE_TRACEPOINT: u32 = 2;
        const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
        const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
        const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
        let mut fds = Vec::new();
        let prog = load_empty(BPF_PROG_TYPE_TRACEPOINT, 0, 0)?;
        for name in names {
            let id: u64 = std::fs::read_to_string(format!("/sys/kernel/tracing/events/{name}/id"))
                .with_context(|| format!("tracepoint {name}"))?
                .trim()
                .parse()?;
            // struct perf_event_attr: type, size, config, sample_period, ..., wakeup_events at 48.
            let mut attr = [0u8; 128];
            put32(&mut attr, 0, PERF_TYPE_TRACEPOINT);
            put32(&mut attr, 4, 128);
            put64(&mut attr, 8, id);
            put64(&mut attr, 16, 1);
            put32(&mut attr, 48, 1);
            // SAFETY: a correctly laid out attr; every CPU's events run the attached program.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    attr.as_ptr(),
                    -1,
                    0,
                    -1,
                    PERF_FLAG_FD_CLOEXEC,
                )
            };
            if fd < 0 {
                bail!(
                    "perf_event_open {name}: {}",
                    std::io::Error::last_os_error()
                );
            }
            // SAFETY: a new fd we own.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
            // SAFETY: ioctls on our own perf event fd.
            unsafe {
                if libc::ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()) != 0
                    || libc::ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) != 0
                {
                    bail!("attaching to {name}: {}", std::io::Error::last_os_error());
                }
            }
            fds.push(fd);
        }
        fds.push(prog);
        Ok(EmptyTracepoints { _fds: fds })
    }
}

/// A do-nothing XDP program (`r0 = XDP_PASS; exit`) attached in generic mode through a BPF
/// link: what generic XDP itself costs on this path, before any program does work. Dropping
/// it detaches.
pub(super) struct EmptyXdp {
    _prog: std::os::fd::OwnedFd,
    _link: std::os::fd::OwnedFd,
}

impl EmptyXdp {
    pub(super) fn attach(ifname: &str) -> Result<EmptyXdp> {
        const BPF_LINK_CREATE: libc::c_long = 28;
        const BPF_PROG_TYPE_XDP: u32 = 6;
        const BPF_XDP: u32 = 37;
        const XDP_FLAGS_SKB_MODE: u32 = 2;
        const XDP_PASS: u8 = 2;
        let prog = load_empty(BPF_PROG_TYPE_XDP, BPF_XDP, XDP_PASS)?;
        let ifname_c = CString::new(ifname)?;
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(ifname_c.as_ptr()) };
        if ifindex == 0 {
            bail!("{ifname}: no such interface");
        }
        // BPF_LINK_CREATE: prog_fd, target_ifindex, attach_type, flags.
        let mut attr = [0u8; 64];
        put32(&mut attr, 0, std::os::fd::AsRawFd::as_raw_fd(&prog) as u32);
        put32(&mut attr, 4, ifindex);
        put32(&mut attr, 8, BPF_XDP);
        put32(&mut attr, 12, XDP_FLAGS_SKB_MODE);
        let link = bpf(BPF_LINK_CREATE, &attr).context("attaching an empty XDP program")?;
        Ok(EmptyXdp {
            _prog: prog,
            _link: link,
        })
    }
}
