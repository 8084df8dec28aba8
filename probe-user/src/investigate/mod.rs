//! `tprobe investigate`: an offline stage. It reads recorded native events (files, the file
//! sink's rotated and gzipped files, stdin), rebuilds the process tree from `entity_id` links
//! and tells the storyline of a target: its ancestors, itself and every descendant with what
//! each did, the alerts and responses where they happened and the losses in that time.
//!
//! Two passes over the input keep memory bounded by processes, not events: the first builds
//! the tree (and finds the target), the second collects the activity of the chosen processes
//! only. Modules, in flow order: read (inputs) → line (quick look, full parse) → tree, scan
//! (the passes) → select (targets) → story (the model) → text, html, timeline (renderers) →
//! cmd (the command).
pub mod activity;
pub mod cmd;
pub mod html;
pub mod line;
pub mod progress;
pub mod read;
pub mod scan;
pub mod select;
pub mod story;
pub mod text;
pub mod timeline;
pub mod tree;

/// Why an investigation has no storyline to show.
#[derive(Debug, thiserror::Error)]
pub enum InvestigateError {
    #[error("no process with entity_id {0} in these files")]
    NoEntity(String),
    #[error("no process with pid {0} in these files")]
    NoPid(u32),
    #[error("no process with pid {pid} alive at {at} in these files")]
    NoPidAt { pid: u32, at: String },
    #[error("no alert with seq {0} in these files")]
    NoAlert(u64),
    #[error("no alert of rule {0} in these files")]
    NoRule(String),
    #[error("alert {0} names no process (it has no process.entity_id)")]
    AlertWithoutProcess(u64),
    #[error("--at {0:?}: not a time (RFC 3339, e.g. 2026-12-02T06:00:00Z)")]
    BadTime(String),
    #[error("none of the inputs could be read")]
    NoInput,
    #[error("cannot spool stdin to a temporary file: {0}")]
    Spool(std::io::Error),
}
