//! Names of what the process records carry as numbers: capabilities and terminals.

/// `CAP_*` names by bit number (Linux 5.9+; bits past the table are `CAP_<n>`).
pub const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability set as a list of names, serialised without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapNames(pub u64);

impl serde::Serialize for CapNames {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut seq = s.serialize_seq(Some(self.0.count_ones() as usize))?;
        for bit in 0..64u32 {
            if self.0 & (1u64 << bit) == 0 {
                continue;
            }
            match CAPS.get(bit as usize) {
                Some(n) => seq.serialize_element(n)?,
                None => seq.serialize_element(&format!("CAP_{bit}"))?,
            }
        }
        seq.end()
    }
}

/// The name of a terminal from its kernel `dev_t` (`major << 20 | minor`), as `ps` shows it
/// under /dev: `pts/3`, `tty1`, `ttyS0`, `console`; 0 is no terminal.
pub fn tty_name(kdev: u32) -> Option<String> {
    if kdev == 0 {
        return None;
    }
    let (major, minor) = (kdev >> 20, kdev & 0xf_ffff);
    Some(match (major, minor) {
        (136..=143, m) => format!("pts/{}", (major - 136) * 256 + m),
        (4, m) if m < 64 => format!("tty{m}"),
        (4, m) => format!("ttyS{}", m - 64),
        (5, 0) => "tty".into(),
        (5, 1) => "console".into(),
        (5, 2) => "ptmx".into(),
        (3, m) => format!("ttyp{m}"),
        (188, m) => format!("ttyUSB{m}"),
        (204, m) if m >= 64 => format!("ttyAMA{}", m - 64),
        (maj, m) => format!("char/{maj}:{m}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(tty_name(0), None);
        assert_eq!(tty_name(136 << 20 | 3).as_deref(), Some("pts/3"));
        assert_eq!(tty_name(137 << 20 | 1).as_deref(), Some("pts/257"));
        assert_eq!(tty_name(4 << 20 | 65).as_deref(), Some("ttyS1"));
        let v = serde_json::to_value(CapNames(1 << 21 | 1 | 1 << 63)).unwrap();
        assert_eq!(
            v,
            serde_json::json!(["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_63"])
        );
        assert_eq!(CAPS[40], "CAP_CHECKPOINT_RESTORE");
    }
}
