//! Small process helpers.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // `+nightly` only works through the rustup proxy, not the resolved cargo binary.
    if args.first().is_some_and(|a| a.starts_with('+')) {
        c = Command::new("cargo");
    }
    c.args(args).current_dir(root());
    c
}

pub fn status(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {}", describe(cmd));
    let st = cmd
        .status()
        .with_context(|| format!("running {}", describe(cmd)))?;
    if !st.success() {
        bail!("{} failed: {st}", describe(cmd));
    }
    Ok(())
}

/// Runs a command and reports whether it succeeded, quietly.
pub fn ok(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// `bin args`, through sudo when we are not root.
pub fn as_root(bin: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new(bin);
        c.args(args);
        c
    } else {
        let mut c = Command::new("sudo");
        c.arg("-E").arg(bin).args(args);
        c
    }
}

/// Replaces this process with `cmd` so signals (Ctrl-C) reach it directly.
pub fn exec(cmd: &mut Command) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let err = cmd.exec();
    Err(err).with_context(|| format!("exec {}", describe(cmd)))
}

/// Runs `cargo test`, echoing its output, and ends with one `N passed, N failed` line summed
/// over every test binary (cargo's own last line is that of the last binary only).
pub fn test_with_summary(cmd: &mut Command) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    eprintln!("xtask: {}", describe(cmd));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", describe(cmd)))?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut it = part.split_whitespace().rev();
                let (Some(what), Some(n)) = (it.next(), it.next()) else {
                    continue;
                };
                let n: u64 = n.trim_start_matches("ok.").parse().unwrap_or(0);
                match what {
                    "passed" => passed += n,
                    "failed" => failed += n,
                    "ignored" => ignored += n,
                    _ => {}
                }
            }
        }
    }
    let st = child.wait()?;
    println!("{passed} passed, {failed} failed, {ignored} skipped");
    if !st.success() {
        bail!("{} failed: {st}", describe(cmd));
    }
    Ok(())
}
