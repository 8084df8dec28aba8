//! Where encoded records go. One implementation per file.
pub mod file;
pub mod stdout;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The reader went away (EPIPE): a normal way for `tprobe run | head` to end.
    #[error("output closed by the reader")]
    Closed,
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
}

impl SinkError {
    pub fn from_io(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            SinkError::Closed
        } else {
            SinkError::Io(e)
        }
    }
}

/// A destination for a batch of complete records.
pub trait Sink: Send {
    /// Writes whole records and makes them visible to the reader (flushes).
    fn write_batch(&mut self, records: &[u8]) -> Result<(), SinkError>;
}
