//! Standard output. Each batch is written whole and flushed, so a pipe or terminal sees every
//! line as soon as its batch is done; EPIPE ends the run cleanly.
use std::io::Write as _;

use super::{Sink, SinkError};

#[derive(Default)]
pub struct Stdout;

impl Sink for Stdout {
    fn write_batch(&mut self, records: &[u8]) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        out.write_all(records).map_err(SinkError::from_io)?;
        out.flush().map_err(SinkError::from_io)
    }
}
