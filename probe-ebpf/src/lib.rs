#![no_std]
//! Library target so `probe-user` can name this crate as a build dependency; the programs are in
//! the `probe` binary.
