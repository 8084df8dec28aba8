//! What every sink's settings share: the error of a bad `--sink` value, serde defaults, and
//! durations written as humantime strings. A leaf.
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SinkSpecError {
    #[error("--sink {0:?}: unknown sink type (stdout, file, otlp, syslog)")]
    UnknownType(String),
    #[error("--sink {0:?}: missing target (e.g. file:/path, otlp:http://host:4318, syslog:tcp://host:514)")]
    MissingTarget(String),
    #[error("--sink {0:?}: unknown option {1:?}")]
    UnknownOption(String, String),
    #[error("--sink {0:?}: bad value for {1}: {2:?}")]
    BadValue(String, String, String),
    #[error("syslog address {0:?}: use tcp://HOST:PORT, udp://HOST:PORT or unix:///PATH")]
    BadSyslogAddress(String),
}

pub fn yes() -> bool {
    true
}
pub fn default_batch() -> usize {
    512
}
pub fn default_batch_timeout() -> Duration {
    Duration::from_millis(500)
}
pub fn default_queue() -> usize {
    10_000
}
pub fn default_spool_max() -> u64 {
    256 << 20
}
pub fn default_retry_max() -> Duration {
    Duration::from_secs(60)
}
pub fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
pub fn default_shutdown() -> Duration {
    Duration::from_secs(5)
}
pub fn default_facility() -> String {
    "user".into()
}
pub fn default_app() -> String {
    "tprobe".into()
}

/// Durations in config files as humantime strings (`"500ms"`, `"1m"`).
pub mod humantime_serde_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

pub fn default_keep() -> usize {
    5
}
