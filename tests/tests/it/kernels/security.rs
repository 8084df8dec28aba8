//! Security checks of the kernel matrix: the expectations of `it/security.rs`,
//! `it/security_sys.rs` and `it/dns.rs` for busybox tools and the guest's helper
//! (`tests/guest/kt_helper.rs`), including what this machine cannot do: a module load, refused
//! because the file is no module, with its path.
use serde_json::{json, Value};
use tprobe_tests::kernel::{expect_eq, Check, GuestRun};

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "module_load_refused",
            category: "kernel",
            guest: "echo notamodule > /tmp/kt-notmod.ko; /bin/kt-helper finit /tmp/kt-notmod.ko; /bin/kt-helper delete kt_nomod; insmod /tmp/kt-notmod.ko 2>/dev/null; true",
            verify: module_load_refused,
        },
        Check {
            name: "privilege_changes",
            category: "process",
            guest: "/bin/kt-helper creds; /bin/kt-helper capset",
            verify: privilege_changes,
        },
        Check {
            name: "tampering",
            category: "process",
            guest: "/bin/kt-helper tamper; /bin/sleep 31 & KT_T=$!; sleep 0.3; kill -TERM $KT_T; wait $KT_T; true",
            verify: tampering,
        },
        Check {
            name: "rename_memfd_bpf_socket",
            category: "process",
            guest: "/bin/kt-helper rename kt-renamed; sh -c 'echo kt-comm > /proc/self/comm'; /bin/kt-helper memfd kt-mfd; /bin/kt-helper bpf; /bin/kt-helper socket",
            verify: rename_memfd_bpf_socket,
        },
        Check {
            name: "mounts_namespaces_utime",
            category: "file",
            guest: "mkdir -p /tmp/kt-mnt; mount -t tmpfs -o nosuid kt-tmpfs /tmp/kt-mnt; umount /tmp/kt-mnt; unshare -n true; unshare -n sleep 5 & KT_U=$!; sleep 0.5; nsenter -t $KT_U -n true; kill $KT_U; wait $KT_U 2>/dev/null; touch -d '2001-01-01 00:00:00' /tmp/kt-touch; true",
            verify: mounts_namespaces_utime,
        },
        Check {
            name: "reverse_shell_dup",
            category: "process",
            guest: "nc -l -p 7790 >/dev/null & KT_S=$!; sleep 0.5; nc 127.0.0.1 7790 -e /bin/true; sleep 0.2; kill $KT_S 2>/dev/null; wait $KT_S 2>/dev/null; true",
            verify: reverse_shell_dup,
        },
        Check {
            name: "dns_answers_and_domain",
            category: "net",
            guest: "echo 'nameserver 127.0.0.1' > /etc/resolv.conf; /bin/kt-helper dns-server 4 & KT_D=$!; sleep 0.5; nslookup kt-dns.test 127.0.0.1 >/dev/null 2>&1; /bin/kt-helper connect kt-web.test 7792; wait $KT_D; true",
            verify: dns_answers_and_domain,
        },
    ]
}

fn helper<'a>(run: &'a GuestRun, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    run.of_kind(kind)
        .filter(|v| v["process"]["exe"] == "/bin/kt-helper")
}

fn one<'a>(mut it: impl Iterator<Item = &'a Value>, what: &str) -> Result<&'a Value, String> {
    it.next().ok_or_else(|| format!("no {what}"))
}

fn module_load_refused(run: &GuestRun) -> Result<(), String> {
    let f = one(
        helper(run, "kernel.module_load").filter(|v| v["module"]["syscall"] == "finit_module"),
        "finit_module",
    )?;
    expect_eq(
        "module.path",
        &f["module"]["path"],
        &"/tmp/kt-notmod.ko".into(),
    )?;
    expect_eq("module.name", &f["module"]["name"], &"kt-notmod".into())?;
    expect_eq("result.error", &f["result"]["error"], &"ENOEXEC".into())?;
    // busybox insmod reads the file and calls init_module.
    let i = one(
        run.of_kind("kernel.module_load")
            .filter(|v| v["module"]["syscall"] == "init_module"),
        "init_module",
    )?;
    expect_eq("init_module comm", &i["process"]["comm"], &"insmod".into())?;
    expect_eq(
        "init_module error",
        &i["result"]["error"],
        &"ENOEXEC".into(),
    )?;
    let d = one(helper(run, "kernel.module_unload"), "delete_module")?;
    expect_eq(
        "module_unload",
        &d["module"],
        &json!({"syscall": "delete_module", "name": "kt_nomod", "flags": ["O_NONBLOCK"]}),
    )?;
    expect_eq("unload error", &d["result"]["error"], &"ENOENT".into())
}

fn privilege_changes(run: &GuestRun) -> Result<(), String> {
    let g = one(helper(run, "process.setgid"), "setregid")?;
    expect_eq(
        "setregid",
        &g["cred"],
        &json!({"syscall": "setregid", "egid": 2000}),
    )?;
    let u: Vec<&Value> = helper(run, "process.setuid").collect();
    let creds: Vec<Value> = u.iter().map(|v| v["cred"].clone()).collect();
    expect_eq(
        "setuid creds",
        &creds.into(),
        &json!([{"syscall": "setresuid", "euid": 1000}, {"syscall": "setuid", "uid": 4321}]),
    )?;
    expect_eq("setuid error", &u[1]["result"]["error"], &"EPERM".into())?;
    let c = one(helper(run, "process.capset"), "capset")?;
    expect_eq(
        "capset effective",
        &c["caps"]["effective"],
        &json!(["CAP_KILL", "CAP_NET_RAW"]),
    )
}

fn tampering(run: &GuestRun) -> Result<(), String> {
    let reqs: Vec<Value> = helper(run, "process.ptrace")
        .map(|v| v["ptrace"]["request"].clone())
        .collect();
    expect_eq(
        "ptrace requests",
        &reqs.into(),
        &json!(["PTRACE_ATTACH", "PTRACE_POKEDATA"]),
    )?;
    let attach = one(helper(run, "process.ptrace"), "ptrace")?;
    let target = &attach["ptrace"]["target"];
    if target["entity_id"].as_str().map(str::len) != Some(16) {
        return Err(format!("ptrace target {target}"));
    }
    let w = one(helper(run, "process.vm_write"), "process_vm_writev")?;
    expect_eq("vm_write bytes", &w["bytes"], &8.into())?;
    expect_eq("vm_write target", &w["target"]["pid"], &target["pid"])?;
    let k = one(helper(run, "process.signal"), "kill")?;
    expect_eq("signal name", &k["signal"]["name"], &"SIGKILL".into())?;
    expect_eq(
        "signal target",
        &k["signal"]["target"]["entity_id"],
        &target["entity_id"],
    )?;
    // busybox kill from the guest's shell: SIGTERM to the sleep, with its exe.
    let sleep = run
        .of_kind("process.exec")
        .find(|v| v["process"]["args"] == json!(["/bin/sleep", "31"]))
        .ok_or("no exec of sleep 31")?;
    let t = run
        .of_kind("process.signal")
        .find(|v| {
            v["signal"]["name"] == "SIGTERM"
                && v["signal"]["target"]["pid"] == sleep["process"]["pid"]
        })
        .ok_or("no SIGTERM to the sleep")?;
    expect_eq(
        "SIGTERM target",
        &t["signal"]["target"]["entity_id"],
        &sleep["process"]["entity_id"],
    )
}

fn rename_memfd_bpf_socket(run: &GuestRun) -> Result<(), String> {
    let r = one(helper(run, "process.rename"), "prctl rename")?;
    expect_eq(
        "rename",
        &r["rename"],
        &json!({"old_comm": "kt-helper", "new_comm": "kt-renamed"}),
    )?;
    run.of_kind("process.rename")
        .find(|v| v["rename"]["new_comm"] == "kt-comm\n")
        .ok_or("no /proc/self/comm rename")?;
    let m = one(helper(run, "process.memfd"), "memfd")?;
    expect_eq(
        "memfd",
        &m["memfd"],
        &json!({"name": "kt-mfd", "flags": ["MFD_CLOEXEC"]}),
    )?;
    let loads: Vec<Value> = helper(run, "bpf.load")
        .map(|v| {
            json!([
                v["bpf"]["prog_name"],
                v["result"]["ok"],
                v["bpf"]["prog_type"]
            ])
        })
        .collect();
    expect_eq(
        "bpf loads",
        &loads.into(),
        &json!([
            ["kt_bpf", true, "BPF_PROG_TYPE_XDP"],
            ["kt_bpf_bad", false, "BPF_PROG_TYPE_XDP"]
        ]),
    )?;
    let fams: Vec<Value> = helper(run, "net.socket")
        .map(|v| json!([v["net"]["family"], v["net"]["protocol"]]))
        .collect();
    expect_eq(
        "sockets",
        &fams.into(),
        &json!([["packet", "ETH_P_ALL"], ["ipv4", "IPPROTO_ICMP"]]),
    )
}

fn mounts_namespaces_utime(run: &GuestRun) -> Result<(), String> {
    let m = run
        .of_kind("file.mount")
        .find(|v| v["mount"]["target"] == "/tmp/kt-mnt")
        .ok_or("no mount of /tmp/kt-mnt")?;
    for (k, want) in [
        ("syscall", "mount"),
        ("source", "kt-tmpfs"),
        ("fstype", "tmpfs"),
    ] {
        expect_eq(k, &m["mount"][k], &want.into())?;
    }
    // busybox may add MS_SILENT.
    if !m["mount"]["flags"]
        .as_array()
        .is_some_and(|f| f.contains(&json!("MS_NOSUID")))
    {
        return Err(format!("mount flags {}", m["mount"]["flags"]));
    }
    run.of_kind("file.umount")
        .find(|v| v["mount"]["target"] == "/tmp/kt-mnt" && v["result"]["ok"] == true)
        .ok_or("no umount of /tmp/kt-mnt")?;
    run.of_kind("process.unshare")
        .find(|v| v["ns"]["flags"] == json!(["CLONE_NEWNET"]) && v["result"]["ok"] == true)
        .ok_or("no unshare of a network namespace")?;
    run.of_kind("process.setns")
        .find(|v| v["ns"]["flags"] == json!(["CLONE_NEWNET"]) && v["result"]["ok"] == true)
        .ok_or("no setns into a network namespace")?;
    let t = run
        .of_kind("file.utime")
        .find(|v| v["file"]["path"] == "/tmp/kt-touch")
        .ok_or("no file.utime of /tmp/kt-touch")?;
    expect_eq(
        "times",
        &t["times"],
        &json!({"atime": "2001-01-01T00:00:00.000000000Z", "mtime": "2001-01-01T00:00:00.000000000Z"}),
    )
}

fn reverse_shell_dup(run: &GuestRun) -> Result<(), String> {
    let mut fds: Vec<i64> = run
        .of_kind("process.dup")
        .filter(|v| v["net"]["dst"]["port"] == 7790)
        .filter_map(|v| v["dup"]["newfd"].as_i64())
        .collect();
    fds.sort();
    fds.dedup();
    if !(fds.contains(&0) && fds.contains(&1)) {
        return Err(format!("nc -e moved the socket onto {fds:?}"));
    }
    Ok(())
}

fn dns_answers_and_domain(run: &GuestRun) -> Result<(), String> {
    let r = run
        .of_kind("net.dns")
        .find(|v| {
            v["dns"]["query"] == "kt-dns.test"
                && v["dns"]["qtype"] == "A"
                && v["dns"].get("answers").is_some()
        })
        .ok_or("no DNS response for kt-dns.test")?;
    expect_eq("nslookup comm", &r["process"]["comm"], &"nslookup".into())?;
    expect_eq(
        "answers",
        &r["dns"]["answers"],
        &json!([{"name": "kt-dns.test", "type": "A", "data": "127.77.0.1", "ttl": 60}]),
    )?;
    let c = one(
        helper(run, "net.connect").filter(|v| v["net"]["dst"]["port"] == 7792),
        "the helper's connect",
    )?;
    expect_eq(
        "connect dst",
        &c["net"]["dst"],
        &json!({"ip": "127.77.0.1", "port": 7792, "domain": "kt-web.test"}),
    )
}
