//! Respond checks of the kernel matrix: an exec on the deny list (`--deny-exec`, given by the
//! guest's init) is killed in the kernel before it runs, and the isolate programs pass this
//! kernel's verifier (loaded at start because the control socket is on).
use tprobe_tests::kernel::{expect_eq, Check, GuestRun};

pub fn checks() -> Vec<Check> {
    vec![Check {
        name: "deny_exec_in_kernel",
        category: "respond",
        guest: "/tmp/ktd/touch /tmp/kt-deny-marker",
        verify: deny_exec_in_kernel,
    }]
}

fn deny_exec_in_kernel(run: &GuestRun) -> Result<(), String> {
    let start = run.start().ok_or("no probe.start")?;
    let r = &start["probe"]["respond"];
    expect_eq(
        "respond.deny_exec_kernel_entries",
        &r["deny_exec_kernel_entries"],
        &1.into(),
    )?;
    let kill = run
        .of_kind("response.kill")
        .find(|v| v["response"]["target"]["exe"] == "/tmp/ktd/touch")
        .ok_or("no response.kill for /tmp/ktd/touch")?;
    expect_eq(
        "response.in_kernel",
        &kill["response"]["in_kernel"],
        &true.into(),
    )?;
    expect_eq("response.ok", &kill["response"]["ok"], &true.into())?;
    let pid = &kill["process"]["pid"];
    let exit = run.exit_of(pid)?;
    expect_eq("exit.signal", &exit["exit"]["signal"], &9.into())?;
    // The marker never appears: the image never ran its first instruction.
    if let Some(f) = run
        .lines
        .iter()
        .find(|v| v["file"]["path"] == "/tmp/kt-deny-marker")
    {
        return Err(format!("the denied binary ran: {f}"));
    }
    Ok(())
}
