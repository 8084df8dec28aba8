//! `process.*` records -> [`Body`]: exec (filename, interpreter, argv), fork and exit.
use probe_common::{
    EventHeader, EventKind, ExecEvent, ExitEvent, ForkEvent, ARGC_MAX, EXEC_FIXED_LEN,
    FLAG_ARGS_TRUNCATED, FLAG_THREAD,
};

use crate::{
    event::{Body, ExitStatus},
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

/// Decodes a process record whose header is `h`.
pub fn decode(kind: EventKind, h: &EventHeader, bytes: &[u8]) -> Result<Body, DecodeError> {
    Ok(match kind {
        EventKind::ProcessExec => {
            if bytes.len() < EXEC_FIXED_LEN {
                return Err(DecodeError::BadLength {
                    kind: kind.name(),
                    len: bytes.len(),
                    want: EXEC_FIXED_LEN,
                });
            }
            let off = std::mem::offset_of!(ExecEvent, filename_len);
            let field = |i: usize| read::<u32>(&bytes[off + 4 * i..]).unwrap_or(0) as usize;
            let (filename_len, interp_len, args_len) = (field(0), field(1), field(2));
            let data = &bytes[EXEC_FIXED_LEN..];
            let paths = filename_len.saturating_add(interp_len);
            let want = paths.saturating_add(args_len);
            if data.len() < want {
                return Err(DecodeError::BadLength {
                    kind: kind.name(),
                    len: bytes.len(),
                    want: EXEC_FIXED_LEN.saturating_add(want),
                });
            }
            let (args, cut) = split_args(&data[paths..want]);
            Body::Exec {
                filename: data[..filename_len].to_vec(),
                interp: data[filename_len..paths].to_vec(),
                args,
                args_truncated: cut || h.flags & FLAG_ARGS_TRUNCATED != 0,
            }
        }
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
            Body::Exit(ExitStatus::from_wait_status(ev.exit_code))
        }
    })
}
