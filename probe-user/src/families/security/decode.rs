//! Security record bytes -> [`SecRecord`]: the fixed part, the string slots its flags say are
//! there, and for the socket kinds the `NetHead` the net decoder reads.
use probe_common::{
    EventKind, NetHead, SecEvent, SecSyscall, NET_FIXED_LEN, SEC_CALLER_PIDNS, SEC_DATA_LEN,
    SEC_EXTRA_UNREADABLE, SEC_FIXED_LEN, SEC_HAS_EXTRA, SEC_HAS_RET, SEC_HAS_TARGET, SEC_SLOT_AT,
    SEC_STR_LONG, SEC_STR_PRESENT, SEC_STR_SHORT, SEC_STR_TRUNCATED, SEC_STR_UNREADABLE,
    SEC_TARGET_MANY,
};

use crate::{
    event::{
        security::{SecRecord, StrArg, TargetTask},
        Body,
    },
    families::{
        net,
        wire::{read, DecodeError},
    },
};

fn bad_length(kind: EventKind, len: usize, want: usize) -> DecodeError {
    DecodeError::BadLength {
        kind: kind.name(),
        len,
        want,
    }
}

/// Decodes a security record of `kind`.
pub fn decode(kind: EventKind, bytes: &[u8]) -> Result<Body, DecodeError> {
    if matches!(kind, EventKind::ProcessDup | EventKind::NetSocket) {
        let n = net::decode::decode(kind, bytes)?;
        // The dup's new fd is in `arg` (the net decoder keeps it only for listen).
        let info: NetHead = read(bytes).ok_or(bad_length(kind, bytes.len(), NET_FIXED_LEN))?;
        return Ok(Body::Security(Box::new(SecRecord {
            syscall: None,
            ret: n.ret,
            args: [info.info.fd as i64 as u64, info.info.arg, 0, 0, 0, 0],
            extra: None,
            extra_unreadable: false,
            strings: Default::default(),
            target: None,
            target_many: false,
            caller_pidns: false,
            target_info: None,
            net: Some(n),
        })));
    }
    if bytes.len() < SEC_FIXED_LEN {
        return Err(bad_length(kind, bytes.len(), SEC_FIXED_LEN));
    }
    // SAFETY: length checked; the fixed part is plain data, read unaligned.
    let mut fixed = std::mem::MaybeUninit::<SecEvent>::zeroed();
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), fixed.as_mut_ptr() as *mut u8, SEC_FIXED_LEN)
    };
    let ev = unsafe { fixed.assume_init() };
    let syscall = SecSyscall::try_from(ev.syscall).map_err(|_| bad_length(kind, bytes.len(), 0))?;
    let data = &bytes[SEC_FIXED_LEN..];
    let f = ev.sflags;
    let mut strings: [StrArg; 3] = Default::default();
    for (i, s) in strings.iter_mut().enumerate() {
        s.truncated = f & (SEC_STR_TRUNCATED << i) != 0;
        s.unreadable = f & (SEC_STR_UNREADABLE << i) != 0;
        if f & (SEC_STR_PRESENT << i) == 0 {
            continue;
        }
        let cap = if i == 2 { SEC_STR_LONG } else { SEC_STR_SHORT };
        let (at, len) = (SEC_SLOT_AT[i], ev.str_len[i] as usize);
        if len >= cap || at + len > SEC_DATA_LEN {
            return Err(bad_length(kind, bytes.len(), SEC_FIXED_LEN + at + len));
        }
        let v = data
            .get(at..at + len)
            .ok_or_else(|| bad_length(kind, bytes.len(), SEC_FIXED_LEN + at + len))?;
        s.value = Some(v.to_vec());
    }
    Ok(Body::Security(Box::new(SecRecord {
        syscall: Some(syscall),
        ret: (f & SEC_HAS_RET != 0).then_some(ev.ret),
        args: ev.args,
        extra: (f & SEC_HAS_EXTRA != 0).then_some(ev.extra),
        extra_unreadable: f & SEC_EXTRA_UNREADABLE != 0,
        strings,
        target: (f & SEC_HAS_TARGET != 0).then_some(TargetTask {
            pid: ev.target_pid,
            tid: ev.target_tid,
            start_ns: ev.target_start_ns,
        }),
        target_many: f & SEC_TARGET_MANY != 0,
        caller_pidns: f & SEC_CALLER_PIDNS != 0,
        target_info: None,
        net: None,
    })))
}

#[cfg(test)]
mod tests {
    use probe_common::{EventHeader, SecRecord as Wire};

    use super::*;

    fn record(sys: SecSyscall, f: impl FnOnce(&mut SecEvent)) -> Vec<u8> {
        let mut ev = Wire::<SEC_DATA_LEN> {
            header: EventHeader::zeroed(),
            ret: 0,
            args: [0; 6],
            extra: [0; 4],
            target_start_ns: 0,
            syscall: sys as u32,
            sflags: 0,
            target_pid: 0,
            target_tid: 0,
            str_len: [0; 4],
            data: [0; SEC_DATA_LEN],
        };
        f(&mut ev);
        // SAFETY: test-only view of a repr(C) wire struct without padding.
        unsafe {
            std::slice::from_raw_parts(
                &ev as *const SecEvent as *const u8,
                std::mem::size_of::<SecEvent>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn strings_flags_and_targets_decode() {
        let rec = record(SecSyscall::Mount, |e| {
            e.sflags = SEC_HAS_RET
                | (SEC_STR_PRESENT << 2)
                | (SEC_STR_UNREADABLE)
                | (SEC_STR_PRESENT << 1)
                | (SEC_STR_TRUNCATED << 1)
                | SEC_HAS_TARGET;
            e.ret = -14;
            e.str_len[1] = 5;
            e.data[SEC_SLOT_AT[1]..SEC_SLOT_AT[1] + 5].copy_from_slice(b"tmpfs");
            e.str_len[2] = 4;
            e.data[SEC_SLOT_AT[2]..SEC_SLOT_AT[2] + 4].copy_from_slice(b"/mnt");
            e.target_pid = 7;
        });
        let len = SEC_FIXED_LEN + SEC_SLOT_AT[2] + 4;
        let Body::Security(r) = decode(EventKind::FileMount, &rec[..len]).unwrap() else {
            panic!()
        };
        assert_eq!(r.syscall, Some(SecSyscall::Mount));
        assert_eq!(r.ret, Some(-14));
        assert!(r.strings[0].unreadable && r.strings[0].value.is_none());
        assert_eq!(r.strings[1].value.as_deref(), Some(&b"tmpfs"[..]));
        assert!(r.strings[1].truncated);
        assert_eq!(r.strings[2].value.as_deref(), Some(&b"/mnt"[..]));
        assert_eq!(r.target.unwrap().pid, 7);
        // Cut before the end of a string it says is there.
        assert!(decode(EventKind::FileMount, &rec[..len - 1]).is_err());
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        assert!(decode(EventKind::ProcessSetuid, &[0; 10]).is_err());
        let rec = record(SecSyscall::Setuid, |e| e.syscall = 999);
        assert!(decode(EventKind::ProcessSetuid, &rec).is_err());
        let rec = record(SecSyscall::MemfdCreate, |e| {
            e.sflags = SEC_STR_PRESENT;
            e.str_len[0] = u16::MAX;
        });
        assert!(decode(EventKind::ProcessMemfd, &rec).is_err());
        let good = record(SecSyscall::Mount, |e| {
            e.sflags = SEC_STR_PRESENT << 2;
            e.str_len[2] = 100;
        });
        for n in 0..SEC_FIXED_LEN + SEC_SLOT_AT[2] + 100 {
            let _ = decode(EventKind::FileMount, &good[..n]);
        }
    }
}
