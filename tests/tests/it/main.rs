//! Integration tests: one binary, each test starts the real probe, causes real activity and
//! asserts on the JSON lines that come out. Run as root through `cargo xtask test`.
mod cli;
mod containers;
mod context;
mod deploy;
mod dns;
mod detection;
mod file;
mod hashes;
mod kernels;
mod lifecycle;
mod net;
mod process;
mod security;
mod security_sys;
mod rules;
mod sinks;
mod xdp;
