//! tprobe userspace. Data flows one way: kernel hook -> ring buffer -> drain -> decode ->
//! enrich -> analyze -> filter -> encode -> sink. Families (`families/`) hold what one event
//! family knows; stages hold what every event goes through. See docs/architecture.md.
pub mod analyze;
pub mod clock;
pub mod config;
pub mod encode;
pub mod enrich;
pub mod event;
pub mod families;
pub mod filter;
pub mod investigate;
pub mod kernel;
pub mod pipeline;
pub mod run;
pub mod schema;
pub mod service;
pub mod sink;

/// Process exit codes, so scripts can tell failures apart.
pub mod exit_code {
    pub const RUNTIME: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const PERMISSION: u8 = 3;
    pub const UNSUPPORTED_KERNEL: u8 = 4;
    /// tracefs is not mounted and could not be mounted.
    pub const TRACEFS: u8 = 5;
    /// A network interface named by the user does not exist.
    pub const NO_INTERFACE: u8 = 6;
}

/// Maps an error from `run` to an exit code.
pub fn exit_code_for(e: &anyhow::Error) -> u8 {
    use kernel::load::LoadError;
    if e.downcast_ref::<families::flow::iface::InterfaceNotFound>()
        .is_some()
    {
        return exit_code::NO_INTERFACE;
    }
    // The interfaces or mode asked for cannot be used: like a bad argument.
    let bad_xdp = e
        .downcast_ref::<families::flow::XdpError>()
        .is_some_and(|x| {
            !matches!(
                x,
                families::flow::XdpError::Program(_) | families::flow::XdpError::Map(..)
            )
        });
    if bad_xdp
        || e.downcast_ref::<config::error::ConfigError>().is_some()
        || e.downcast_ref::<analyze::AnalyzeError>().is_some()
    {
        return exit_code::USAGE;
    }
    match e.downcast_ref::<LoadError>() {
        Some(LoadError::Permission(_)) => exit_code::PERMISSION,
        Some(LoadError::Tracefs(_)) => exit_code::TRACEFS,
        Some(LoadError::Btf(_) | LoadError::Unsupported(_)) => exit_code::UNSUPPORTED_KERNEL,
        _ => exit_code::RUNTIME,
    }
}
