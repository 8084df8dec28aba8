//! The one error of a bad flag, config file or value.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown event kind or category {0:?}; known: {1}")]
    UnknownKind(String, String),
    #[error("--events selects nothing")]
    NoKinds,
    #[error("bad size {0:?}: use bytes or a K/M/G suffix (e.g. 16M)")]
    BadSize(String),
    #[error("ring buffer size {0} must be a power of two and a multiple of the page size ({1})")]
    RingSize(u64, u64),
    #[error("{0}")]
    Xdp(String),
    #[error(transparent)]
    FileEvents(#[from] crate::families::file::FileOptionsError),
    #[error(transparent)]
    SecurityEvents(#[from] crate::families::security::SecurityOptionsError),
    #[error(transparent)]
    Respond(#[from] crate::analyze::respond::config::RespondConfigError),
    /// A flag value that does not parse; `problem` says why.
    #[error("{flag}: {problem}")]
    Flag { flag: &'static str, problem: String },
    /// The config file: `problem` names the key and what is wrong with it.
    #[error("config file {path}: {problem}")]
    File { path: String, problem: String },
}
