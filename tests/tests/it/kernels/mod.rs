//! Kernel matrix: the same static tprobe, booted on Debian's 6.1 and 6.12 kernels under qemu,
//! must load, pass the verifier and report the same events as on this machine. Each event
//! category adds its checks in its own file (`process.rs`, ...) and one line in [`checks`].
use std::{io::Write as _, time::Duration};

use serde_json::Value;
use tprobe_tests::kernel::{self, Check, GuestRun, Kernel};

mod file;
mod net;
mod process;
mod respond;
mod security;

/// Every check, in the order the guest runs them.
fn checks() -> Vec<Check> {
    let mut all = Vec::new();
    all.extend(process::checks());
    all.extend(file::checks());
    all.extend(net::checks());
    all.extend(security::checks());
    all.extend(respond::checks());
    all
}

/// Hooks allowed to be skipped on a kernel series, with a word of their reason:
/// `(series, hook, reason contains)`. Anything else must attach.
const EXPECTED_SKIPS: &[(&str, &str, &str)] = &[
    // fchmodat2 is a Linux 6.6 syscall.
    (
        "6.1",
        "tracepoint/syscalls/sys_enter_fchmodat2",
        "does not exist on this kernel",
    ),
    (
        "6.1",
        "tracepoint/syscalls/sys_exit_fchmodat2",
        "does not exist on this kernel",
    ),
];

/// One boot is 5-15 s under software emulation; allow for a busy machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// What the run as a whole must show, whatever the checks: a clean start and stop, every hook
/// attached (or an expected skip), no loss, no garbage.
fn verify_run(k: &Kernel, run: &GuestRun) -> Result<(), String> {
    let release = k.package.trim_start_matches("linux-image-");
    if run.release != release {
        return Err(format!("booted {:?}, expected {release}", run.release));
    }
    if !run.garbage.is_empty() {
        return Err(format!("non-JSON output lines: {:?}", run.garbage));
    }
    if run.stderr.contains("panicked") {
        return Err(format!("tprobe panicked: {}", run.stderr));
    }
    let start = run
        .lines
        .first()
        .filter(|v| v["kind"] == "probe.start")
        .ok_or_else(|| format!("no probe.start first; stderr: {}", run.stderr))?;
    kernel::expect_eq("probe.kernel", &start["probe"]["kernel"], &release.into())?;
    // Every probed kernel feature is there on the kernels of the matrix.
    let features = start["probe"]["features"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if features.is_empty() {
        return Err("probe.start has no features".into());
    }
    for f in &features {
        if f["available"] != true || !f["error"].is_null() {
            return Err(format!("feature probe: {f}"));
        }
    }
    for h in hooks(run) {
        if h["attached"] == true {
            continue;
        }
        let name = h["hook"].as_str().unwrap_or("");
        let reason = h["reason"].as_str().unwrap_or("");
        let expected = EXPECTED_SKIPS
            .iter()
            .any(|(s, hk, r)| *s == k.series && *hk == name && reason.contains(r));
        if !expected {
            return Err(format!("hook {name} not attached: {reason}"));
        }
    }
    if run.rc != Some(0) {
        return Err(format!(
            "tprobe exited {:?}; stderr: {}",
            run.rc, run.stderr
        ));
    }
    let stop = run
        .lines
        .last()
        .filter(|v| v["kind"] == "probe.stop")
        .ok_or("no probe.stop last")?;
    kernel::expect_eq(
        "ringbuf losses",
        &stop["probe"]["losses"]["ringbuf"],
        &0.into(),
    )?;
    kernel::expect_eq(
        "decode losses",
        &stop["probe"]["losses"]["decode"],
        &0.into(),
    )?;
    for (i, v) in run.lines.iter().enumerate() {
        kernel::expect_eq("seq", &v["seq"], &((i + 1) as u64).into())?;
    }
    Ok(())
}

fn hooks(run: &GuestRun) -> Vec<Value> {
    run.start()
        .and_then(|s| s["probe"]["hooks"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn kernel_matrix() {
    if let Some(why) = kernel::unavailable() {
        // Straight to the stderr stream, past the test harness's capture: a skip must be seen.
        let _ = writeln!(std::io::stderr(), "kernel matrix skipped: {why}");
        return;
    }
    let kernels = kernel::kernels().expect("kernel list");
    assert!(!kernels.is_empty(), "TPROBE_KERNELS lists no kernel");
    let checks = checks();
    let initrd = kernel::write_initramfs(&checks).expect("initramfs");
    let mut failures = Vec::new();
    let mut table = vec![
        "| kernel | hooks attached | checks passed | time |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    for k in &kernels {
        let run = match kernel::boot(k, &initrd, BOOT_TIMEOUT) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: {e}", k.package));
                table.push(format!(
                    "| {} | boot failed | 0/{} | |",
                    k.package,
                    checks.len()
                ));
                continue;
            }
        };
        let mut passed = 0;
        let before = failures.len();
        if let Err(e) = verify_run(k, &run) {
            failures.push(format!("{}: {e}", k.package));
        }
        for c in &checks {
            match (c.verify)(&run) {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{} [{}] {}: {e}", k.package, c.category, c.name)),
            }
        }
        if failures.len() > before {
            eprintln!("--- console of {} ---\n{}", k.package, run.console);
        }
        let hooks = hooks(&run);
        let attached: Vec<&str> = hooks
            .iter()
            .filter(|h| h["attached"] == true)
            .filter_map(|h| h["hook"].as_str())
            .collect();
        table.push(format!(
            "| {} ({}) | {}/{} | {passed}/{} | {:.0} s |",
            k.series,
            run.release,
            attached.len(),
            hooks.len(),
            checks.len(),
            run.elapsed.as_secs_f64()
        ));
    }
    let _ = std::fs::remove_file(&initrd);
    let _ = writeln!(std::io::stderr(), "kernel matrix:\n{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "kernel matrix failures:\n{}",
        failures.join("\n")
    );
}
