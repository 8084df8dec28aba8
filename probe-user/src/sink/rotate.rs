//! A file sink with size-based rotation: `path` is written until the next record would push it
//! past `max_size`, then it becomes `path.1` (`path.1.gz` when compressing), older ones shift
//! up, and only `keep` rotated files stay. Records are never split across files.
use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{settings::default_keep, Sink, SinkError};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Rotate before the file would grow past this many bytes (never splits a line).
    #[serde(default)]
    pub max_size: Option<u64>,
    /// Rotated files kept besides the current one (`path.1` newest ... `path.N`).
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Compress rotated files (`path.1.gz` ...).
    #[serde(default)]
    pub gzip: bool,
}

pub struct RotatingFile {
    cfg: FileConfig,
    file: File,
    size: u64,
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl RotatingFile {
    pub fn open(cfg: FileConfig) -> std::io::Result<Self> {
        let file = open(&cfg.path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile { cfg, file, size })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut s = self.cfg.path.clone().into_os_string();
        s.push(format!(".{n}"));
        if self.cfg.gzip {
            s.push(".gz");
        }
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        let keep = self.cfg.keep.max(1);
        let _ = std::fs::remove_file(self.rotated(keep));
        for n in (1..keep).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        if self.cfg.gzip {
            gzip_to(&self.cfg.path, &self.rotated(1))?;
            std::fs::remove_file(&self.cfg.path)?;
        } else {
            std::fs::rename(&self.cfg.path, self.rotated(1))?;
        }
        self.file = open(&self.cfg.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Compresses `src` into `dst` (mode 0600) through a temporary name, so `dst` is whole or absent.
fn gzip_to(src: &Path, dst: &Path) -> std::io::Result<()> {
    let mut tmp = dst.as_os_str().to_owned();
    tmp.push(".tmp");
    let out = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    std::io::copy(&mut File::open(src)?, &mut enc)?;
    enc.finish()?.sync_all()?;
    std::fs::rename(&tmp, dst)
}

impl Sink for RotatingFile {
    fn write_batch(&mut self, records: &[u8]) -> Result<(), SinkError> {
        let Some(max) = self.cfg.max_size else {
            self.size += records.len() as u64;
            return self.file.write_all(records).map_err(SinkError::from_io);
        };
        // Write runs of whole records that fit, rotating in between.
        let mut start = 0;
        let mut end = 0;
        while end < records.len() {
            let next = records[end..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| end + i + 1)
                .unwrap_or(records.len());
            let pending = (end - start) as u64;
            if self.size + pending + (next - end) as u64 > max && self.size + pending > 0 {
                self.file
                    .write_all(&records[start..end])
                    .map_err(SinkError::from_io)?;
                self.size += pending;
                if self.size > 0 {
                    self.rotate()?;
                }
                start = end;
                continue;
            }
            end = next;
        }
        self.size += (end - start) as u64;
        self.file
            .write_all(&records[start..end])
            .map_err(SinkError::from_io)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tprobe-rot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rotates_on_line_boundaries_and_keeps_n() {
        let d = dir("plain");
        let path = d.join("out.json");
        let mut f = RotatingFile::open(FileConfig {
            path: path.clone(),
            max_size: Some(20),
            keep: 2,
            gzip: false,
        })
        .unwrap();
        // 7-byte records: two per file.
        let mut all = Vec::new();
        for i in 0..9 {
            let rec = format!("rec-{i:02}\n");
            all.push(rec.clone());
            f.write_batch(rec.as_bytes()).unwrap();
        }
        // A batch of three records crossing a boundary.
        f.write_batch(b"rec-09\nrec-10\nrec-11\n").unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "rec-10\nrec-11\n");
        assert_eq!(read(&d.join("out.json.1")), "rec-08\nrec-09\n");
        assert_eq!(read(&d.join("out.json.2")), "rec-06\nrec-07\n");
        assert!(!d.join("out.json.3").exists());
        let n = std::fs::read_dir(&d).unwrap().count();
        assert_eq!(n, 3);
    }

    #[test]
    fn gzip_rotated_and_oversized_record() {
        let d = dir("gz");
        let path = d.join("o");
        let mut f = RotatingFile::open(FileConfig {
            path: path.clone(),
            max_size: Some(10),
            keep: 3,
            gzip: true,
        })
        .unwrap();
        f.write_batch(b"aaaa\n").unwrap();
        // Larger than max_size: goes alone into a fresh file, whole.
        f.write_batch(b"bbbbbbbbbbbbbbbbbbbb\ncc\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "cc\n");
        let mut s = String::new();
        flate2::read::GzDecoder::new(File::open(d.join("o.1.gz")).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "bbbbbbbbbbbbbbbbbbbb\n");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("o.2.gz"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
