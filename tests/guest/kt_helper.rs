//! `kt-helper`: the syscalls the kernel matrix's busybox guest cannot make by itself
//! (finit_module, set*id, capset, ptrace, process_vm_writev, memfd, prctl, BPF loads, raw
//! sockets) and a tiny DNS server. Built by `cargo xtask` with `rustc` alone for musl (std
//! only, statically linked), so it runs in the bare initramfs next to the static tprobe.
//! Each command makes its calls and prints what they returned; the checks read the probe.
use std::{
    ffi::CString,
    io::Write as _,
    net::{TcpStream, UdpSocket},
    sync::atomic::AtomicU64,
    time::Duration,
};

extern "C" {
    fn syscall(n: i64, ...) -> i64;
}

// x86-64 syscall numbers.
const SYS_WAIT4: i64 = 61;
const SYS_KILL: i64 = 62;
const SYS_PTRACE: i64 = 101;
const SYS_SETREGID: i64 = 114;
const SYS_SETRESUID: i64 = 117;
const SYS_SETUID: i64 = 105;
const SYS_CAPSET: i64 = 126;
const SYS_PRCTL: i64 = 157;
const SYS_DELETE_MODULE: i64 = 176;
const SYS_FORK: i64 = 57;
const SYS_NANOSLEEP: i64 = 35;
const SYS_PROCESS_VM_WRITEV: i64 = 311;
const SYS_FINIT_MODULE: i64 = 313;
const SYS_MEMFD_CREATE: i64 = 319;
const SYS_BPF: i64 = 321;
const SYS_SOCKET: i64 = 41;

/// Words the traced child keeps at the same address as the parent (fork copies the layout).
static WORD: [AtomicU64; 2] = [AtomicU64::new(0x6b74), AtomicU64::new(0x6b74)];

fn call(what: &str, r: i64) -> i64 {
    let e = if r < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    };
    println!("kt-helper {what} = {r} (errno {e})");
    r
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

fn sleep_forever() -> ! {
    let ts = [1i64, 0];
    loop {
        unsafe { syscall(SYS_NANOSLEEP, ts.as_ptr(), 0usize) };
    }
}

/// Fork, ptrace-attach the child, poke a word, write its memory, detach, SIGKILL it.
fn tamper() {
    let child = unsafe { syscall(SYS_FORK) };
    if child == 0 {
        sleep_forever();
    }
    let word = &WORD as *const [AtomicU64; 2] as u64;
    let mut status = 0i32;
    call("ptrace attach", unsafe { syscall(SYS_PTRACE, 16i64, child, 0i64, 0i64) });
    unsafe { syscall(SYS_WAIT4, child, &mut status as *mut i32, 0i64, 0i64) };
    call("ptrace pokedata", unsafe {
        syscall(SYS_PTRACE, 5i64, child, word, 0x1234i64)
    });
    call("ptrace detach", unsafe { syscall(SYS_PTRACE, 17i64, child, 0i64, 0i64) });
    let data = *b"kt-write";
    let local = [data.as_ptr() as u64, 8];
    let remote = [word + 8, 8];
    call("process_vm_writev", unsafe {
        syscall(SYS_PROCESS_VM_WRITEV, child, local.as_ptr(), 1i64, remote.as_ptr(), 1i64, 0i64)
    });
    call("kill", unsafe { syscall(SYS_KILL, child, 9i64) });
    unsafe { syscall(SYS_WAIT4, child, &mut status as *mut i32, 0i64, 0i64) };
}

/// `r0 = XDP_PASS; exit` as `name`, `insns` instructions long (0 is refused).
fn prog_load(name: &str, insns: u32) {
    let code: [u8; 16] = [0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = cstr("GPL");
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&6u32.to_ne_bytes());
    attr[4..8].copy_from_slice(&insns.to_ne_bytes());
    attr[8..16].copy_from_slice(&(code.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[48..48 + name.len()].copy_from_slice(name.as_bytes());
    call("bpf prog_load", unsafe { syscall(SYS_BPF, 5i64, attr.as_ptr(), 128i64) });
}

/// A DNS server on 127.0.0.1:53 that answers every A query with 127.77.0.1 (and AAAA with
/// nothing), for `secs` seconds.
fn dns_server(secs: u64) {
    let s = UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53");
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 512];
    while std::time::Instant::now() < end {
        let Ok((n, peer)) = s.recv_from(&mut buf) else {
            continue;
        };
        if n < 12 {
            continue;
        }
        // The question ends after its name (labels up to a 0) and 4 bytes of type and class.
        let mut at = 12;
        while at < n && buf[at] != 0 {
            at += buf[at] as usize + 1;
        }
        let qend = at + 5;
        if qend > n {
            continue;
        }
        let qtype = u16::from_be_bytes([buf[at + 1], buf[at + 2]]);
        let mut r = buf[..qend].to_vec();
        r[2] = 0x81; // response, recursion desired
        r[3] = 0x80; // recursion available, NOERROR
        r[6..12].copy_from_slice(&[0, (qtype == 1) as u8, 0, 0, 0, 0]);
        if qtype == 1 {
            r.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 77, 0, 1]);
        }
        let _ = s.send_to(&r, peer);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "finit" => {
            let f = std::fs::File::open(arg(2)).expect("open the module file");
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f) as i64;
            let params = cstr("");
            call("finit_module", unsafe {
                syscall(SYS_FINIT_MODULE, fd, params.as_ptr(), 0i64)
            });
        }
        "delete" => {
            let name = cstr(arg(2));
            call("delete_module", unsafe {
                syscall(SYS_DELETE_MODULE, name.as_ptr(), 0o4000i64)
            });
        }
        "creds" => {
            call("setregid", unsafe { syscall(SYS_SETREGID, -1i64, 2000i64) });
            call("setresuid", unsafe { syscall(SYS_SETRESUID, -1i64, 1000i64, -1i64) });
            call("setuid", unsafe { syscall(SYS_SETUID, 4321i64) });
        }
        "capset" => {
            let hdr = [0x2008_0522u32, 0];
            // effective and permitted: CAP_KILL and CAP_NET_RAW; nothing above 31.
            let data = [(1u32 << 5) | (1 << 13), (1 << 5) | (1 << 13), 0, 0, 0, 0];
            call("capset", unsafe { syscall(SYS_CAPSET, hdr.as_ptr(), data.as_ptr()) });
        }
        "tamper" => tamper(),
        "rename" => {
            let name = cstr(arg(2));
            call("prctl", unsafe { syscall(SYS_PRCTL, 15i64, name.as_ptr(), 0i64, 0i64, 0i64) });
        }
        "memfd" => {
            let name = cstr(arg(2));
            call("memfd_create", unsafe { syscall(SYS_MEMFD_CREATE, name.as_ptr(), 1i64) });
        }
        "bpf" => {
            prog_load("kt_bpf", 2);
            prog_load("kt_bpf_bad", 0);
        }
        "socket" => {
            call("socket packet", unsafe { syscall(SYS_SOCKET, 17i64, 3i64, 0x0300i64) });
            call("socket raw", unsafe { syscall(SYS_SOCKET, 2i64, 3i64, 1i64) });
        }
        "dns-server" => dns_server(arg(2).parse().unwrap_or(5)),
        "connect" => {
            let r = TcpStream::connect((arg(2), arg(3).parse::<u16>().unwrap_or(80)));
            println!("kt-helper connect = {r:?}");
        }
        other => {
            eprintln!("kt-helper: unknown command {other:?}");
            std::process::exit(2);
        }
    }
    let _ = std::io::stdout().flush();
}
