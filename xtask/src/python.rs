//! Toolchain and tool pieces beyond Debian packages: the musl target (static binary for the
//! container image) and a Python venv with the PyPI tools the tests use.
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::util::{self, output, status};

pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

pub fn musl_target() -> Result<()> {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == MUSL_TARGET) {
        return Ok(());
    }
    status(Command::new("rustup").args(["target", "add", MUSL_TARGET]))
}

/// The venv the tests use (`TPROBE_PYTHON` overrides it there).
pub fn venv_dir() -> std::path::PathBuf {
    util::root().join("target/py-venv")
}

/// Creates `target/py-venv` and installs `packages` (pinned); skipped when the stamp matches.
pub fn venv(packages: &[&str]) -> Result<()> {
    let dir = venv_dir();
    let py = dir.join("bin/python");
    let stamp = dir.join(".tprobe-packages");
    let want = packages.join("\n");
    if py.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(());
    }
    if !py.exists() {
        status(Command::new("python3").arg("-m").arg("venv").arg(&dir))
            .context("creating the Python venv (Debian: apt-get install python3-venv)")?;
    }
    status(
        Command::new(&py)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(packages),
    )?;
    std::fs::write(&stamp, want)?;
    Ok(())
}
