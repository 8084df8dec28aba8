use std::process::ExitCode;

use clap::Parser as _;
use probe_user::{
    cli::{Cli, Command},
    exit_code, loader,
};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match Cli::parse().command {
        Command::Run(args) => {
            let cfg = match args.into_config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tprobe: {e}");
                    return ExitCode::from(exit_code::USAGE);
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("tprobe: cannot start the runtime: {e}");
                    return ExitCode::from(exit_code::RUNTIME);
                }
            };
            match rt.block_on(probe_user::run::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tprobe: {e:#}");
                    ExitCode::from(probe_user::exit_code_for(&e))
                }
            }
        }
        Command::Events => {
            for h in loader::HOOKS {
                for k in h.kinds {
                    println!("{:<16} {}", k.name(), h.attach.describe());
                }
            }
            for k in probe_user::xdp::KINDS {
                println!("{:<16} xdp/<--xdp-iface>", k.name());
            }
            ExitCode::SUCCESS
        }
    }
}
