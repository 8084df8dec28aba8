//! Reading wire records: unaligned reads checked against the length, and the one error every
//! family decoder returns. No input makes a decoder panic.

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
    #[error("malformed DNS payload: {0}")]
    Dns(String),
}

/// Reads a `T` from the front of `bytes` (which may be unaligned).
pub fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked above; the wire types are plain data valid for any bit pattern.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

/// Reads a `T` from the front of a record of `kind`, or says how short it was.
pub fn need<T: Copy>(bytes: &[u8], kind: probe_common::EventKind) -> Result<T, DecodeError> {
    read::<T>(bytes).ok_or(DecodeError::BadLength {
        kind: kind.name(),
        len: bytes.len(),
        want: std::mem::size_of::<T>(),
    })
}
