//! Flows joined to processes: who owns a socket (`owners`), and the tracker thread that turns
//! XDP flow records into `flow.*` events.
pub mod owners;
pub mod tracker;
