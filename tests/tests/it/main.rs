//! Integration tests: one binary, each test starts the real probe, causes real activity and
//! asserts on the JSON lines that come out. Run as root through `cargo xtask test`.
mod cli;
mod lifecycle;
mod process;
