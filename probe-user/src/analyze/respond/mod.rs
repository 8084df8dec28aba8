//! The respond stage: actions bound to rules (kill, kill-tree, freeze, isolate), the exec deny
//! list, and the console's requests, each one a `response.<action>` event whatever became of
//! it (done, refused, failed, dry run). It runs on the pipeline thread right after the analyzer.
//! Its rooms: `config` (flags and file), `actions` (pidfds, cgroups), `safety` (protect list,
//! rate limits), `deny` (the exec deny list and its kernel map), `isolate` (the TC programs),
//! `control` (the unix socket and `tprobe respond`), `console` (its requests answered), `held`
//! (what is frozen or isolated), `engine` (the stage).
pub mod actions;
pub mod config;
mod console;
pub mod control;
pub mod deny;
mod engine;
pub mod held;
pub mod isolate;
pub mod safety;

pub use engine::{RespondError, RespondStats, Responder};
