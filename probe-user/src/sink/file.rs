//! A plain file, created mode 0600 and appended to.
use std::{fs::File, io::Write as _, os::unix::fs::OpenOptionsExt as _, path::Path};

use super::{Sink, SinkError};

pub struct FileSink {
    file: File,
}

impl FileSink {
    pub fn open(path: &Path) -> Result<Self, std::io::Error> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(FileSink { file })
    }
}

impl Sink for FileSink {
    fn write_batch(&mut self, records: &[u8]) -> Result<(), SinkError> {
        self.file.write_all(records).map_err(SinkError::from_io)
    }
}
