//! Event -> bytes. One implementation per format.
pub mod flow;
pub mod native;
pub mod net;
// Other formats (issue 7).
pub mod ecs;
pub mod format;
pub mod ocsf;
pub mod pretty;
pub mod schema_check;

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
