//! tracefs: find (or mount) it and read tracepoint record layouts from `format` files, so field
//! offsets come from the running kernel rather than from our assumptions.
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error("tracefs is not mounted and mounting it at /sys/kernel/tracing failed: {0} (mount it with `mount -t tracefs tracefs /sys/kernel/tracing`)")]
    Mount(nix::Error),
    #[error("tracepoint {0} does not exist on this kernel")]
    NoTracepoint(String),
    #[error("tracepoint {tp} has no field {field}")]
    NoField { tp: String, field: String },
}

const CANDIDATES: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Returns the tracefs root, mounting tracefs at `/sys/kernel/tracing` when nothing is there.
pub fn ensure_mounted() -> Result<PathBuf, TracefsError> {
    for c in CANDIDATES {
        if Path::new(c).join("events").is_dir() {
            return Ok(PathBuf::from(c));
        }
    }
    nix::mount::mount(
        Some("tracefs"),
        "/sys/kernel/tracing",
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(TracefsError::Mount)?;
    Ok(PathBuf::from(CANDIDATES[0]))
}

/// A field of a tracepoint record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

/// Parses the `field:` lines of a format file.
pub fn parse_format(text: &str) -> Vec<Field> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let decl = parts.next().unwrap_or("");
        let mut offset = None;
        let mut size = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = p.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        // The name is the last identifier of the declaration, before any array suffix.
        let last = decl
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap_or("");
        let name = last.split('[').next().unwrap_or("").to_owned();
        if let (Some(offset), Some(size)) = (offset, size) {
            if !name.is_empty() {
                out.push(Field { name, offset, size });
            }
        }
    }
    out
}

pub fn tracepoint_exists(root: &Path, category: &str, name: &str) -> bool {
    root.join("events").join(category).join(name).is_dir()
}

/// Offset of `field` in the record of `category:name`.
pub fn field_offset(
    root: &Path,
    category: &str,
    name: &str,
    field: &str,
) -> Result<u32, TracefsError> {
    let tp = format!("{category}:{name}");
    let text =
        std::fs::read_to_string(root.join("events").join(category).join(name).join("format"))
            .map_err(|_| TracefsError::NoTracepoint(tp.clone()))?;
    parse_format(&text)
        .into_iter()
        .find(|f| f.name == field)
        .map(|f| f.offset)
        .ok_or(TracefsError::NoField {
            tp,
            field: field.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_of_both_fork_layouts() {
        let new = "name: sched_process_fork\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
        let f = parse_format(new);
        assert_eq!(
            f[1],
            Field {
                name: "parent_comm".into(),
                offset: 8,
                size: 4
            }
        );
        assert_eq!(f[2].name, "child_pid");
        let exec = "\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;";
        assert_eq!(parse_format(exec)[0].name, "filename");
        let old = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:const char * filename;\toffset:16;\tsize:8;\tsigned:0;";
        let f = parse_format(old);
        assert_eq!(
            f[0],
            Field {
                name: "parent_comm".into(),
                offset: 8,
                size: 16
            }
        );
        assert_eq!(f[1].name, "filename");
    }
}
