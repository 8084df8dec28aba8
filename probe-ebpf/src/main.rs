//! tprobe's eBPF programs. This file only wires the modules together.
#![no_std]
#![no_main]
// `atomic_xadd` for per-flow counters (the BPF target has no CAS, so no `fetch_add`).
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod common;
mod file;
mod filter;
mod flow;
mod kernel;
mod maps;
mod net;
mod process;
mod respond;
mod security;
mod task;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Every access is bounds-checked by hand so the verifier can see it; a panic path that
    // survives optimisation would be rejected at load time rather than reached.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
