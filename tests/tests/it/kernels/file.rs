//! File checks of the kernel matrix: the same expectations as `it/file.rs` (one event per
//! action with its absolute path, mode, target and result) for commands the guest runs.
use serde_json::Value;
use tprobe_tests::kernel::{expect_eq, Check, GuestRun};

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "file_actions",
            category: "file",
            guest: "mkdir /tmp/kt-d; cd /tmp/kt-d; echo x > f; mv f g; chmod 640 g; ln -s g s; rm s g; cd /; rmdir /tmp/kt-d",
            verify: file_actions,
        },
        Check {
            name: "file_failed_create",
            category: "file",
            guest: "echo y >> /tmp/kt-nodir/x 2>/dev/null; true",
            verify: file_failed_create,
        },
    ]
}

/// The one event of `kind` on `path`.
fn one<'a>(run: &'a GuestRun, kind: &'a str, path: &str) -> Result<&'a Value, String> {
    let found: Vec<&Value> = run
        .of_kind(kind)
        .filter(|v| v["file"]["path"] == path)
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        other => Err(format!("{} {kind} for {path}", other.len())),
    }
}

fn ok(ev: &Value) -> Result<(), String> {
    expect_eq("result.ok", &ev["result"]["ok"], &true.into())
}

fn file_actions(run: &GuestRun) -> Result<(), String> {
    let d = "/tmp/kt-d";
    let mkdir = one(run, "file.mkdir", d)?;
    ok(mkdir)?;
    // `echo x > f` with cwd /tmp/kt-d: the relative path comes out absolute.
    let create = one(run, "file.create", "/tmp/kt-d/f")?;
    ok(create)?;
    let flags = create["file"]["flags"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !flags.iter().any(|f| f == "O_CREAT") {
        return Err(format!("create flags {flags:?}"));
    }
    let rename = one(run, "file.rename", "/tmp/kt-d/f")?;
    expect_eq(
        "rename target",
        &rename["file"]["target_path"],
        &"/tmp/kt-d/g".into(),
    )?;
    let chmod = one(run, "file.chmod", "/tmp/kt-d/g")?;
    expect_eq("chmod mode", &chmod["file"]["mode"], &"0640".into())?;
    let symlink = one(run, "file.symlink", "/tmp/kt-d/s")?;
    expect_eq(
        "symlink target",
        &symlink["file"]["target_path"],
        &"g".into(),
    )?;
    ok(one(run, "file.unlink", "/tmp/kt-d/s")?)?;
    ok(one(run, "file.unlink", "/tmp/kt-d/g")?)?;
    ok(one(run, "file.rmdir", d)?)?;
    Ok(())
}

fn file_failed_create(run: &GuestRun) -> Result<(), String> {
    let ev = one(run, "file.create", "/tmp/kt-nodir/x")?;
    expect_eq("result.ok", &ev["result"]["ok"], &false.into())?;
    expect_eq("result.error", &ev["result"]["error"], &"ENOENT".into())
}
