//! The profile folder: one JSON file per workload, read at start, written atomically (a
//! temporary file renamed over the old one). A file that does not parse is renamed `.bad`
//! and its workload learns again; a folder that cannot be written (read-only, full) is
//! warned about and counted, and the run goes on.
use std::{
    collections::HashMap,
    io::Write as _,
    path::{Path, PathBuf},
};

use super::profile::{Profile, FORMAT};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a tprobe profile: {problem}")]
    Parse { path: String, problem: String },
}

/// A file name for a workload key: its readable characters, and a hash of the whole key so
/// that two keys never share a file.
pub fn file_name(key: &str) -> String {
    let readable: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    // FNV-1a: stable across builds and platforms (the name must not change between runs).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{}-{:08x}.json", readable.trim_matches('_'), h as u32)
}

/// Reads and checks one profile file.
pub fn read(path: &Path) -> Result<Profile, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| StoreError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Profile, StoreError> {
    let bad = |problem: String| StoreError::Parse {
        path: path.display().to_string(),
        problem,
    };
    let de = &mut serde_json::Deserializer::from_str(text);
    let p: Profile = serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        bad(format!("at `{at}`: {}", e.inner()))
    })?;
    if p.tprobe_profile != FORMAT {
        return Err(bad(format!(
            "format {} (this tprobe reads {FORMAT})",
            p.tprobe_profile
        )));
    }
    if p.workload.trim().is_empty() {
        return Err(bad("empty `workload`".into()));
    }
    if !(1..=super::workload::MAX_RATE_INTERVAL_S).contains(&p.rate_interval_s) {
        return Err(bad(format!(
            "`rate_interval_s` is {} (1 to {} seconds)",
            p.rate_interval_s,
            super::workload::MAX_RATE_INTERVAL_S
        )));
    }
    Ok(p)
}

/// Writes `p` to `path` through a temporary file in the same folder.
pub fn write(path: &Path, p: &Profile) -> Result<(), StoreError> {
    let io = |e| StoreError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let mut text = serde_json::to_vec_pretty(p).map_err(|e| io(std::io::Error::other(e)))?;
    text.push(b'\n');
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}.tmp", name.unwrap_or_default()));
    let done = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done.map_err(io)
}

/// What the folder held at start.
#[derive(Default)]
pub struct Loaded {
    pub profiles: HashMap<String, (PathBuf, Profile)>,
    /// Files renamed `.bad` (or left, in a read-only folder), with the reason.
    pub bad: Vec<String>,
    /// Files that could not be read at all.
    pub unreadable: Vec<String>,
}

/// Loads every `*.json` in `dir` (not hidden files); profiles of one workload in two files are
/// merged. A missing folder is made unless `read_only`.
pub fn load(dir: &Path, read_only: bool, dir_names: usize) -> Result<Loaded, StoreError> {
    let io = |e| StoreError::Io {
        path: dir.display().to_string(),
        source: e,
    };
    if !dir.exists() && !read_only {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut out = Loaded::default();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned());
            n.is_some_and(|n| n.ends_with(".json") && !n.starts_with('.')) && p.is_file()
        })
        .collect();
    names.sort();
    for path in names {
        match read(&path) {
            Ok(p) => match out.profiles.get_mut(&p.workload) {
                Some((_, mine)) => mine.merge(&p, dir_names),
                None => {
                    out.profiles.insert(p.workload.clone(), (path, p));
                }
            },
            Err(e @ StoreError::Parse { .. }) => {
                let mut why = e.to_string();
                if !read_only {
                    let bad = path.with_extension("json.bad");
                    match std::fs::rename(&path, &bad) {
                        Ok(()) => why.push_str(&format!(" (renamed {})", bad.display())),
                        Err(r) => why.push_str(&format!(" (cannot rename it: {r})")),
                    }
                }
                out.bad.push(why);
            }
            Err(e) => out.unreadable.push(e.to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tprobe-bl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn file_names_are_readable_and_distinct() {
        let a = file_name("shop/web@registry.local/nginx");
        assert!(a.starts_with("shop_web_registry.local_nginx-"), "{a}");
        assert!(a.ends_with(".json"));
        assert_ne!(file_name("a/b"), file_name("a_b"));
        assert_eq!(file_name("a/b"), file_name("a/b"));
    }

    #[test]
    fn a_bad_file_is_renamed_and_good_ones_load() {
        let d = dir("load");
        let p = Profile::new("w1", 100, 60);
        write(&d.join(file_name("w1")), &p).unwrap();
        std::fs::write(
            d.join("broken.json"),
            "{\"tprobe_profile\": 1, \"workload\": ",
        )
        .unwrap();
        std::fs::write(d.join("other.txt"), "ignored").unwrap();
        let l = load(&d, false, 8).unwrap();
        assert_eq!(l.profiles.len(), 1);
        assert_eq!(l.profiles["w1"].1, p);
        assert_eq!(l.bad.len(), 1, "{:?}", l.bad);
        assert!(l.bad[0].contains("broken.json"), "{:?}", l.bad);
        assert!(d.join("broken.json.bad").exists());
        assert!(!d.join("broken.json").exists());
        // No temporary files left behind.
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A hand-edited rate interval out of range is a bad profile, not an overflow later.
    #[test]
    fn a_rate_interval_out_of_range_is_refused() {
        for v in [0, 86_401, u64::MAX] {
            let mut p = serde_json::to_value(Profile::new("w", 100, 60)).unwrap();
            p["rate_interval_s"] = v.into();
            let e = parse(Path::new("w.json"), &p.to_string())
                .unwrap_err()
                .to_string();
            assert!(e.contains("rate_interval_s"), "{v}: {e}");
        }
    }

    #[test]
    fn a_read_only_load_renames_nothing() {
        let d = dir("ro");
        std::fs::write(d.join("broken.json"), "not json").unwrap();
        let l = load(&d, true, 8).unwrap();
        assert_eq!(l.bad.len(), 1);
        assert!(d.join("broken.json").exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
