//! Ring buffer bytes -> [`Event`]. Every length is checked; no input makes it panic.
use probe_common::{
    EventHeader, EventKind, ExecEvent, ExitEvent, FlowEvent, ForkEvent, ARGC_MAX, EXEC_FIXED_LEN,
    FLAG_ARGS_TRUNCATED, FLAG_THREAD,
};

use crate::event::{Body, Event, ExitStatus, Task};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than the event header")]
    Short(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("{kind} record of {len} bytes, expected at least {want}")]
    BadLength {
        kind: &'static str,
        len: usize,
        want: usize,
    },
    #[error(transparent)]
    Net(#[from] crate::net::NetDecodeError),
}

/// Reads a `T` from the front of `bytes` (which may be unaligned).
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked above; the wire types are plain data valid for any bit pattern.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

fn task(h: &EventHeader, kind: EventKind) -> Task {
    let comm_len = h.comm.iter().position(|&b| b == 0).unwrap_or(h.comm.len());
    Task {
        kind,
        flags: h.flags,
        ts_ns: h.ts_ns,
        pid: h.pid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        cgroup_id: h.cgroup_id,
        start_ns: h.start_ns,
        parent_start_ns: h.parent_start_ns,
        comm: h.comm[..comm_len].to_vec(),
    }
}

fn need<T>(bytes: &[u8], kind: EventKind) -> Result<T, DecodeError>
where
    T: Copy,
{
    read::<T>(bytes).ok_or(DecodeError::BadLength {
        kind: kind.name(),
        len: bytes.len(),
        want: std::mem::size_of::<T>(),
    })
}

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

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let h: EventHeader = read(bytes).ok_or(DecodeError::Short(bytes.len()))?;
    let kind = EventKind::try_from(h.kind).map_err(|e| DecodeError::UnknownKind(e.0))?;
    let body = match kind {
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
        EventKind::ProcessExit => {
            let ev: ExitEvent = need(bytes, kind)?;
            Body::Exit(ExitStatus::from_wait_status(ev.exit_code))
        }
        EventKind::FileOpen
        | EventKind::FileCreate
        | EventKind::FileUnlink
        | EventKind::FileRename
        | EventKind::FileMkdir
        | EventKind::FileRmdir
        | EventKind::FileChmod
        | EventKind::FileChown
        | EventKind::FileLink
        | EventKind::FileSymlink
        | EventKind::FileTruncate => {
            let f = crate::file::decode(bytes).ok_or(DecodeError::BadLength {
                kind: kind.name(),
                len: bytes.len(),
                want: probe_common::FILE_FIXED_LEN,
            })?;
            Body::File(Box::new(f))
        }
        EventKind::NetConnect
        | EventKind::NetAccept
        | EventKind::NetBind
        | EventKind::NetListen
        | EventKind::NetClose
        | EventKind::NetDns
        | EventKind::NetState
        | EventKind::NetSend => Body::Net(Box::new(crate::net::decode(kind, bytes)?)),
        EventKind::FlowUpdate | EventKind::FlowEnd | EventKind::FlowNew => {
            let ev: FlowEvent = need(bytes, kind)?;
            // Flows have no task: the owning process is found later, from the socket tables.
            return Ok(Event::flow(crate::xdp::FlowRecord::from_kernel(kind, &ev)));
        }
    };
    Ok(Event {
        ts_ns: h.ts_ns,
        task: Some(task(&h, kind)),
        body,
        process: None,
        parent: None,
        user: None,
        container: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32) -> EventHeader {
        let mut h = EventHeader::zeroed();
        h.kind = kind;
        h.pid = 42;
        h.tid = 43;
        h.comm[..4].copy_from_slice(b"true");
        h
    }

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a repr(C) wire struct without padding.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
            .to_vec()
    }

    fn exec_record(filename: &[u8], args: &[u8], flags: u32) -> Vec<u8> {
        let mut h = header(EventKind::ProcessExec as u32);
        h.flags = flags;
        let mut b = bytes_of(&h);
        b.extend((filename.len() as u32).to_le_bytes());
        b.extend((filename.len() as u32).to_le_bytes());
        b.extend((args.len() as u32).to_le_bytes());
        b.extend((args.len() as u32).to_le_bytes());
        b.extend(filename);
        b.extend(filename);
        b.extend(args);
        b
    }

    #[test]
    fn exec_round_trip_with_odd_args() {
        let rec = exec_record(b"/bin/echo", b"echo\0\0a\nb\0\xff\xfe\0", 0);
        let ev = decode(&rec).unwrap();
        let Body::Exec {
            filename,
            interp,
            args,
            args_truncated,
        } = ev.body
        else {
            panic!()
        };
        assert_eq!(filename, b"/bin/echo");
        assert_eq!(interp, b"/bin/echo");
        assert_eq!(
            args,
            vec![b"echo".to_vec(), vec![], b"a\nb".to_vec(), vec![0xff, 0xfe]]
        );
        assert!(!args_truncated);
        let t = ev.task.unwrap();
        assert_eq!((t.pid, t.tid, t.comm.as_slice()), (42, 43, &b"true"[..]));
    }

    #[test]
    fn exec_cut_mid_argument_is_truncated() {
        let ev = decode(&exec_record(b"/x", b"a\0bc", FLAG_ARGS_TRUNCATED)).unwrap();
        let Body::Exec {
            args,
            args_truncated,
            ..
        } = ev.body
        else {
            panic!()
        };
        assert_eq!(args, vec![b"a".to_vec(), b"bc".to_vec()]);
        assert!(args_truncated);
    }

    #[test]
    fn too_many_args_are_truncated() {
        let block: Vec<u8> = (0..100).flat_map(|_| b"x\0".to_vec()).collect();
        let (args, cut) = split_args(&block);
        assert_eq!(args.len(), ARGC_MAX);
        assert!(cut);
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        assert!(matches!(decode(&[]), Err(DecodeError::Short(0))));
        assert!(matches!(decode(&[1, 2, 3]), Err(DecodeError::Short(3))));
        assert!(matches!(
            decode(&bytes_of(&header(999))),
            Err(DecodeError::UnknownKind(999))
        ));
        // A fork header without its payload.
        assert!(matches!(
            decode(&bytes_of(&header(EventKind::ProcessFork as u32))),
            Err(DecodeError::BadLength { .. })
        ));
        // Exec lengths that point past the record.
        let mut rec = exec_record(b"/bin/x", b"x\0", 0);
        rec.truncate(rec.len() - 3);
        assert!(matches!(decode(&rec), Err(DecodeError::BadLength { .. })));
        let mut rec = exec_record(b"", b"", 0);
        let off = std::mem::offset_of!(ExecEvent, filename_len);
        rec[off..off + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&rec).is_err());
        // Every prefix of a valid record and random noise decode without panicking.
        let good = exec_record(b"/bin/echo", b"echo\0hi\0", 0);
        for n in 0..good.len() {
            let _ = decode(&good[..n]);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut buf = vec![0u8; (x % 300) as usize];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if buf.len() >= 4 {
                buf[..4].copy_from_slice(&((x % 5) as u32).to_le_bytes());
            }
            let _ = decode(&buf);
        }
    }
}
