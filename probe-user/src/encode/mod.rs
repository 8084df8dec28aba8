//! Event -> bytes. One implementation per format.
pub mod alert;
mod cache;
pub mod flow;
pub mod native;
pub mod net;
// Other formats (issue 7).
pub mod ecs;
pub mod format;
pub mod json;
pub mod ocsf;
pub mod pretty;
pub mod process;
pub mod schema_check;
pub mod security;

use crate::event::Event;

/// Turns an event into one output record (a JSON line for the native format).
pub trait Encoder: Send {
    /// Appends the record for `ev`, numbered `seq`, to `out` (with its trailing newline).
    fn encode(&self, ev: &Event, seq: u64, out: &mut Vec<u8>);
}

/// Base64 of `b` when it is not valid UTF-8 (the `<field>_b64` sibling of the schema).
pub fn b64_if_invalid(b: &[u8]) -> Option<String> {
    use base64::Engine as _;
    match std::str::from_utf8(b) {
        Ok(_) => None,
        Err(_) => Some(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

/// Top-level keys of a native record that the ECS and OCSF mappings know; other objects
/// (added by newer kinds) are carried over whole.
pub const NATIVE_KEYS: &[&str] = &[
    "ts",
    "kind",
    "seq",
    "host",
    "schema",
    "process",
    "parent",
    "container",
    "result",
    "alert",
    "exit",
    "child",
    "exec",
    "file",
    "net",
    "dns",
    "flow",
    "probe",
    "loss",
];

/// `result` of syscall-based events: `{ok}`, plus `errno` and its symbolic name on failure and
/// the new fd of a successful open.
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ResultV {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i64>,
}

impl ResultV {
    /// From a raw syscall return value (negative errno on failure).
    pub fn from_ret(ret: i64) -> Self {
        if ret < 0 {
            let errno = i32::try_from(-ret).unwrap_or(i32::MAX);
            ResultV {
                ok: false,
                errno: Some(errno),
                error: Some(errno_name(errno)),
                fd: None,
            }
        } else {
            ResultV {
                ok: true,
                errno: None,
                error: None,
                fd: None,
            }
        }
    }
}

/// Symbolic errno name (`ENOENT`), or `E<n>` for a number the C library has no name for.
pub fn errno_name(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => format!("E{errno}"),
        e => format!("{e:?}"),
    }
}

#[cfg(test)]
mod result_tests {
    use super::*;

    #[test]
    fn errno_names_and_results() {
        assert_eq!(errno_name(2), "ENOENT");
        assert_eq!(errno_name(111), "ECONNREFUSED");
        assert_eq!(errno_name(100_000), "E100000");
        assert_eq!(ResultV::from_ret(-13).error.as_deref(), Some("EACCES"));
        assert!(ResultV::from_ret(3).ok);
    }
}
