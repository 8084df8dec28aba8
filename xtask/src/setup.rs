//! `cargo xtask setup`: everything a fresh machine needs, each step skipped when already done.
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::util::{self, ok, output, status};

/// Debian packages the tests use (container runtime, network tools, receivers, ...).
/// (util-linux: setpriv for the uid filter test; bsdutils: script, a terminal for the summary test.)
pub const DEBIAN_PACKAGES: &[&str] = &["iproute2", "procps", "util-linux", "bsdutils"];

const BPF_LINKER_VERSION: &str = "0.13";

pub fn setup() -> Result<()> {
    nightly()?;
    bpf_linker()?;
    debian_packages()?;
    Ok(())
}

fn nightly() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        status(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let comps = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    if !comps.lines().any(|l| l.starts_with("rust-src")) {
        status(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn bpf_linker() -> Result<()> {
    let have = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if have.contains(&format!(" {BPF_LINKER_VERSION}.")) {
        return Ok(());
    }
    // bpf-linker must use the same LLVM as nightly rustc: link it against nightly's own
    // libLLVM through a prefix directory of symlinks.
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("rustc +nightly --print sysroot")?;
    let libdir = std::path::Path::new(sysroot.trim()).join("lib");
    let llvm = std::fs::read_dir(&libdir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so") || n.starts_with("libLLVM-"))
        .with_context(|| format!("no libLLVM in {}", libdir.display()))?;
    let major = llvm
        .trim_start_matches("libLLVM.so.")
        .trim_start_matches("libLLVM-")
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("")
        .to_owned();
    if major.is_empty() {
        bail!("cannot tell the LLVM version of {llvm}");
    }
    let prefix = util::root().join("target/llvm-prefix");
    let plib = prefix.join("lib");
    std::fs::create_dir_all(&plib)?;
    for name in ["libLLVM.so", llvm.as_str()] {
        let link = plib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(libdir.join(&llvm), &link)?;
    }
    status(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                &format!("^{BPF_LINKER_VERSION}"),
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix),
    )
}

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !util::is_root() {
        bail!(
            "missing Debian packages {missing:?}: run as root or `apt-get install -y {}`",
            missing.join(" ")
        );
    }
    // Wait for a dpkg lock held by another install rather than failing at once.
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(["-o", "DPkg::Lock::Timeout=600", "-q"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    // One retry after an update: a stale package list is the usual reason an install fails.
    if !ok(apt(&["install", "-y", "--no-install-recommends"]).args(&missing)) {
        status(&mut apt(&["update"]))?;
        status(apt(&["install", "-y", "--no-install-recommends"]).args(&missing))?;
    }
    Ok(())
}
