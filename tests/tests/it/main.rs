//! Integration tests: one binary, each test starts the real probe, causes real activity and
//! asserts on the JSON lines that come out. Run as root through `cargo xtask test`.
mod baseline;
mod cli;
mod containers;
mod context;
mod deploy;
mod detection;
mod dns;
mod file;
mod hashes;
mod investigate;
mod kernels;
mod lifecycle;
mod net;
mod process;
mod respond;
mod rules;
mod security;
mod security_sys;
mod sinks;
mod xdp;
