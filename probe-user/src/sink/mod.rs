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

    /// The run's last records (`probe.stop` and the losses it accounts for): a queued sink
    /// takes them past its bound, which a normal batch would overflow.
    fn write_final(&mut self, records: &[u8]) -> Result<(), SinkError> {
        self.write_batch(records)
    }
}

// Sinks and fan-out (issue 7).
pub mod config;
pub mod fanout;
pub mod otlp;
pub mod queue;
pub mod rotate;
pub mod settings;
pub mod spool;
pub mod syslog;

/// What transports need from an encoded record (native, ECS or OCSF JSON): its time, kind and
/// sequence number, when the record carries them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecordMeta {
    pub ts_ns: Option<u64>,
    pub kind: Option<String>,
    pub seq: Option<u64>,
    /// An alert's Sigma level (`low` ... `critical`).
    pub level: Option<String>,
}

impl RecordMeta {
    pub fn of(rec: &[u8]) -> Self {
        let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(rec)
        else {
            return RecordMeta::default();
        };
        let get = |path: &[&str]| {
            let mut v = o.get(path[0])?;
            for p in &path[1..] {
                v = v.get(p)?;
            }
            Some(v.clone())
        };
        let rfc = |v: serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str()?)
                .ok()?
                .timestamp_nanos_opt()
                .and_then(|n| u64::try_from(n).ok())
        };
        // native, then ECS, then OCSF (epoch milliseconds)
        let ts_ns = get(&["ts"])
            .and_then(rfc)
            .or_else(|| get(&["@timestamp"]).and_then(rfc))
            .or_else(|| {
                get(&["time"])
                    .and_then(|v| v.as_u64())
                    .map(|ms| ms * 1_000_000)
            });
        let kind = get(&["kind"])
            .or_else(|| get(&["event", "action"]))
            .or_else(|| get(&["metadata", "event_code"]))
            .and_then(|v| v.as_str().map(str::to_owned));
        let seq = get(&["seq"])
            .or_else(|| get(&["event", "sequence"]))
            .or_else(|| get(&["metadata", "sequence"]))
            .and_then(|v| v.as_u64());
        let level = get(&["alert", "rule", "level"])
            .or_else(|| get(&["tprobe", "alert", "level"]))
            .or_else(|| get(&["unmapped", "alert", "rule", "level"]))
            .and_then(|v| v.as_str().map(str::to_owned));
        RecordMeta {
            ts_ns,
            kind,
            seq,
            level,
        }
    }
}
