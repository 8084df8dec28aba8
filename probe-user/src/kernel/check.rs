//! `tprobe check` and the privilege test `tprobe run` makes before loading anything: what the
//! kernel supports and which privileges are missing, in plain words.
use std::path::Path;

use super::{btf, hook::Attach, load, tracefs};
use crate::exit_code;
use crate::families;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capabilities of this process (`CapEff` of /proc/self/status).
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Capabilities `tprobe run` cannot do without, that this process lacks.
pub fn missing_for_run(caps: u64) -> Vec<&'static str> {
    let admin = has(caps, CAP_SYS_ADMIN);
    let mut out = Vec::new();
    if !admin && !has(caps, CAP_BPF) {
        out.push("CAP_BPF");
    }
    if !admin && !has(caps, CAP_PERFMON) {
        out.push("CAP_PERFMON");
    }
    out
}

/// Fails with one actionable line when loading would be refused for lack of privileges.
pub fn require_privileges() -> Result<(), load::LoadError> {
    let missing = missing_for_run(effective_caps());
    if missing.is_empty() {
        return Ok(());
    }
    Err(load::LoadError::Permission(format!(
        "missing {} (uid {})",
        missing.join(" and "),
        nix::unistd::geteuid()
    )))
}

/// `bpf(2)` with a zero-padded attribute block.
fn bpf(cmd: libc::c_long, attr: &[u8; 128]) -> i64 {
    // SAFETY: the kernel reads at most `attr.len()` bytes of a valid buffer.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    }
}

/// Can this kernel load an XDP program (`r0 = XDP_PASS; exit`)?
pub fn xdp_loads() -> Result<(), String> {
    load_xdp_pass("").map(drop)
}

/// Loads `r0 = XDP_PASS; exit` as an XDP program named `name` (at most 15 bytes) with a raw
/// `bpf(2)` call; the fd is the caller's.
pub fn load_xdp_pass(name: &str) -> Result<std::os::fd::OwnedFd, String> {
    use std::os::fd::FromRawFd as _;
    let insns: [u8; 16] = [0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = b"GPL\0";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&6u32.to_ne_bytes()); // BPF_PROG_TYPE_XDP
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    let name = &name.as_bytes()[..name.len().min(15)];
    attr[48..48 + name.len()].copy_from_slice(name); // prog_name
    let fd = bpf(5, &attr); // BPF_PROG_LOAD
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Drivers with native (driver-mode) XDP support in mainline kernels.
const NATIVE_XDP_DRIVERS: &[&str] = &[
    "veth",
    "virtio_net",
    "tun",
    "mlx4_core",
    "mlx5_core",
    "i40e",
    "ice",
    "ixgbe",
    "igb",
    "igc",
    "bnxt_en",
    "ena",
    "nfp",
    "qede",
    "thunder",
    "sfc",
    "netsec",
    "stmmac",
    "mvneta",
    "mvpp2",
    "hv_netvsc",
    "gve",
    "idpf",
    "fec",
    "enetc",
    "bond",
    "xen-netfront",
    "ionic",
    "octeontx2",
];

/// The driver name as `ethtool -i` reports it (`ETHTOOL_GDRVINFO`): also for virtual devices
/// such as veth, which have no `device` link in sysfs.
fn ethtool_driver(iface: &str) -> Option<String> {
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 160],
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut DrvInfo,
        _pad: [u8; 16],
    }
    const SIOCETHTOOL: libc::Ioctl = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 0x3;
    if iface.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 160],
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut info,
        _pad: [0; 16],
    };
    req.name[..iface.len()].copy_from_slice(iface.as_bytes());
    // SAFETY: plain socket and ioctl calls on valid, correctly sized buffers.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let ret = libc::ioctl(fd, SIOCETHTOOL, &mut req);
        libc::close(fd);
        if ret < 0 {
            return None;
        }
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    (end > 0).then(|| String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

fn driver_of(iface: &str) -> Option<String> {
    if let Some(d) = ethtool_driver(iface) {
        return Some(d);
    }
    let link = std::fs::read_link(format!("/sys/class/net/{iface}/device/driver")).ok();
    if let Some(l) = link {
        return l.file_name().map(|n| n.to_string_lossy().into_owned());
    }
    // Virtual devices have no `device`; their kind is in the uevent (e.g. DEVTYPE=bond).
    let uevent = std::fs::read_to_string(format!("/sys/class/net/{iface}/uevent")).ok()?;
    uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVTYPE="))
        .map(str::to_owned)
}

/// One line of the report.
struct Line {
    ok: bool,
    what: String,
}

/// Runs every check, prints the report, returns the exit code (0 when the probe can run).
pub fn check(btf_path: &Path) -> u8 {
    let mut lines: Vec<Line> = Vec::new();
    let mut fatal: Option<u8> = None;
    let mut fail = |lines: &mut Vec<Line>, code: u8, what: String| {
        lines.push(Line { ok: false, what });
        fatal.get_or_insert(code);
    };

    let caps = effective_caps();
    let euid = nix::unistd::geteuid();
    let missing = missing_for_run(caps);
    if missing.is_empty() {
        lines.push(Line {
            ok: true,
            what: format!(
                "privileges: {} may load and attach eBPF programs",
                if euid.is_root() {
                    "root".to_owned()
                } else {
                    format!("uid {euid}")
                }
            ),
        });
    } else {
        fail(
            &mut lines,
            exit_code::PERMISSION,
            format!(
                "privileges: missing {}: run tprobe as root (sudo), or grant CAP_BPF and CAP_PERFMON",
                missing.join(" and ")
            ),
        );
    }
    for (cap, why) in [
        (CAP_SYS_PTRACE, "read other users' /proc/PID/exe and cwd"),
        (CAP_NET_ADMIN, "attach XDP/TC programs for flow events"),
        (
            CAP_SYS_RESOURCE,
            "raise RLIMIT_MEMLOCK on kernels before 5.11",
        ),
    ] {
        if !has(caps, cap) && !has(caps, CAP_SYS_ADMIN) {
            lines.push(Line {
                ok: true,
                what: format!("note: without capability {cap} tprobe cannot {why}"),
            });
        }
    }

    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    match btf::Btf::from_file(btf_path).and_then(|b| btf::kernel_offsets(&b)) {
        Ok(_) => lines.push(Line {
            ok: true,
            what: format!(
                "kernel {kernel}: BTF at {} gives every struct offset tprobe needs",
                btf_path.display()
            ),
        }),
        Err(e) => fail(
            &mut lines,
            exit_code::UNSUPPORTED_KERNEL,
            format!(
                "kernel {kernel}: BTF at {}: {e} (tprobe needs a kernel built with CONFIG_DEBUG_INFO_BTF=y)",
                btf_path.display()
            ),
        ),
    }

    let tracefs_root = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir());
    match tracefs_root {
        Some(r) => lines.push(Line {
            ok: true,
            what: format!("tracefs is mounted at {}", r.display()),
        }),
        None if missing.is_empty() => lines.push(Line {
            ok: true,
            what: "tracefs is not mounted; tprobe run mounts it at /sys/kernel/tracing".into(),
        }),
        None => fail(
            &mut lines,
            exit_code::TRACEFS,
            "tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing)".into(),
        ),
    }

    if missing.is_empty() {
        // The same probes `tprobe run` makes before loading, so both judge a kernel alike.
        match crate::kernel::features::Features::probe().missing_required() {
            None => lines.push(Line {
                ok: true,
                what: "BPF ring buffers and task-local storage are supported".into(),
            }),
            Some(missing) => fail(
                &mut lines,
                exit_code::UNSUPPORTED_KERNEL,
                format!("this kernel lacks {missing}: tprobe needs Linux 5.11 or later"),
            ),
        }
        hooks_by_loading(btf_path, &mut lines, &mut fatal);
        match xdp_loads() {
            Ok(()) => {
                lines.push(Line {
                    ok: true,
                    what: "XDP programs load; generic (skb) mode works on every interface".into(),
                });
                let mut ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
                    .map(|d| {
                        d.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                ifaces.sort();
                for i in ifaces {
                    let drv = driver_of(&i);
                    let native = drv
                        .as_deref()
                        .is_some_and(|d| NATIVE_XDP_DRIVERS.contains(&d));
                    lines.push(Line {
                        ok: true,
                        what: format!(
                            "XDP on {i} ({}): {}",
                            drv.as_deref().unwrap_or("no driver"),
                            if native {
                                "native (driver) mode supported, and generic"
                            } else {
                                "generic (skb) mode only"
                            }
                        ),
                    });
                }
            }
            Err(e) => lines.push(Line {
                ok: false,
                what: format!("XDP programs cannot be loaded ({e}): no flow events"),
            }),
        }
    } else {
        // Without privileges, at least say whether the tracepoints exist.
        if let Some(root) = tracefs_root {
            for h in families::hooks() {
                let exists = match h.attach {
                    Attach::TracePoint(c, n) => tracefs::tracepoint_exists(root, c, n),
                    Attach::RawTracePoint(n) => std::fs::read_dir(root.join("events"))
                        .map(|d| d.flatten().any(|c| c.path().join(n).is_dir()))
                        .unwrap_or(false),
                    #[allow(unreachable_patterns)]
                    _ => true,
                };
                lines.push(Line {
                    ok: exists,
                    what: format!(
                        "hook {}: {} (not loaded: no privileges)",
                        h.attach.describe(),
                        if exists {
                            "exists"
                        } else {
                            "missing on this kernel"
                        }
                    ),
                });
            }
        }
    }

    for l in &lines {
        println!("{:<5} {}", if l.ok { "ok" } else { "FAIL" }, l.what);
    }
    match fatal {
        None => {
            println!("tprobe can run here.");
            0
        }
        Some(code) => {
            println!("tprobe cannot run here (exit code {code}).");
            code
        }
    }
}

/// Loads the real programs with every kind enabled: each hook is verified and attached for a
/// moment, then detached.
fn hooks_by_loading(btf_path: &Path, lines: &mut Vec<Line>, fatal: &mut Option<u8>) {
    let opts = load::LoadOptions {
        kinds: probe_common::EventKind::ALL.to_vec(),
        threads: false,
        ringbuf_bytes: 1 << 16,
        wakeup_bytes: 1 << 13,
        btf_path: btf_path.to_path_buf(),
        filters: Default::default(),
        flow_entries: 1,
        families: Default::default(),
    };
    match load::load(&opts) {
        Ok(mut probe) => {
            for h in &probe.hooks {
                let kinds: Vec<&str> = families::hooks()
                    .filter(|x| x.program == h.program)
                    .flat_map(|x| x.kinds.iter().map(|k| k.name()))
                    .collect();
                lines.push(Line {
                    ok: h.attached,
                    what: format!(
                        "hook {} ({}): {}",
                        h.hook,
                        kinds.join(", "),
                        if h.attached {
                            "verified and attached".to_owned()
                        } else {
                            format!("cannot attach: {}", h.reason.as_deref().unwrap_or("?"))
                        }
                    ),
                });
            }
            probe.detach();
        }
        Err(e) => {
            lines.push(Line {
                ok: false,
                what: format!("loading the eBPF programs failed: {e}"),
            });
            fatal.get_or_insert(crate::exit_code_for(&anyhow::Error::new(e)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets() {
        assert!(missing_for_run(1 << CAP_SYS_ADMIN).is_empty());
        assert!(missing_for_run((1 << CAP_BPF) | (1 << CAP_PERFMON)).is_empty());
        assert_eq!(missing_for_run(1 << CAP_BPF), vec!["CAP_PERFMON"]);
        assert_eq!(missing_for_run(0), vec!["CAP_BPF", "CAP_PERFMON"]);
    }
}
