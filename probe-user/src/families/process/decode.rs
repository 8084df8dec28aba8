//! `process.*` records -> [`Body`]: exec (filename, interpreter, exe, cwd, argv, inode facts),
//! failed execs, fork and exit.
use probe_common::{
    EventHeader, EventKind, ExecEvent, ExecFailedEvent, ExitEvent, ForkEvent, ARGC_MAX,
    EXECF_FILENAME_TRUNCATED, EXECF_FIXED_LEN, EXEC_CWD_DELETED, EXEC_CWD_TRUNCATED,
    EXEC_CWD_UNKNOWN, EXEC_EXE_PSEUDO, EXEC_EXE_TRUNCATED, EXEC_FIXED_LEN, EXEC_HAS_CTIME,
    EXEC_HAS_INODE, EXEC_NLINK0, FLAG_ARGS_TRUNCATED, FLAG_THREAD,
};

use crate::{
    event::{
        process::{ExeInode, ExecFailure, ExecRecord},
        Body, CpuTime, ExitStatus,
    },
    families::wire::{need, read, DecodeError},
};

/// Splits the kernel's NUL-separated argv block; at most `ARGC_MAX` entries.
/// Returns the args and whether any were dropped or cut.
pub fn split_args(block: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut args = Vec::new();
    let mut cut = false;
    if block.is_empty() {
        return (args, false);
    }
    // A block that does not end in NUL was cut mid-argument.
    let (body, partial) = match block.last() {
        Some(0) => (&block[..block.len() - 1], false),
        _ => (block, true),
    };
    for a in body.split(|&b| b == 0) {
        if args.len() == ARGC_MAX {
            cut = true;
            break;
        }
        args.push(a.to_vec());
    }
    (args, cut || partial)
}

/// A kernel `dev_t` (`major << 20 | minor`) as userspace's `st_dev`.
pub fn user_dev(kdev: u32) -> u64 {
    libc::makedev(kdev >> 20, kdev & 0xf_ffff)
}

/// The `u32` at `offset_of!(T, field)`, 0 when out of range (lengths are checked after).
fn field_u32(bytes: &[u8], off: usize) -> u32 {
    bytes.get(off..).and_then(read::<u32>).unwrap_or(0)
}

fn bad(kind: EventKind, len: usize, want: usize) -> DecodeError {
    DecodeError::BadLength {
        kind: kind.name(),
        len,
        want,
    }
}

/// Cuts `lens` consecutive pieces off the front of `data`.
fn pieces<const N: usize>(data: &[u8], lens: [usize; N]) -> Option<([&[u8]; N], &[u8])> {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for (i, n) in lens.into_iter().enumerate() {
        if rest.len() < n {
            return None;
        }
        let (a, b) = rest.split_at(n);
        out[i] = a;
        rest = b;
    }
    Some((out, rest))
}

fn decode_exec(h: &EventHeader, bytes: &[u8]) -> Result<Body, DecodeError> {
    let kind = EventKind::ProcessExec;
    if bytes.len() < EXEC_FIXED_LEN {
        return Err(bad(kind, bytes.len(), EXEC_FIXED_LEN));
    }
    // SAFETY: length checked; the fixed part is plain data, read unaligned.
    let mut fixed = std::mem::MaybeUninit::<ExecEvent>::zeroed();
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            fixed.as_mut_ptr() as *mut u8,
            EXEC_FIXED_LEN,
        )
    };
    let ev = unsafe { fixed.assume_init() };
    let lens = [
        ev.filename_len as usize,
        ev.interp_len as usize,
        ev.exe_len as usize,
        ev.cwd_len as usize,
        ev.args_len as usize,
    ];
    let want = lens.iter().fold(0usize, |a, &b| a.saturating_add(b));
    let data = &bytes[EXEC_FIXED_LEN..];
    let Some(([filename, interp, exe, cwd, args], _)) = pieces(data, lens) else {
        return Err(bad(kind, bytes.len(), EXEC_FIXED_LEN.saturating_add(want)));
    };
    let x = ev.xflags;
    let (args, cut) = split_args(args);
    Ok(Body::Exec(Box::new(ExecRecord {
        filename: filename.to_vec(),
        interp: interp.to_vec(),
        exe: exe.to_vec(),
        exe_truncated: x & EXEC_EXE_TRUNCATED != 0,
        exe_pseudo: x & EXEC_EXE_PSEUDO != 0,
        cwd: (x & EXEC_CWD_UNKNOWN == 0).then(|| cwd.to_vec()),
        cwd_truncated: x & EXEC_CWD_TRUNCATED != 0,
        cwd_deleted: x & EXEC_CWD_DELETED != 0,
        args,
        args_truncated: cut || h.flags & FLAG_ARGS_TRUNCATED != 0,
        nlink0: x & EXEC_NLINK0 != 0,
        inode: (x & EXEC_HAS_INODE != 0).then_some(ExeInode {
            dev: user_dev(ev.dev),
            ino: ev.ino,
            size: ev.size,
            // Multigrain timestamps (6.13) keep a flag in the top bits of the nanoseconds.
            ctime: (x & EXEC_HAS_CTIME != 0).then_some((ev.ctime_sec, ev.ctime_nsec & 0x3fff_ffff)),
        }),
        kernel_deny: if x & probe_common::EXEC_DENIED != 0 {
            Some(true)
        } else if x & probe_common::EXEC_DENY_FAILED != 0 {
            Some(false)
        } else {
            None
        },
    })))
}

fn decode_failed(h: &EventHeader, bytes: &[u8]) -> Result<Body, DecodeError> {
    let kind = EventKind::ProcessExecFailed;
    if bytes.len() < EXECF_FIXED_LEN {
        return Err(bad(kind, bytes.len(), EXECF_FIXED_LEN));
    }
    let at = |off: usize| field_u32(bytes, off);
    let flen = at(std::mem::offset_of!(ExecFailedEvent, filename_len)) as usize;
    let alen = at(std::mem::offset_of!(ExecFailedEvent, args_len)) as usize;
    let fflags = at(std::mem::offset_of!(ExecFailedEvent, fflags));
    let data = &bytes[EXECF_FIXED_LEN..];
    let Some(([filename, args], _)) = pieces(data, [flen, alen]) else {
        return Err(bad(
            kind,
            bytes.len(),
            EXECF_FIXED_LEN.saturating_add(flen.saturating_add(alen)),
        ));
    };
    let ret = bytes
        .get(std::mem::offset_of!(ExecFailedEvent, ret)..)
        .and_then(read::<i64>)
        .unwrap_or(0);
    let (args, cut) = split_args(args);
    Ok(Body::ExecFailed(Box::new(ExecFailure {
        filename: filename.to_vec(),
        filename_truncated: fflags & EXECF_FILENAME_TRUNCATED != 0,
        args,
        args_truncated: cut || h.flags & FLAG_ARGS_TRUNCATED != 0,
        dirfd: at(std::mem::offset_of!(ExecFailedEvent, dirfd)) as i32,
        at_flags: at(std::mem::offset_of!(ExecFailedEvent, at_flags)),
        ret,
    })))
}

/// Decodes a process record whose header is `h`.
pub fn decode(kind: EventKind, h: &EventHeader, bytes: &[u8]) -> Result<Body, DecodeError> {
    Ok(match kind {
        EventKind::ProcessExec => decode_exec(h, bytes)?,
        EventKind::ProcessExecFailed => decode_failed(h, bytes)?,
        EventKind::ProcessFork => {
            let ev: ForkEvent = need(bytes, kind)?;
            Body::Fork {
                child_pid: ev.child_pid,
                child_tid: ev.child_tid,
                child_start_ns: ev.child_start_ns,
                thread: ev.header.flags & FLAG_THREAD != 0,
            }
        }
        _ => {
            let ev: ExitEvent = need(bytes, kind)?;
            let mut st = ExitStatus::from_wait_status(ev.exit_code);
            if ev.header.flags & FLAG_THREAD == 0 {
                st.cpu = Some(CpuTime::from_ns(ev.utime_ns, ev.stime_ns, ev.runtime_ns));
            }
            Body::Exit(st)
        }
    })
}
