//! On-disk spool of record batches waiting for a receiver: one file per batch, named by a
//! growing number so replay keeps order; written through a temporary name (a crash leaves a whole
//! batch or none) and kept across restarts. The total size is capped.
use std::{
    fs::OpenOptions,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

const EXT: &str = "spool";

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// (number, size) of each batch on disk, oldest first.
    segments: std::collections::VecDeque<(u64, u64)>,
    bytes: u64,
    next: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full ({0} bytes)")]
    Full(u64),
    #[error("spool i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl Spool {
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut segments = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_suffix(&format!(".{EXT}"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                segments.push((n, e.metadata()?.len()));
            } else if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        segments.sort();
        let bytes = segments.iter().map(|s| s.1).sum();
        let next = segments.last().map(|s| s.0 + 1).unwrap_or(0);
        Ok(Spool {
            dir: dir.to_owned(),
            max_bytes,
            segments: segments.into(),
            bytes,
            next,
        })
    }

    fn path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{n:020}.{EXT}"))
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Stores a batch at the end; refuses it whole when it would pass the cap.
    pub fn push(&mut self, records: &[Vec<u8>]) -> Result<(), SpoolError> {
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.len() + 4).sum());
        for r in records {
            buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buf.extend_from_slice(r);
        }
        if self.bytes + buf.len() as u64 > self.max_bytes {
            return Err(SpoolError::Full(self.max_bytes));
        }
        let n = self.next;
        let dst = self.path(n);
        let tmp = dst.with_extension("tmp");
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&buf)?;
        f.sync_data()?;
        std::fs::rename(&tmp, &dst)?;
        self.next += 1;
        self.bytes += buf.len() as u64;
        self.segments.push_back((n, buf.len() as u64));
        Ok(())
    }

    /// The oldest batch, left in place until [`Spool::pop`]. A damaged file yields the records
    /// read before the damage and the count of bytes that could not be read.
    pub fn peek(&self) -> Option<std::io::Result<(Vec<Vec<u8>>, bool)>> {
        let (n, _) = *self.segments.front()?;
        Some(std::fs::read(self.path(n)).map(|data| parse(&data)))
    }

    pub fn pop(&mut self) {
        if let Some((n, len)) = self.segments.pop_front() {
            let _ = std::fs::remove_file(self.path(n));
            self.bytes -= len;
        }
    }
}

/// Length-prefixed records; the flag says the tail was damaged.
fn parse(mut data: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some(len) = data
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        else {
            return (out, true);
        };
        let Some(rec) = data.get(4..4 + len) else {
            return (out, true);
        };
        out.push(rec.to_vec());
        data = &data[4 + len..];
    }
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_cap_and_reopen() {
        let d = std::env::temp_dir().join(format!("tprobe-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let mut s = Spool::open(&d, 40).unwrap();
        s.push(&[b"one".to_vec(), b"two".to_vec()]).unwrap();
        s.push(&[b"three".to_vec()]).unwrap();
        assert!(matches!(
            s.push(&[vec![b'x'; 30]]),
            Err(SpoolError::Full(40))
        ));
        let mut s = Spool::open(&d, 40).unwrap();
        assert_eq!(s.bytes(), 14 + 9);
        let (recs, bad) = s.peek().unwrap().unwrap();
        assert_eq!(recs, vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(!bad);
        s.pop();
        assert_eq!(s.peek().unwrap().unwrap().0, vec![b"three".to_vec()]);
        s.pop();
        assert!(s.is_empty() && s.peek().is_none());
        assert_eq!(parse(&[5, 0, 0, 0, b'a']), (vec![], true));
        let _ = std::fs::remove_dir_all(&d);
    }
}
