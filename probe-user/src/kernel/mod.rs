//! Everything that talks to the kernel: load the object and patch its read-only data (`load`),
//! the hook spec families fill in (`hook`), BTF offsets, tracefs, feature probes, the kernel-side
//! filter maps, the ring-buffer drain and decoder, and `tprobe check`.
pub mod btf;
pub mod check;
pub mod decode;
pub mod drain;
pub mod features;
pub mod filter_maps;
pub mod hook;
pub mod load;
pub mod tracefs;
