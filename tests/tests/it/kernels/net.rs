//! Network checks of the kernel matrix: the same expectations as `it/net.rs` (listen, connect
//! and accept with their 4-tuple, a refused connect) with busybox `nc` on the guest's loopback.
use serde_json::{json, Value};
use tprobe_tests::kernel::{expect_eq, Check, GuestRun};

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "tcp_connect_accept",
            category: "net",
            guest: "nc -l -p 7777 >/dev/null & KT_S=$!; sleep 0.5; echo hi | nc 127.0.0.1 7777; sleep 0.3; kill $KT_S 2>/dev/null; wait $KT_S 2>/dev/null; true",
            verify: tcp_connect_accept,
        },
        Check {
            name: "tcp_refused",
            category: "net",
            guest: "echo hi | nc 127.0.0.1 7778 2>/dev/null; true",
            verify: tcp_refused,
        },
    ]
}

fn port(v: &Value, end: &str) -> Value {
    v["net"][end]["port"].clone()
}

fn tcp_connect_accept(run: &GuestRun) -> Result<(), String> {
    let listen = run
        .of_kind("net.listen")
        .find(|v| port(v, "src") == 7777)
        .ok_or("no net.listen on 7777")?;
    expect_eq("listen comm", &listen["process"]["comm"], &"nc".into())?;
    let connect = run
        .of_kind("net.connect")
        .find(|v| port(v, "dst") == 7777)
        .ok_or("no net.connect to 7777")?;
    expect_eq("connect result", &connect["result"]["ok"], &true.into())?;
    expect_eq(
        "connect dst",
        &connect["net"]["dst"],
        &json!({"ip": "127.0.0.1", "port": 7777}),
    )?;
    expect_eq(
        "connect transport",
        &connect["net"]["transport"],
        &"tcp".into(),
    )?;
    let client_port = port(connect, "src");
    let accept = run
        .of_kind("net.accept")
        .find(|v| port(v, "src") == client_port)
        .ok_or_else(|| format!("no net.accept of the client port {client_port}"))?;
    expect_eq(
        "accept pid",
        &accept["process"]["pid"],
        &listen["process"]["pid"],
    )?;
    if accept["process"]["pid"] == connect["process"]["pid"] {
        return Err("client and server are the same process".into());
    }
    Ok(())
}

fn tcp_refused(run: &GuestRun) -> Result<(), String> {
    let ev = run
        .of_kind("net.connect")
        .find(|v| port(v, "dst") == 7778)
        .ok_or("no net.connect to 7778")?;
    expect_eq(
        "result.error",
        &ev["result"]["error"],
        &"ECONNREFUSED".into(),
    )
}
