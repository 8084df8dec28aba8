//! Process checks of the kernel matrix: the same expectations as the native tests in
//! `it/process.rs` (exact argv, exe, parent, user, exit code and signal, fork identities,
//! script interpreter, argv limits), for commands the guest's init (pid 1) runs.
use serde_json::{json, Value};
use tprobe_tests::kernel::{expect_eq, Check, GuestRun};

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "exec_exact_argv",
            category: "process",
            // A path with a slash makes busybox ash fork and execve, never run an applet
            // in-process.
            guest: r#"/bin/echo kt-exec-argv "two words" "" "$(printf 'line1\nline2')" "$(printf '\377bad\376')" >/dev/null"#,
            verify: exec_exact_argv,
        },
        Check {
            name: "fork_links_identities",
            category: "process",
            guest: "/bin/true kt-fork",
            verify: fork_links_identities,
        },
        Check {
            name: "exit_code",
            category: "process",
            guest: "/bin/sh -c 'exit 7'",
            verify: exit_code,
        },
        Check {
            name: "exit_signal",
            category: "process",
            guest: "/bin/sleep 30 & KT_P=$!; sleep 0.3; kill -9 $KT_P; wait $KT_P",
            verify: exit_signal,
        },
        Check {
            name: "script_interpreter",
            category: "process",
            guest: "printf '#!/bin/sh\\nexit 3\\n' > /tmp/kt-script.sh; chmod 755 /tmp/kt-script.sh; /tmp/kt-script.sh kt-script-arg",
            verify: script_interpreter,
        },
        Check {
            name: "kernel_context",
            category: "process",
            // cwd changed by the parent shell, a symlinked program, a new net namespace.
            guest: "mkdir -p /tmp/kt-cwd; cd /tmp/kt-cwd; /bin/true kt-ctx; unshare -n /bin/true kt-netns; cd /",
            verify: kernel_context,
        },
        Check {
            name: "exec_failed",
            category: "process",
            // ash's execve fails with ENOEXEC, then it runs the file itself.
            guest: "printf 'true\\n' > /tmp/kt-noshebang; chmod 755 /tmp/kt-noshebang; /tmp/kt-noshebang kt-fail",
            verify: exec_failed,
        },
        Check {
            name: "argv_limits",
            category: "process",
            // 100 short arguments (over 64), then 60 of 200 bytes (over 8 KiB).
            guest: "/bin/true kt-many $(seq 1 100); /bin/true kt-long $(i=0; while [ $i -lt 60 ]; do printf '%0200d ' $i; i=$((i+1)); done)",
            verify: argv_limits,
        },
    ]
}

fn exec_exact_argv(run: &GuestRun) -> Result<(), String> {
    let ev = run.exec_with_args(&json!([
        "/bin/echo",
        "kt-exec-argv",
        "two words",
        "",
        "line1\nline2",
        "\u{fffd}bad\u{fffd}"
    ]))?;
    let p = &ev["process"];
    let last = p["args_b64"][5].as_str().unwrap_or("");
    expect_eq("args_b64[5]", &last.into(), &"/2JhZP4=".into())?;
    expect_eq("args_truncated", &p["args_truncated"], &false.into())?;
    // /bin/echo is a busybox applet: /proc/<pid>/exe resolves the link.
    let exe = p["exe"].as_str().unwrap_or("");
    if exe != "/bin/busybox" && exe != "/bin/echo" {
        return Err(format!("exe {exe}"));
    }
    expect_eq("comm", &p["comm"], &"echo".into())?;
    expect_eq("uid", &p["uid"], &0.into())?;
    expect_eq("user", &p["user"], &"root".into())?;
    expect_eq("ppid", &p["ppid"], &1.into())?;
    expect_eq("parent.pid", &ev["parent"]["pid"], &1.into())?;
    expect_eq("tid", &p["tid"], &p["pid"])?;
    expect_eq("host.name", &ev["host"]["name"], &"kt-guest".into())?;
    expect_eq("schema", &ev["schema"], &"tprobe/1".into())?;
    if p["entity_id"].as_str().map(str::len) != Some(16) {
        return Err(format!("entity_id {}", p["entity_id"]));
    }
    if p["cgroup_id"].as_u64().unwrap_or(0) == 0 {
        return Err(format!("cgroup_id {}", p["cgroup_id"]));
    }
    let ts = ev["ts"].as_str().unwrap_or("");
    if !(ts.ends_with('Z') && ts.len() == "2026-01-01T00:00:00.000000000Z".len()) {
        return Err(format!("ts {ts}"));
    }
    let exits: Vec<&Value> = run
        .of_kind("process.exit")
        .filter(|v| v["process"]["pid"] == p["pid"])
        .collect();
    if exits.len() != 1 {
        return Err(format!("{} process.exit for the echo", exits.len()));
    }
    expect_eq(
        "exit",
        &status(exits[0]),
        &json!({"code": 0, "signal": null, "core_dumped": false}),
    )
}

/// `exit` without its CPU time (checked apart: it must be there).
fn status(ev: &Value) -> Value {
    let e = &ev["exit"];
    if !e["cpu"]["user_ms"].is_u64() || !e["cpu"]["system_ms"].is_u64() {
        return json!({"cpu missing": e});
    }
    json!({"code": e["code"], "signal": e["signal"], "core_dumped": e["core_dumped"]})
}

fn fork_links_identities(run: &GuestRun) -> Result<(), String> {
    let exec = run.exec_with_args(&json!(["/bin/true", "kt-fork"]))?;
    let pid = &exec["process"]["pid"];
    let fork = run
        .of_kind("process.fork")
        .find(|v| v["child"]["pid"] == *pid)
        .ok_or("no process.fork for the child")?;
    expect_eq("fork.process.pid", &fork["process"]["pid"], &1.into())?;
    expect_eq("child.thread", &fork["child"]["thread"], &false.into())?;
    expect_eq("child.tid", &fork["child"]["tid"], pid)?;
    expect_eq(
        "child entity_id",
        &fork["child"]["entity_id"],
        &exec["process"]["entity_id"],
    )?;
    expect_eq(
        "parent entity_id",
        &exec["parent"]["entity_id"],
        &fork["process"]["entity_id"],
    )
}

fn exit_code(run: &GuestRun) -> Result<(), String> {
    let exec = run.exec_with_args(&json!(["/bin/sh", "-c", "exit 7"]))?;
    let ev = run.exit_of(&exec["process"]["pid"])?;
    expect_eq(
        "exit",
        &status(ev),
        &json!({"code": 7, "signal": null, "core_dumped": false}),
    )?;
    expect_eq(
        "exit args",
        &ev["process"]["args"],
        &json!(["/bin/sh", "-c", "exit 7"]),
    )
}

fn exit_signal(run: &GuestRun) -> Result<(), String> {
    let exec = run.exec_with_args(&json!(["/bin/sleep", "30"]))?;
    let ev = run.exit_of(&exec["process"]["pid"])?;
    expect_eq(
        "exit",
        &status(ev),
        &json!({"code": null, "signal": 9, "core_dumped": false}),
    )?;
    expect_eq(
        "exit args",
        &ev["process"]["args"],
        &json!(["/bin/sleep", "30"]),
    )
}

fn script_interpreter(run: &GuestRun) -> Result<(), String> {
    let exec = run.exec_with_args(&json!(["/bin/sh", "/tmp/kt-script.sh", "kt-script-arg"]))?;
    expect_eq(
        "exec.interpreter",
        &exec["exec"]["interpreter"],
        &"/bin/sh".into(),
    )?;
    expect_eq(
        "exec.filename",
        &exec["exec"]["filename"],
        &"/tmp/kt-script.sh".into(),
    )?;
    let ev = run.exit_of(&exec["process"]["pid"])?;
    expect_eq("exit.code", &ev["exit"]["code"], &3.into())
}

fn kernel_context(run: &GuestRun) -> Result<(), String> {
    let ev = run.exec_with_args(&json!(["/bin/true", "kt-ctx"]))?;
    let p = &ev["process"];
    expect_eq("cwd", &p["cwd"], &"/tmp/kt-cwd".into())?;
    // /bin/true is a symlink to busybox: the kernel's path is the file that runs.
    expect_eq("exe", &p["exe"], &"/bin/busybox".into())?;
    expect_eq(
        "exec.filename",
        &ev["exec"]["filename"],
        &"/bin/true".into(),
    )?;
    expect_eq("euid", &p["euid"], &0.into())?;
    expect_eq("egid", &p["egid"], &0.into())?;
    let caps = p["caps"]["effective"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !caps.iter().any(|c| c == "CAP_SYS_ADMIN") {
        return Err(format!("caps.effective {caps:?}"));
    }
    for ns in ["pid", "mnt", "net", "user", "uts", "ipc", "cgroup"] {
        if p["ns"][ns].as_u64().unwrap_or(0) == 0 {
            return Err(format!("ns.{ns} {}", p["ns"]));
        }
    }
    // The guest's init shell, started before the probe: its command line from /proc.
    if ev["parent"]["args"].as_array().is_none_or(|a| a.is_empty()) {
        return Err(format!("parent.args {}", ev["parent"]));
    }
    // The executable's hash: on the exec, or on a later event once the worker had it.
    let pid = &p["pid"];
    let hashed = run.lines.iter().any(|v| {
        v["process"]["pid"] == *pid
            && v["process"]["hash"]["sha256"]
                .as_str()
                .is_some_and(|h| h.len() == 64)
    });
    if !hashed {
        return Err(format!("no sha256 on any event of pid {pid}"));
    }
    let exit = run.exit_of(pid)?;
    if !exit["exit"]["cpu"]["user_ms"].is_u64() {
        return Err(format!("exit.cpu {}", exit["exit"]));
    }
    let netns = run.exec_with_args(&json!(["/bin/true", "kt-netns"]))?;
    if netns["process"]["ns"]["net"] == p["ns"]["net"] {
        return Err("unshare -n: same net namespace".into());
    }
    expect_eq(
        "unshare -n: mnt",
        &netns["process"]["ns"]["mnt"],
        &p["ns"]["mnt"],
    )
}

fn exec_failed(run: &GuestRun) -> Result<(), String> {
    let ev = run
        .of_kind("process.exec_failed")
        .find(|v| v["exec"]["filename"] == "/tmp/kt-noshebang")
        .ok_or("no process.exec_failed of /tmp/kt-noshebang")?;
    expect_eq("result.error", &ev["result"]["error"], &"ENOEXEC".into())?;
    expect_eq(
        "exec.args",
        &ev["exec"]["args"],
        &json!(["/tmp/kt-noshebang", "kt-fail"]),
    )
}

fn argv_limits(run: &GuestRun) -> Result<(), String> {
    let find = |marker: &str| {
        run.of_kind("process.exec")
            .find(|v| v["process"]["args"][1] == marker)
            .ok_or_else(|| format!("no process.exec of {marker}"))
    };
    let many = &find("kt-many")?["process"];
    expect_eq(
        "many: args_truncated",
        &many["args_truncated"],
        &true.into(),
    )?;
    let args = many["args"].as_array().cloned().unwrap_or_default();
    if args.len() != 64 {
        return Err(format!("many: {} args, want 64", args.len()));
    }
    expect_eq("many: args[2]", &args[2], &"1".into())?;
    expect_eq("many: args[63]", &args[63], &"62".into())?;

    let long = &find("kt-long")?["process"];
    expect_eq(
        "long: args_truncated",
        &long["args_truncated"],
        &true.into(),
    )?;
    let args = long["args"].as_array().cloned().unwrap_or_default();
    expect_eq("long: args[2]", &args[2], &format!("{:0200}", 0).into())?;
    let bytes: usize = args
        .iter()
        .map(|a| a.as_str().unwrap_or("").len() + 1)
        .sum::<usize>()
        - 1;
    if bytes > 8192 {
        return Err(format!("long: {bytes} bytes of argv kept"));
    }
    // Every complete argument is exact; only the last may be cut.
    for (i, a) in args
        .iter()
        .enumerate()
        .skip(2)
        .take(args.len().saturating_sub(3))
    {
        expect_eq("long: arg", a, &format!("{:0200}", i - 2).into())?;
    }
    Ok(())
}
