//! `cargo xtask setup`: everything a fresh machine needs, each step skipped when already done.
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::util::{self, ok, output, status};

/// Debian packages the tests use (container runtime, network tools, receivers, ...).
pub const DEBIAN_PACKAGES: &[&str] = &[
    "iproute2",
    "procps",
    // kernel matrix: emulated guests, their userland, `strip` for the guest binary
    "qemu-system-x86",
    "busybox-static",
    "binutils",
    // image test: podman (runc, since crun refuses hybrid cgroups), chart rendering venv
    "podman",
    "runc",
    "python3-venv",
    "iputils-ping",
    // container tests: a real containerd (+ runc above, busybox-static for the test image);
    // protoc and the well-known .proto files build the CRI and containerd API crates;
    // podman's Docker-compatible API service stands in for a Docker engine.
    "containerd",
    "protobuf-compiler",
    "libprotobuf-dev",
    // syslog sink tests: a real RFC 5424 receiver
    "rsyslog",
    // CLI tests: setpriv (util-linux) for the uid filter, script (bsdutils) for a terminal
    "util-linux",
    "bsdutils",
    // security events: ptrace by a real tracer; DNS answers: dig and curl resolving through a
    // responder the test runs
    "strace",
    // the rule pack's BPF-load rule and the security tests load a program with it
    "bpftrace",
    "bind9-dnsutils",
    "curl",
    // investigate: the HTML storyline opened in a real headless browser
    "chromium",
];

/// PyPI tools the tests use: (package, pinned version). `rotel` ships an OTLP collector binary.
pub const PYPI_TOOLS: &[(&str, &str)] = &[("rotel", "0.0.1a15")];

/// PyPI packages the tests use, installed into `target/py-venv` (see python.rs).
pub const PYPI_PACKAGES: &[&str] = &[
    "helm-python-sdk==0.2.2",
    "kubernetes-validate==1.37.0",
    "prometheus-client==0.26.0",
    "PyYAML==6.0.4",
];

const BPF_LINKER_VERSION: &str = "0.13";

pub fn setup() -> Result<()> {
    setup_with(false)
}

/// `toolchain_only`: what building needs (e.g. in the image's build stage), no test tools.
pub fn setup_with(toolchain_only: bool) -> Result<()> {
    nightly()?;
    bpf_linker()?;
    crate::python::musl_target()?;
    if toolchain_only {
        return Ok(());
    }
    debian_packages()?;
    // Kernel images (adding an apt source needs root; `cargo xtask test` runs as root anyway).
    if crate::kernels::host_can_run() && util::is_root() {
        crate::kernels::kernels()?;
    }
    crate::python::venv(PYPI_PACKAGES)?;
    pypi_tools()?;
    Ok(())
}

fn pypi_tools() -> Result<()> {
    for (name, version) in PYPI_TOOLS {
        let have =
            output(Command::new("python3").args(["-m", "pip", "show", name])).unwrap_or_default();
        if have
            .lines()
            .any(|l| l.trim() == format!("Version: {version}"))
        {
            continue;
        }
        status(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            &format!("{name}=={version}"),
        ]))?;
    }
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
    packages(DEBIAN_PACKAGES)
}

/// Installs the Debian packages of `list` that are missing.
pub fn packages(list: &[&str]) -> Result<()> {
    let missing: Vec<&str> = list
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
