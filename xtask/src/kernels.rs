//! Kernel matrix preparation: Debian's own kernel images (fetched with apt, cached under
//! `target/kernel-matrix`) and a static musl `tprobe`, so the same binary can be booted under
//! `qemu-system-x86_64` on kernels other than the one this machine runs.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::util::{self, ok, output, status};

/// Kernel series in the matrix and the Debian suite that carries each one.
pub const KERNELS: &[(&str, &str)] = &[("6.1", "bookworm"), ("6.12", "bookworm-backports")];

pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// apt source added when no configured source carries bookworm-backports.
const BACKPORTS_SOURCE: &str = "/etc/apt/sources.list.d/tprobe-backports.sources";
const BACKPORTS: &str =
    "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\n\
Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";

pub fn dir() -> PathBuf {
    util::root().join("target/kernel-matrix")
}

/// The matrix can only boot x86-64 guests with this host's qemu.
pub fn host_can_run() -> bool {
    cfg!(target_arch = "x86_64")
}

/// Debian version strings compare like this only roughly; `dpkg --compare-versions` is exact.
fn newer(a: &str, b: &str) -> bool {
    ok(Command::new("dpkg").args(["--compare-versions", a, "gt", b]))
}

/// The concrete `linux-image-<abi>-amd64` package of the newest `linux-image-amd64` in `series`.
fn resolve(series: &str) -> Option<String> {
    let madison = output(Command::new("apt-cache").args(["madison", "linux-image-amd64"]))?;
    let prefix = format!("{series}.");
    let mut best: Option<String> = None;
    for line in madison.lines() {
        let v = line.split('|').nth(1).map(str::trim).unwrap_or("");
        if v.starts_with(&prefix) && best.as_deref().is_none_or(|b| newer(v, b)) {
            best = Some(v.to_owned());
        }
    }
    let show =
        output(Command::new("apt-cache").args(["show", &format!("linux-image-amd64={}", best?)]))?;
    let deps = show.lines().find_map(|l| l.strip_prefix("Depends:"))?;
    deps.split(',')
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-amd64"))
        .map(str::to_owned)
}

/// Adds bookworm-backports (idempotent) when no apt source carries it yet, then updates.
fn ensure_backports() -> Result<()> {
    let has = |p: &Path| std::fs::read_to_string(p).is_ok_and(|s| s.contains("bookworm-backports"));
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    if files.iter().any(|f| has(f)) {
        return Ok(());
    }
    if !util::is_root() {
        bail!("the 6.12 kernel comes from bookworm-backports: run as root so setup can add it");
    }
    std::fs::write(BACKPORTS_SOURCE, BACKPORTS).context(BACKPORTS_SOURCE)?;
    apt_update()
}

fn apt_update() -> Result<()> {
    // Another helper's apt may hold the lists lock for a while: a few tries, then give up.
    let mut tries = 0;
    loop {
        let r = status(
            Command::new("apt-get")
                .args(["-o", "DPkg::Lock::Timeout=600", "-q", "update"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        );
        tries += 1;
        if r.is_ok() || tries == 5 {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_secs(15));
    }
}

/// Downloads `pkg` and keeps only its `/boot/vmlinuz-*`, as `<cache>/<pkg>/vmlinuz`.
fn fetch_image(pkg: &str) -> Result<PathBuf> {
    let dest = dir().join("cache").join(pkg);
    let vmlinuz = dest.join("vmlinuz");
    if vmlinuz.is_file() {
        return Ok(vmlinuz);
    }
    let dl = dir().join("download");
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl)?;
    status(
        Command::new("apt-get")
            // Downloads into a root-owned directory: no sandbox user to hand it to.
            .args(["-q", "-o", "APT::Sandbox::User=root", "download", pkg])
            .current_dir(&dl),
    )?;
    let deb = std::fs::read_dir(&dl)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download {pkg} left no .deb"))?;
    let tar = Command::new("sh")
        .arg("-c")
        .arg("dpkg-deb --fsys-tarfile \"$0\" | tar -x --wildcards './boot/vmlinuz-*'")
        .arg(&deb)
        .current_dir(&dl)
        .status()?;
    if !tar.success() {
        bail!("extracting the kernel image from {}", deb.display());
    }
    let image = std::fs::read_dir(dl.join("boot"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .next()
        .with_context(|| format!("{pkg} has no /boot/vmlinuz-*"))?;
    std::fs::create_dir_all(&dest)?;
    std::fs::rename(&image, &vmlinuz)?;
    let _ = std::fs::remove_dir_all(&dl);
    Ok(vmlinuz)
}

/// A cached image of `series` from an earlier run (for when apt cannot answer).
fn cached(series: &str) -> Option<(String, PathBuf)> {
    let rd = std::fs::read_dir(dir().join("cache")).ok()?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("linux-image-{series}.")))
        .collect();
    names.sort();
    let n = names.pop()?;
    let p = dir().join("cache").join(&n).join("vmlinuz");
    p.is_file().then_some((n, p))
}

/// A list written less than a day ago whose images are all there: asking apt again (a second
/// per query) would only find the same packages, bar a security update.
fn fresh(list: &Path) -> bool {
    let young = std::fs::metadata(list)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < std::time::Duration::from_secs(24 * 3600));
    let text = std::fs::read_to_string(list).unwrap_or_default();
    young
        && text.lines().count() == KERNELS.len()
        && text
            .lines()
            .all(|l| l.split('\t').nth(2).is_some_and(|p| Path::new(p).is_file()))
}

/// Makes sure every kernel of the matrix is cached; writes `kernels.tsv` (series, package,
/// image path) for the test and returns its path.
pub fn kernels() -> Result<PathBuf> {
    let path = dir().join("kernels.tsv");
    if fresh(&path) {
        return Ok(path);
    }
    ensure_backports()?;
    let mut manifest = String::new();
    for (series, suite) in KERNELS {
        let mut pkg = resolve(series);
        if pkg.is_none() && util::is_root() {
            // A stale package list is the usual reason; one update, then ask again.
            apt_update()?;
            pkg = resolve(series);
        }
        let (pkg, image) = match pkg {
            Some(p) => {
                let img = fetch_image(&p)?;
                (p, img)
            }
            None => cached(series).with_context(|| {
                format!("no linux-image-amd64 {series}.x in the apt sources (Debian {suite})")
            })?,
        };
        writeln!(manifest, "{series}\t{pkg}\t{}", image.display())?;
    }
    std::fs::write(&path, manifest)?;
    Ok(path)
}

/// Builds `tprobe` for the musl target (static, so it runs in a bare busybox initramfs) and
/// returns a stripped copy: the initramfs is smaller and boots faster without debug info.
pub fn static_tprobe() -> Result<PathBuf> {
    status(&mut util::cargo(&[
        "build",
        "--target",
        MUSL_TARGET,
        "-p",
        "probe-user",
        "--bin",
        "tprobe",
    ]))?;
    let built = util::root()
        .join("target")
        .join(MUSL_TARGET)
        .join("debug/tprobe");
    let out = dir().join("tprobe");
    std::fs::create_dir_all(dir())?;
    let _ = std::fs::remove_file(&out);
    if !ok(Command::new("strip").arg("-o").arg(&out).arg(&built)) {
        std::fs::copy(&built, &out)?;
    }
    Ok(out)
}

/// The guest's helper (`tests/guest/kt_helper.rs`: the syscalls busybox cannot make), built
/// with `rustc` alone, static for musl: std only, so no crate has to build for that target.
pub fn guest_helper() -> Result<PathBuf> {
    let src = util::root().join("tests/guest/kt_helper.rs");
    let out = dir().join("kt-helper");
    std::fs::create_dir_all(dir())?;
    let fresh = |o: &Path| {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        matches!((m(o), m(&src)), (Some(a), Some(b)) if a >= b)
    };
    if !fresh(&out) {
        status(
            Command::new("rustc")
                .args(["--edition", "2021", "--target", MUSL_TARGET])
                .args([
                    "-C",
                    "opt-level=2",
                    "-C",
                    "panic=abort",
                    "-C",
                    "strip=symbols",
                ])
                .arg(&src)
                .arg("-o")
                .arg(&out),
        )?;
    }
    Ok(out)
}

/// Environment for the matrix test: what to boot and which binaries to put in the guest.
pub fn prepare(test: &mut Command) -> Result<()> {
    if !host_can_run() {
        eprintln!("xtask: kernel matrix skipped: qemu x86-64 guests need an x86-64 host");
        return Ok(());
    }
    test.env("TPROBE_KERNELS", kernels()?);
    test.env("TPROBE_STATIC_BIN", static_tprobe()?);
    test.env("TPROBE_GUEST_HELPER", guest_helper()?);
    Ok(())
}
