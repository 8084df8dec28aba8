//! Names of the numbers security events carry: signals, ptrace requests, capabilities,
//! namespace and clone flags, mount and umount flags, memfd flags, BPF program types, and the
//! protocols of raw and packet sockets. Tables, so longer than a module of logic.

// Capability names by number: the process family's table (`capability.h`).
use crate::families::process::names::CAPS;

/// Signal name (`SIGKILL`), `SIGRTMIN+n` for real-time signals, `SIG<n>` past them.
pub fn signal_name(sig: u64) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match sig {
        1..=31 => NAMES[sig as usize].to_owned(),
        32..=64 => format!("SIGRTMIN+{}", sig - 32),
        n => format!("SIG{n}"),
    }
}

/// A signal by name (`KILL`, `SIGKILL`, `sigkill`) or number.
pub fn parse_signal(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return (1..64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let want = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    (1..64).find(|&n| signal_name(n) == want)
}

/// ptrace request name (`PTRACE_ATTACH`), `PTRACE_<n>` for one without a name here.
pub fn ptrace_request(req: u64) -> String {
    let n = match req {
        0 => "TRACEME",
        1 => "PEEKTEXT",
        2 => "PEEKDATA",
        3 => "PEEKUSER",
        4 => "POKETEXT",
        5 => "POKEDATA",
        6 => "POKEUSER",
        7 => "CONT",
        8 => "KILL",
        9 => "SINGLESTEP",
        12 => "GETREGS",
        13 => "SETREGS",
        14 => "GETFPREGS",
        15 => "SETFPREGS",
        16 => "ATTACH",
        17 => "DETACH",
        18 => "GETFPXREGS",
        19 => "SETFPXREGS",
        24 => "SYSCALL",
        0x4200 => "SETOPTIONS",
        0x4201 => "GETEVENTMSG",
        0x4202 => "GETSIGINFO",
        0x4203 => "SETSIGINFO",
        0x4204 => "GETREGSET",
        0x4205 => "SETREGSET",
        0x4206 => "SEIZE",
        0x4207 => "INTERRUPT",
        0x4208 => "LISTEN",
        0x4209 => "PEEKSIGINFO",
        0x420a => "GETSIGMASK",
        0x420b => "SETSIGMASK",
        _ => return format!("PTRACE_{req}"),
    };
    format!("PTRACE_{n}")
}

/// The names of the capabilities set in `bits` (`CAP_<n>` for numbers past the table).
pub fn cap_names(bits: u64) -> Vec<String> {
    (0..64)
        .filter(|i| bits & (1u64 << i) != 0)
        .map(|i| {
            CAPS.get(i)
                .map(|s| (*s).to_owned())
                .unwrap_or_else(|| format!("CAP_{i}"))
        })
        .collect()
}

/// Names of the bits of `v` in `table`, then the unknown rest as one hex value.
fn bit_names(v: u64, table: &[(u64, &'static str)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = v;
    for &(bit, name) in table {
        if bit != 0 && v & bit == bit {
            out.push(name.to_owned());
            rest &= !bit;
        }
    }
    if rest != 0 {
        out.push(format!("0x{rest:x}"));
    }
    out
}

/// `unshare` flags and `setns` namespace types (`CLONE_*`).
const CLONE_FLAGS: &[(u64, &str)] = &[
    (0x0000_0100, "CLONE_VM"),
    (0x0000_0200, "CLONE_FS"),
    (0x0000_0400, "CLONE_FILES"),
    (0x0000_0800, "CLONE_SIGHAND"),
    (0x0000_0080, "CLONE_NEWTIME"),
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0004_0000, "CLONE_SYSVSEM"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
];

pub fn clone_flags(v: u64) -> Vec<String> {
    bit_names(v & 0xffff_ffff, CLONE_FLAGS)
}

/// `mount` flags (`MS_*`); the magic `0xC0ED` in the top half of old callers is dropped.
const MOUNT_FLAGS: &[(u64, &str)] = &[
    (1, "MS_RDONLY"),
    (2, "MS_NOSUID"),
    (4, "MS_NODEV"),
    (8, "MS_NOEXEC"),
    (16, "MS_SYNCHRONOUS"),
    (32, "MS_REMOUNT"),
    (64, "MS_MANDLOCK"),
    (128, "MS_DIRSYNC"),
    (256, "MS_NOSYMFOLLOW"),
    (1024, "MS_NOATIME"),
    (2048, "MS_NODIRATIME"),
    (4096, "MS_BIND"),
    (8192, "MS_MOVE"),
    (16384, "MS_REC"),
    (32768, "MS_SILENT"),
    (1 << 16, "MS_POSIXACL"),
    (1 << 17, "MS_UNBINDABLE"),
    (1 << 18, "MS_PRIVATE"),
    (1 << 19, "MS_SLAVE"),
    (1 << 20, "MS_SHARED"),
    (1 << 21, "MS_RELATIME"),
    (1 << 22, "MS_KERNMOUNT"),
    (1 << 23, "MS_I_VERSION"),
    (1 << 24, "MS_STRICTATIME"),
    (1 << 25, "MS_LAZYTIME"),
];

pub fn mount_flags(v: u64) -> Vec<String> {
    let v = if v & 0xffff_0000 == 0xc0ed_0000 {
        v & 0xffff
    } else {
        v
    };
    bit_names(v & 0xffff_ffff, MOUNT_FLAGS)
}

/// `umount2` flags.
const UMOUNT_FLAGS: &[(u64, &str)] = &[
    (1, "MNT_FORCE"),
    (2, "MNT_DETACH"),
    (4, "MNT_EXPIRE"),
    (8, "UMOUNT_NOFOLLOW"),
];

pub fn umount_flags(v: u64) -> Vec<String> {
    bit_names(v & 0xffff_ffff, UMOUNT_FLAGS)
}

/// `memfd_create` flags (the huge page size bits are kept as a number).
const MFD_FLAGS: &[(u64, &str)] = &[
    (1, "MFD_CLOEXEC"),
    (2, "MFD_ALLOW_SEALING"),
    (4, "MFD_HUGETLB"),
    (8, "MFD_NOEXEC_SEAL"),
    (16, "MFD_EXEC"),
];

pub fn memfd_flags(v: u64) -> Vec<String> {
    bit_names(v & 0xffff_ffff, MFD_FLAGS)
}

/// `delete_module` flags.
pub fn delete_module_flags(v: u64) -> Vec<String> {
    bit_names(
        v & 0xffff_ffff,
        &[(0o4000, "O_NONBLOCK"), (0o1000, "O_TRUNC")],
    )
}

/// `dup3` flags.
pub fn dup3_flags(v: u64) -> Vec<String> {
    bit_names(v & 0xffff_ffff, &[(0o2000000, "O_CLOEXEC")])
}

/// `enum bpf_prog_type` (uapi `bpf.h`).
pub fn bpf_prog_type(t: u32) -> String {
    const TYPES: [&str; 33] = [
        "UNSPEC",
        "SOCKET_FILTER",
        "KPROBE",
        "SCHED_CLS",
        "SCHED_ACT",
        "TRACEPOINT",
        "XDP",
        "PERF_EVENT",
        "CGROUP_SKB",
        "CGROUP_SOCK",
        "LWT_IN",
        "LWT_OUT",
        "LWT_XMIT",
        "SOCK_OPS",
        "SK_SKB",
        "CGROUP_DEVICE",
        "SK_MSG",
        "RAW_TRACEPOINT",
        "CGROUP_SOCK_ADDR",
        "LWT_SEG6LOCAL",
        "LIRC_MODE2",
        "SK_REUSEPORT",
        "FLOW_DISSECTOR",
        "CGROUP_SYSCTL",
        "RAW_TRACEPOINT_WRITABLE",
        "CGROUP_SOCKOPT",
        "TRACING",
        "STRUCT_OPS",
        "EXT",
        "LSM",
        "SK_LOOKUP",
        "SYSCALL",
        "NETFILTER",
    ];
    match TYPES.get(t as usize) {
        Some(n) => format!("BPF_PROG_TYPE_{n}"),
        None => format!("BPF_PROG_TYPE_{t}"),
    }
}

/// The `bpf(2)` command name of the commands reported.
pub fn bpf_command(cmd: u64) -> String {
    match cmd {
        5 => "BPF_PROG_LOAD".into(),
        n => format!("BPF_CMD_{n}"),
    }
}

/// Socket family name of a raw or packet socket.
pub fn family_name(family: u16) -> &'static str {
    match family {
        2 => "ipv4",
        10 => "ipv6",
        17 => "packet",
        _ => "other",
    }
}

/// Socket type name.
pub fn socket_type_name(ty: u16) -> String {
    match ty {
        1 => "stream".into(),
        2 => "dgram".into(),
        3 => "raw".into(),
        5 => "seqpacket".into(),
        10 => "packet".into(),
        n => n.to_string(),
    }
}

/// The protocol of a raw IP socket (`IPPROTO_*`) or a packet socket (`ETH_P_*`, passed in
/// network byte order).
pub fn socket_protocol(family: u16, protocol: u16) -> String {
    if family == 17 {
        let p = u16::from_be(protocol);
        return match p {
            0 => "0".into(),
            0x0003 => "ETH_P_ALL".into(),
            0x0800 => "ETH_P_IP".into(),
            0x0806 => "ETH_P_ARP".into(),
            0x86dd => "ETH_P_IPV6".into(),
            0x8100 => "ETH_P_8021Q".into(),
            0x88cc => "ETH_P_LLDP".into(),
            n => format!("0x{n:04x}"),
        };
    }
    match protocol {
        0 => "IPPROTO_IP".into(),
        1 => "IPPROTO_ICMP".into(),
        2 => "IPPROTO_IGMP".into(),
        6 => "IPPROTO_TCP".into(),
        17 => "IPPROTO_UDP".into(),
        47 => "IPPROTO_GRE".into(),
        58 => "IPPROTO_ICMPV6".into(),
        132 => "IPPROTO_SCTP".into(),
        255 => "IPPROTO_RAW".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(34), "SIGRTMIN+2");
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("SIGSTOP"), Some(19));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("64"), None);
        assert_eq!(parse_signal("nope"), None);
        assert_eq!(ptrace_request(0x4206), "PTRACE_SEIZE");
        assert_eq!(ptrace_request(999), "PTRACE_999");
        assert_eq!(cap_names(1 << 21 | 1), vec!["CAP_CHOWN", "CAP_SYS_ADMIN"]);
        assert_eq!(cap_names(1 << 50), vec!["CAP_50"]);
        assert_eq!(
            clone_flags(0x2000_0000 | 0x0002_0000),
            vec!["CLONE_NEWNS", "CLONE_NEWPID"]
        );
        assert_eq!(clone_flags(0x1), vec!["0x1"]);
        assert_eq!(
            mount_flags(0xc0ed_0000 | 4096 | 16384),
            vec!["MS_BIND", "MS_REC"]
        );
        assert_eq!(umount_flags(2), vec!["MNT_DETACH"]);
        assert_eq!(memfd_flags(3), vec!["MFD_CLOEXEC", "MFD_ALLOW_SEALING"]);
        assert_eq!(bpf_prog_type(6), "BPF_PROG_TYPE_XDP");
        assert_eq!(bpf_prog_type(99), "BPF_PROG_TYPE_99");
        assert_eq!(socket_protocol(17, 0x0300), "ETH_P_ALL");
        assert_eq!(socket_protocol(2, 1), "IPPROTO_ICMP");
    }
}
