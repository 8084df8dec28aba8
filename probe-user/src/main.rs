use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use probe_user::{
    config::{
        cli::{Cli, Command},
        file::DEFAULT_YAML,
        merge::{self, Given},
    },
    exit_code,
};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Run(args) => {
            // Which flags the user gave, so the config file fills in only the others.
            let given = matches
                .subcommand_matches("run")
                .map(Given::from_matches)
                .unwrap_or_default();
            let cfg = match merge::resolve(&args, &given) {
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
            print!("{}", probe_user::schema::events_listing());
            ExitCode::SUCCESS
        }
        Command::Schema => {
            println!("{}", probe_user::schema::JSON_SCHEMA.trim_end());
            ExitCode::SUCCESS
        }
        Command::Rules(r) => {
            use probe_user::{analyze::rules, config::cli::RulesCommand};
            match r {
                RulesCommand::Check { paths } => {
                    let (text, ok) = rules::check_report(&paths);
                    print!("{text}");
                    ExitCode::from(if ok { 0 } else { exit_code::RUNTIME })
                }
                RulesCommand::List { paths } => match rules::list_report(&paths) {
                    Ok(text) => {
                        print!("{text}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("tprobe: {e}");
                        ExitCode::from(exit_code::USAGE)
                    }
                },
            }
        }
        Command::Investigate(a) => ExitCode::from(probe_user::investigate::cmd::run(&a)),
        Command::Respond(c) => ExitCode::from(probe_user::analyze::respond::control::client(c)),
        Command::Baseline(c) => {
            let (out, err, code) = probe_user::analyze::baseline::args::run(c);
            print!("{out}");
            if let Some(e) = err {
                eprintln!("tprobe: {e}");
            }
            ExitCode::from(code)
        }
        Command::Check(a) => ExitCode::from(probe_user::kernel::check::check(&a.btf)),
        Command::Config(a) => {
            if a.default {
                print!("{}", DEFAULT_YAML);
                return ExitCode::SUCCESS;
            }
            let Some(path) = a.check else {
                return ExitCode::from(exit_code::USAGE);
            };
            match merge::check_file(&path) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tprobe: {e}");
                    ExitCode::from(exit_code::USAGE)
                }
            }
        }
    }
}
