//! Symbolic names of file syscall flags (`O_*`, `AT_*`, `RENAME_*`), without allocation.
use probe_common::FileSyscall;

use crate::event::file::FileRecord;

/// Symbolic names of a record's `flags` for its syscall.
pub fn flag_names(f: &FileRecord) -> FlagNames {
    match f.syscall {
        FileSyscall::Open | FileSyscall::Openat | FileSyscall::Openat2 | FileSyscall::Creat => {
            open_flag_names(f.flags)
        }
        FileSyscall::Renameat2 => bit_names(f.flags, RENAME_FLAGS),
        _ => bit_names(f.flags, AT_FLAGS),
    }
}

/// Open flags in the order `open(2)` lists them; the access mode comes first.
const OPEN_FLAGS: &[(u32, &str)] = &[
    (libc::O_CREAT as u32, "O_CREAT"),
    (libc::O_EXCL as u32, "O_EXCL"),
    (libc::O_NOCTTY as u32, "O_NOCTTY"),
    (libc::O_TRUNC as u32, "O_TRUNC"),
    (libc::O_APPEND as u32, "O_APPEND"),
    (libc::O_NONBLOCK as u32, "O_NONBLOCK"),
    (libc::O_SYNC as u32, "O_SYNC"),
    (libc::O_DSYNC as u32, "O_DSYNC"),
    (libc::O_ASYNC as u32, "O_ASYNC"),
    (libc::O_DIRECT as u32, "O_DIRECT"),
    // libc says 0 on 64-bit targets, but the kernel's bit is what the syscall carries.
    (0o100000, "O_LARGEFILE"),
    (libc::O_TMPFILE as u32, "O_TMPFILE"),
    (libc::O_DIRECTORY as u32, "O_DIRECTORY"),
    (libc::O_NOFOLLOW as u32, "O_NOFOLLOW"),
    (libc::O_NOATIME as u32, "O_NOATIME"),
    (libc::O_CLOEXEC as u32, "O_CLOEXEC"),
    (libc::O_PATH as u32, "O_PATH"),
];

const AT_FLAGS: &[(u32, &str)] = &[
    (libc::AT_SYMLINK_NOFOLLOW as u32, "AT_SYMLINK_NOFOLLOW"),
    (libc::AT_REMOVEDIR as u32, "AT_REMOVEDIR"),
    (libc::AT_SYMLINK_FOLLOW as u32, "AT_SYMLINK_FOLLOW"),
    (libc::AT_NO_AUTOMOUNT as u32, "AT_NO_AUTOMOUNT"),
    (libc::AT_EMPTY_PATH as u32, "AT_EMPTY_PATH"),
];

const RENAME_FLAGS: &[(u32, &str)] = &[
    (1, "RENAME_NOREPLACE"),
    (2, "RENAME_EXCHANGE"),
    (4, "RENAME_WHITEOUT"),
];

/// Symbolic names of a set of flag bits, kept on the stack: the names are static and unknown
/// bits are one number, so naming the flags of an event allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct FlagNames {
    names: [&'static str; 24],
    n: usize,
    /// Bits no name covers, written as one hex string (0: none).
    rest: u32,
}

impl FlagNames {
    fn new() -> Self {
        FlagNames {
            names: [""; 24],
            n: 0,
            rest: 0,
        }
    }

    fn push(&mut self, name: &'static str) {
        if let Some(slot) = self.names.get_mut(self.n) {
            *slot = name;
            self.n += 1;
        }
    }

    /// Adds the names of the bits of `v` found in `table`; multi-bit flags (O_SYNC,
    /// O_TMPFILE) win over their parts, and bits left over are kept as a number.
    fn add_bits(&mut self, v: u32, table: &[(u32, &'static str)]) {
        let mut rest = v;
        for &(bits, name) in table {
            if bits != 0 && rest & bits == bits {
                self.push(name);
                rest &= !bits;
            }
        }
        self.rest |= rest;
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0 && self.rest == 0
    }

    /// The names as a list (what the JSON array holds), for tests.
    #[cfg(test)]
    pub fn to_vec(self) -> Vec<std::borrow::Cow<'static, str>> {
        use std::borrow::Cow;
        let mut v: Vec<Cow<'static, str>> = self.names[..self.n]
            .iter()
            .map(|&s| Cow::Borrowed(s))
            .collect();
        if self.rest != 0 {
            v.push(Cow::Owned(format!("{:#x}", self.rest)));
        }
        v
    }
}

impl serde::Serialize for FlagNames {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut seq = s.serialize_seq(Some(self.n + usize::from(self.rest != 0)))?;
        for name in &self.names[..self.n] {
            seq.serialize_element(name)?;
        }
        if self.rest != 0 {
            seq.serialize_element(&format_args!("{:#x}", self.rest))?;
        }
        seq.end()
    }
}

fn bit_names(v: u32, table: &[(u32, &'static str)]) -> FlagNames {
    let mut f = FlagNames::new();
    f.add_bits(v, table);
    f
}

/// Open flags by name, the access mode first.
pub fn open_flag_names(flags: u32) -> FlagNames {
    let acc = match flags & libc::O_ACCMODE as u32 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let mut f = FlagNames::new();
    f.push(acc);
    f.add_bits(flags & !(libc::O_ACCMODE as u32), OPEN_FLAGS);
    f
}
