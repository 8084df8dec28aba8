//! Project tasks: `cargo xtask setup | run | test | lint | bench | kernel-test`.
mod bench;
#[cfg(test)]
mod doclinks;
mod kernels;
mod modgraph;
mod python;
mod setup;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing need (idempotent; fast when nothing is missing).
    Setup {
        /// Only the Rust toolchain pieces (nightly, bpf-linker, musl target), no test tools.
        #[arg(long)]
        toolchain_only: bool,
    },
    /// Build and run `tprobe` as root with the given arguments (e.g. `-- run --events process`).
    Run {
        /// Build in debug mode instead of release.
        #[arg(long)]
        debug: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Lint, then unit and integration tests (as root).
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments for the test binaries (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// rustfmt check and clippy for the host crates and the eBPF crate.
    Lint,
    /// Overhead benchmarks beside bpftrace; writes BENCHMARKS.md (not part of `test`).
    Bench {
        /// Rounds per comparison (median is reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Seconds of idle measurement.
        #[arg(long, default_value_t = 60)]
        idle_secs: u64,
        /// Smaller workloads, for a quick smoke run.
        #[arg(long)]
        quick: bool,
        /// Run only these sections (w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, k1, xdp, idle); BENCHMARKS.md is then
        /// left alone and the table only printed.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Print a crate's module graph (who imports whom) and its import cycles.
    Modgraph {
        #[arg(default_value = "probe-user")]
        krate: String,
    },
    /// Boot the static tprobe on other kernels (Debian 6.1, 6.12) under qemu and check its events.
    KernelTest,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Setup { toolchain_only } => setup::setup_with(toolchain_only),
        Cmd::Run { debug, args } => run(debug, &args),
        Cmd::Test { no_lint, args } => test(no_lint, &args),
        Cmd::Lint => {
            setup::setup()?;
            lint()
        }
        Cmd::Bench {
            rounds,
            idle_secs,
            quick,
            only,
        } => {
            setup::setup()?;
            setup::packages(&["bpftrace"])?;
            util::status(&mut util::cargo(&[
                "build",
                "--release",
                "-p",
                "probe-user",
                "--bin",
                "tprobe",
            ]))?;
            if !util::is_root() {
                anyhow::bail!("benchmarks load eBPF programs: run `sudo -E cargo xtask bench`");
            }
            bench::bench(
                &util::root().join("target/release/tprobe"),
                &bench::Opts {
                    rounds,
                    idle_secs,
                    quick,
                    only,
                },
            )
        }
        Cmd::KernelTest => kernel_test(),
        Cmd::Modgraph { krate } => {
            let src = util::root().join(&krate).join("src");
            for (m, deps) in modgraph::graph(&src)? {
                let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
                println!(
                    "{} -> {}",
                    if m.is_empty() { "crate" } else { &m },
                    deps.join(", ")
                );
            }
            modgraph::check(&krate, &src)
        }
    }
}

fn run(debug: bool, args: &[String]) -> Result<()> {
    setup::setup()?;
    let mut build = util::cargo(&["build", "-p", "probe-user", "--bin", "tprobe"]);
    if !debug {
        build.arg("--release");
    }
    util::status(&mut build)?;
    let bin = util::root()
        .join("target")
        .join(if debug { "debug" } else { "release" })
        .join("tprobe");
    let args: Vec<&str> = if args.is_empty() {
        vec!["run"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    let mut cmd = util::as_root(&bin, &args);
    util::exec(&mut cmd)
}

fn lint() -> Result<()> {
    // Cheapest first: the house rule of no import cycles, from the sources alone.
    for krate in ["probe-user", "probe-ebpf", "probe-common", "xtask", "tests"] {
        modgraph::check(krate, &util::root().join(krate).join("src"))?;
    }
    util::status(&mut util::cargo(&["fmt", "--all", "--check"]))?;
    util::status(&mut util::cargo(&[
        "clippy",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The eBPF crate alone, for its own target: with the host crates, feature unification
    // would pull std-only features into aya-ebpf's dependencies.
    util::status(&mut util::cargo(&[
        "+nightly",
        "clippy",
        "-p",
        "probe-ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Zbuild-std=core",
        "--",
        "-D",
        "warnings",
    ]))
}

fn test(no_lint: bool, args: &[String]) -> Result<()> {
    setup::setup()?;
    if !no_lint {
        lint()?;
    }
    util::status(&mut util::cargo(&[
        "build",
        "-p",
        "probe-user",
        "--bin",
        "tprobe",
    ]))?;
    let bin = util::root().join("target/debug/tprobe");
    let mut test = util::cargo(&["test", "--no-fail-fast"]);
    if !args.is_empty() {
        test.arg("--").args(args);
    }
    test.env("TPROBE_BIN", &bin);
    // Integration tests load eBPF programs: they need root.
    if !util::is_root() {
        anyhow::bail!("the integration tests load eBPF programs: run `sudo -E cargo xtask test`");
    }
    kernels::prepare(&mut test)?;
    util::test_with_summary(&mut test)
}

fn kernel_test() -> Result<()> {
    setup::setup()?;
    let mut test = util::cargo(&[
        "test",
        "-p",
        "tprobe-tests",
        "--test",
        "it",
        "--",
        "kernels::",
    ]);
    kernels::prepare(&mut test)?;
    test.arg("--nocapture");
    util::test_with_summary(&mut test)
}
