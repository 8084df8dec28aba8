//! File record bytes -> [`FileRecord`].
use probe_common::{
    FileEvent, FileSyscall, FILE_BASE_PARTIAL, FILE_BY_FD, FILE_FIXED_LEN, FILE_HAS_BASE,
    FILE_HAS_TARGET, FILE_HAS_TARGET_BASE, FILE_PATH_TRUNCATED, FILE_PATH_UNREADABLE,
    FILE_TARGET_TRUNCATED, FILE_TARGET_UNREADABLE, FILE_TIMES_NULL, FILE_TIMES_UNREADABLE,
    PATH_MAX,
};

use probe_common::EventKind;

use crate::{
    event::{
        file::{FileRecord, FileTimes},
        Body,
    },
    families::wire::DecodeError,
};

/// Decodes the body of a file record; `None` when lengths do not add up.
pub fn decode(bytes: &[u8]) -> Option<FileRecord> {
    if bytes.len() < FILE_FIXED_LEN {
        return None;
    }
    // SAFETY: length checked; FileEvent's fixed part is plain data, read unaligned.
    let mut fixed = std::mem::MaybeUninit::<FileEvent>::zeroed();
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            fixed.as_mut_ptr() as *mut u8,
            FILE_FIXED_LEN,
        )
    };
    let ev = unsafe { fixed.assume_init() };
    let syscall = FileSyscall::try_from(ev.syscall).ok()?;
    let data = &bytes[FILE_FIXED_LEN..];
    let take = |len: u32, present: bool, at: &mut usize| -> Option<Option<Vec<u8>>> {
        if !present {
            return Some(None);
        }
        let len = len as usize;
        if len >= PATH_MAX || data.len() < *at + len {
            return None;
        }
        let v = data[*at..*at + len].to_vec();
        *at += len;
        Some(Some(v))
    };
    let mut at = 0;
    let path = take(ev.path_len, true, &mut at)?.unwrap_or_default();
    let target = take(ev.target_len, ev.fflags & FILE_HAS_TARGET != 0, &mut at)?;
    let base = take(ev.base_len, ev.fflags & FILE_HAS_BASE != 0, &mut at)?;
    let target_base = take(
        ev.target_base_len,
        ev.fflags & FILE_HAS_TARGET_BASE != 0,
        &mut at,
    )?;
    let _ = FILE_BASE_PARTIAL; // no base: userspace falls back to /proc
    let times = times_of(syscall, ev.fflags, ev.times);
    Some(FileRecord {
        times,
        syscall,
        path_resolved: path.first() == Some(&b'/'),
        target_resolved: target.as_ref().is_some_and(|t| t.first() == Some(&b'/')),
        path,
        path_truncated: ev.fflags & FILE_PATH_TRUNCATED != 0,
        path_unreadable: ev.fflags & FILE_PATH_UNREADABLE != 0,
        target,
        target_truncated: ev.fflags & (FILE_TARGET_TRUNCATED | FILE_TARGET_UNREADABLE) != 0,
        base,
        target_base,
        resolved_from: None,
        dirfd: ev.dirfd,
        target_dirfd: ev.target_dirfd,
        by_fd: ev.fflags & FILE_BY_FD != 0,
        flags: ev.flags,
        mode: ev.mode,
        uid: ev.uid,
        gid: ev.gid,
        length: ev.length,
        ret: ev.ret,
    })
}

/// The times of a utime call, as (seconds, nanoseconds) pairs whatever the syscall's layout.
fn times_of(sys: FileSyscall, fflags: u32, t: [i64; 4]) -> Option<FileTimes> {
    let pairs = match sys {
        FileSyscall::Utimensat => [(t[0], t[1]), (t[2], t[3])],
        // struct timeval: microseconds.
        FileSyscall::Utimes | FileSyscall::Futimesat => [
            (t[0], t[1].saturating_mul(1000)),
            (t[2], t[3].saturating_mul(1000)),
        ],
        FileSyscall::Utime => [(t[0], 0), (t[1], 0)],
        _ => return None,
    };
    Some(if fflags & FILE_TIMES_UNREADABLE != 0 {
        FileTimes::Unreadable
    } else if fflags & FILE_TIMES_NULL != 0 {
        FileTimes::Now
    } else {
        FileTimes::Set(pairs)
    })
}

/// A whole file record as a [`Body`], or how short it was.
pub fn decode_body(kind: EventKind, bytes: &[u8]) -> Result<Body, DecodeError> {
    let f = decode(bytes).ok_or(DecodeError::BadLength {
        kind: kind.name(),
        len: bytes.len(),
        want: FILE_FIXED_LEN,
    })?;
    Ok(Body::File(Box::new(f)))
}
