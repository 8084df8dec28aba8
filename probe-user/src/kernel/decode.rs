//! Ring buffer bytes -> [`Event`]: the common header here, the payload through the family
//! decoders. Every length is checked; no input makes it panic.
use probe_common::{EventHeader, EventKind};

use crate::{
    event::{Body, Event, Identity, Task},
    families::{
        self,
        wire::{read, DecodeError},
    },
};

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
        exec_id: h.exec_id,
        id: Identity {
            euid: h.id.euid,
            egid: h.id.egid,
            auid: (h.id.auid != u32::MAX).then_some(h.id.auid),
            tty: h.id.tty,
            cap_effective: h.id.cap_effective,
            cap_permitted: h.id.cap_permitted,
            ns: h.id.ns,
        },
    }
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let h: EventHeader = read(bytes).ok_or(DecodeError::Short(bytes.len()))?;
    let kind = EventKind::try_from(h.kind).map_err(|e| DecodeError::UnknownKind(e.0))?;
    let body = families::decode(kind, &h, bytes)?;
    // Flows have no task: the owning process is found later, from the socket tables.
    if let Body::Flow(rec) = body {
        return Ok(Event::flow(*rec));
    }
    Ok(Event {
        task: Some(task(&h, kind)),
        ..Event::probe(h.ts_ns, body)
    })
}

#[cfg(test)]
mod tests {
    use probe_common::{ExecEvent, ARGC_MAX, EXEC_FIXED_LEN, FLAG_ARGS_TRUNCATED};

    use super::*;
    use crate::families::process::decode::split_args;

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
        let n = filename.len() as u32;
        // filename, interp, args, args_total, exe, cwd, xflags, dev
        for v in [n, n, args.len() as u32, args.len() as u32, n, 1, 0, 0] {
            b.extend(v.to_le_bytes());
        }
        b.extend([0u8; 32]); // ino, size, ctime
        assert_eq!(b.len(), EXEC_FIXED_LEN);
        b.extend(filename);
        b.extend(filename);
        b.extend(filename);
        b.extend(b"/");
        b.extend(args);
        b
    }

    #[test]
    fn exec_round_trip_with_odd_args() {
        let rec = exec_record(b"/bin/echo", b"echo\0\0a\nb\0\xff\xfe\0", 0);
        let ev = decode(&rec).unwrap();
        let Body::Exec(x) = ev.body else { panic!() };
        assert_eq!(x.filename, b"/bin/echo");
        assert_eq!(x.interp, b"/bin/echo");
        assert_eq!(x.exe, b"/bin/echo");
        assert_eq!(x.cwd.as_deref(), Some(&b"/"[..]));
        assert_eq!(
            x.args,
            vec![b"echo".to_vec(), vec![], b"a\nb".to_vec(), vec![0xff, 0xfe]]
        );
        assert!(!x.args_truncated);
        let t = ev.task.unwrap();
        assert_eq!((t.pid, t.tid, t.comm.as_slice()), (42, 43, &b"true"[..]));
    }

    #[test]
    fn exec_cut_mid_argument_is_truncated() {
        let ev = decode(&exec_record(b"/x", b"a\0bc", FLAG_ARGS_TRUNCATED)).unwrap();
        let Body::Exec(x) = ev.body else { panic!() };
        assert_eq!(x.args, vec![b"a".to_vec(), b"bc".to_vec()]);
        assert!(x.args_truncated);
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
