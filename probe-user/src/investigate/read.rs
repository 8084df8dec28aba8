//! The inputs of `tprobe investigate`: plain files, the file sink's rotated and gzipped files
//! (`path.N[.gz]` oldest first, then `path`, as sink/rotate.rs names them) and `-` for stdin
//! (spooled to an anonymous temporary file so it can be read twice). Gzip is recognised by its
//! magic bytes, not the name. Every problem is counted, none stops the run.
use std::{
    fs::File,
    io::{BufRead, BufReader, Read, Seek as _, SeekFrom},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use super::{progress::Progress, InvestigateError};

/// One input, in reading order.
#[derive(Debug)]
pub struct Input {
    /// As shown to the user (`-` for stdin).
    pub name: String,
    file: File,
    /// Bytes on disk (compressed size for gzip), for the progress bar.
    pub size: u64,
}

/// Files that could not be read, and gzip streams that ended early: one entry each.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct InputProblems {
    pub unreadable: Vec<String>,
    /// (file, lines read before the data ended)
    pub truncated_gzip: Vec<(String, u64)>,
}

/// `path.N` / `path.N.gz` of a rotated file: (`path`, N). The current file is (`path`, 0).
fn rotation(path: &Path) -> (PathBuf, u64) {
    let s = path.to_string_lossy();
    let stem = s.strip_suffix(".gz").unwrap_or(&s);
    if let Some((base, n)) = stem.rsplit_once('.') {
        if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = n.parse::<u64>() {
                return (PathBuf::from(base), n);
            }
        }
    }
    (path.to_path_buf(), 0)
}

/// The files in reading order: the rotated files of one base oldest first (`.3`, `.2`, `.1`,
/// then the current file), bases in the order they were first named. Names are not
/// deduplicated away silently: a file named twice is read once.
pub fn order(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut groups: Vec<(PathBuf, Vec<(u64, PathBuf)>)> = Vec::new();
    for p in paths {
        let (base, n) = rotation(p);
        let g = match groups.iter_mut().position(|(b, _)| *b == base) {
            Some(i) => &mut groups[i].1,
            None => {
                groups.push((base, Vec::new()));
                &mut groups.last_mut().expect("just pushed").1
            }
        };
        if !g.iter().any(|(_, q)| q == p) {
            g.push((n, p.clone()));
        }
    }
    let mut out = Vec::new();
    for (_, mut g) in groups {
        // Oldest first: the highest rotation number; the current file (0) last.
        g.sort_by(|a, b| match (a.0, b.0) {
            (0, 0) => std::cmp::Ordering::Equal,
            (0, _) => std::cmp::Ordering::Greater,
            (_, 0) => std::cmp::Ordering::Less,
            (x, y) => y.cmp(&x),
        });
        out.extend(g.into_iter().map(|(_, p)| p));
    }
    out
}

/// Opens the inputs. Unreadable files are recorded in `problems` and left out; stdin is spooled
/// (with progress) into a temporary file.
pub fn open_all(
    paths: &[PathBuf],
    problems: &mut InputProblems,
    progress: &Progress,
) -> Result<Vec<Input>, InvestigateError> {
    let mut inputs = Vec::new();
    let mut stdin_seen = false;
    let files: Vec<PathBuf> = paths
        .iter()
        .filter(|p| p.as_os_str() != "-")
        .cloned()
        .collect();
    if paths.iter().any(|p| p.as_os_str() == "-") {
        stdin_seen = true;
    }
    for p in order(&files) {
        match File::open(&p).and_then(|f| f.metadata().map(|m| (f, m))) {
            Ok((_, m)) if m.is_dir() => problems
                .unreadable
                .push(format!("{}: is a directory", p.display())),
            Ok((file, m)) => inputs.push(Input {
                name: p.display().to_string(),
                file,
                size: m.len(),
            }),
            Err(e) => problems.unreadable.push(format!("{}: {e}", p.display())),
        }
    }
    if stdin_seen {
        let mut spool = tempfile::tempfile().map_err(InvestigateError::Spool)?;
        let copied = progress.spool(&mut std::io::stdin().lock(), &mut spool);
        let size = copied.map_err(InvestigateError::Spool)?;
        spool
            .seek(SeekFrom::Start(0))
            .map_err(InvestigateError::Spool)?;
        inputs.push(Input {
            name: "-".into(),
            file: spool,
            size,
        });
    }
    Ok(inputs)
}

/// Counts the bytes read from disk, for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// How a pass over the inputs ended for one file.
pub enum End {
    Whole,
    /// The gzip data ended early or is damaged.
    CutGzip(std::io::Error),
    /// The file could not be read further.
    Failed(std::io::Error),
}

/// Calls `f` with every line (without its newline) of `input`, from the start. Returns the
/// number of lines and how the file ended.
pub fn lines(input: &mut Input, progress: &Progress, mut f: impl FnMut(&[u8])) -> (u64, End) {
    if let Err(e) = input.file.seek(SeekFrom::Start(0)) {
        return (0, End::Failed(e));
    }
    let counted = Counting {
        inner: &input.file,
        read: progress.counter(),
    };
    let mut raw = BufReader::with_capacity(1 << 18, counted);
    let gzip = match raw.fill_buf() {
        Ok(b) => b.starts_with(&[0x1f, 0x8b]),
        Err(e) => return (0, End::Failed(e)),
    };
    let mut reader: Box<dyn BufRead + '_> = if gzip {
        Box::new(BufReader::with_capacity(
            1 << 18,
            flate2::bufread::MultiGzDecoder::new(raw),
        ))
    } else {
        Box::new(raw)
    };
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(1 << 14);
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return (n, End::Whole),
            Ok(_) => {
                let line = trim_eol(&buf);
                if !line.is_empty() {
                    n += 1;
                    f(line);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if gzip => return (n, End::CutGzip(e)),
            Err(e) => return (n, End::Failed(e)),
        }
    }
}

fn trim_eol(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_are_read_oldest_first() {
        let p = |s: &str| PathBuf::from(s);
        let given = vec![
            p("/r/out.json"),
            p("/r/out.json.1.gz"),
            p("/other"),
            p("/r/out.json.10.gz"),
            p("/r/out.json.2.gz"),
            p("/r/out.json.1.gz"),
        ];
        assert_eq!(
            order(&given),
            vec![
                p("/r/out.json.10.gz"),
                p("/r/out.json.2.gz"),
                p("/r/out.json.1.gz"),
                p("/r/out.json"),
                p("/other"),
            ]
        );
        assert_eq!(rotation(&p("a.b")), (p("a.b"), 0));
        assert_eq!(rotation(&p("a.7")), (p("a"), 7));
    }

    /// The names the file sink writes are the names read back in order.
    #[test]
    fn reads_what_the_rotating_sink_wrote() {
        use crate::sink::{
            rotate::{FileConfig, RotatingFile},
            Sink as _,
        };
        let d = std::env::temp_dir().join(format!("tprobe-inv-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("ev.json");
        let mut f = RotatingFile::open(FileConfig {
            path: path.clone(),
            max_size: Some(30),
            keep: 5,
            gzip: true,
        })
        .unwrap();
        for i in 0..12 {
            f.write_batch(format!("{{\"n\":{i:03}}}\n").as_bytes())
                .unwrap();
        }
        drop(f);
        let mut names: Vec<PathBuf> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let mut problems = InputProblems::default();
        let progress = Progress::hidden();
        let mut inputs = open_all(&names, &mut problems, &progress).unwrap();
        let mut got = Vec::new();
        for i in &mut inputs {
            let (_, end) = lines(i, &progress, |l| {
                got.push(String::from_utf8_lossy(l).into_owned())
            });
            assert!(matches!(end, End::Whole));
        }
        let want: Vec<String> = (0..12).map(|i| format!("{{\"n\":{i:03}}}")).collect();
        assert_eq!(got, want);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn truncated_gzip_gives_its_lines_then_an_error() {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..2000 {
            writeln!(enc, "line {i} with some text to compress").unwrap();
        }
        let gz = enc.finish().unwrap();
        let d = std::env::temp_dir().join(format!("tprobe-inv-gz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("cut.gz");
        std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
        let mut problems = InputProblems::default();
        let progress = Progress::hidden();
        let mut inputs = open_all(&[p], &mut problems, &progress).unwrap();
        let mut n = 0;
        let (count, end) = lines(&mut inputs[0], &progress, |_| n += 1);
        assert!(count > 0 && count < 2000, "{count}");
        assert!(matches!(end, End::CutGzip(_)));
        let _ = std::fs::remove_dir_all(&d);
    }
}
