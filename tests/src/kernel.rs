//! Kernel matrix machinery: boot a Debian kernel under `qemu-system-x86_64` (software
//! emulation) with a busybox initramfs that runs the static `tprobe`, causes the activity of
//! each [`Check`], and prints the JSON lines to the serial console between markers. The host
//! parses the console and runs each check's assertions on the lines.
//!
//! `cargo xtask test` / `cargo xtask kernel-test` set `TPROBE_KERNELS` (a `series\tpackage\tpath`
//! list of kernel images) and `TPROBE_STATIC_BIN` (a static tprobe).
use std::{
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// One kernel of the matrix.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// e.g. `6.1`
    pub series: String,
    /// Debian package the image came from.
    pub package: String,
    pub image: PathBuf,
}

/// Something to do in the guest and what the probe must report about it.
pub struct Check {
    pub name: &'static str,
    /// Event category the check is about (`process`, `file`, `net`...).
    pub category: &'static str,
    /// Shell (busybox ash) run by the guest's init (pid 1) while the probe runs. It must not
    /// exit the shell; it may use `/tmp` freely.
    pub guest: &'static str,
    /// Assertions on the guest run; `Err` says what was wrong.
    pub verify: fn(&GuestRun) -> Result<(), String>,
}

/// What one boot left on the console.
#[derive(Clone, Debug, Default)]
pub struct GuestRun {
    /// `uname -r` in the guest.
    pub release: String,
    /// tprobe's JSON lines, in order.
    pub lines: Vec<Value>,
    /// Lines between the JSON markers that were not JSON.
    pub garbage: Vec<String>,
    /// tprobe's stderr.
    pub stderr: String,
    /// tprobe's exit status as the guest shell saw it.
    pub rc: Option<i32>,
    /// The whole console, for failure messages.
    pub console: String,
    pub elapsed: Duration,
}

impl GuestRun {
    /// Events of `kind`.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines.iter().filter(move |v| v["kind"] == kind)
    }

    /// The one `process.exec` whose argv is exactly `args`.
    pub fn exec_with_args(&self, args: &Value) -> Result<&Value, String> {
        let found: Vec<&Value> = self
            .of_kind("process.exec")
            .filter(|v| v["process"]["args"] == *args)
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("no process.exec with args {args}")),
            many => Err(format!("{} process.exec with args {args}", many.len())),
        }
    }

    /// The `process.exit` of `pid`.
    pub fn exit_of(&self, pid: &Value) -> Result<&Value, String> {
        self.of_kind("process.exit")
            .find(|v| v["process"]["pid"] == *pid)
            .ok_or_else(|| format!("no process.exit for pid {pid}"))
    }

    /// The `probe.start` line.
    pub fn start(&self) -> Option<&Value> {
        self.of_kind("probe.start").next()
    }
}

/// `Err(msg)` unless `a == b`.
pub fn expect_eq(what: &str, a: &Value, b: &Value) -> Result<(), String> {
    if a == b {
        Ok(())
    } else {
        Err(format!("{what}: got {a}, want {b}"))
    }
}

/// Why the matrix cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    if !cfg!(target_arch = "x86_64") {
        return Some("qemu x86-64 guests need an x86-64 host".into());
    }
    if which("qemu-system-x86_64").is_none() {
        return Some(
            "qemu-system-x86_64 is not installed (`cargo xtask setup` installs it)".into(),
        );
    }
    for var in ["TPROBE_KERNELS", "TPROBE_STATIC_BIN", "TPROBE_GUEST_HELPER"] {
        if std::env::var_os(var).is_none() {
            return Some(format!(
                "{var} is not set: run through `cargo xtask test` or `cargo xtask kernel-test`"
            ));
        }
    }
    None
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The kernels listed in `TPROBE_KERNELS`.
pub fn kernels() -> Result<Vec<Kernel>, String> {
    let path = std::env::var_os("TPROBE_KERNELS").ok_or("TPROBE_KERNELS not set")?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}", Path::new(&path).display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Kernel {
                series: f.next()?.to_owned(),
                package: f.next()?.to_owned(),
                image: f.next()?.into(),
            })
        })
        .collect())
}

/// Marker lines on the console.
const JSON_BEGIN: &str = "KT-JSON-BEGIN";
const JSON_END: &str = "KT-JSON-END";
const ERR_BEGIN: &str = "KT-STDERR-BEGIN";
const ERR_END: &str = "KT-STDERR-END";

/// The guest's `/init`: mount what tprobe needs, start it, run the checks, stop it (SIGTERM,
/// so it drains and prints `probe.stop`), print its output, power off.
pub fn init_script(checks: &[Check]) -> String {
    let mut s = String::from(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
echo 'root:x:0:' > /etc/group
hostname kt-guest
ip link set lo up
echo "KT-KERNEL $(uname -r)"
# The respond stage: a denied copy of busybox (it runs as `touch`), and the control socket
# (which loads the TC isolate programs through this kernel's verifier). An emulated guest
# beside the other tests can take longer than the default 200 ms to hash an executable, and a
# short-lived process then has no event that carries it: execs wait up to 10 s here.
mkdir -p /tmp/ktd; cp /bin/busybox /tmp/ktd/touch
/bin/tprobe run --deny-exec /tmp/ktd/touch --respond-socket /tmp/kt-respond.sock --hash-wait 10s >/tmp/tprobe.json 2>/tmp/tprobe.err &
TP=$!
n=0
while ! grep -q '"probe.start"' /tmp/tprobe.json 2>/dev/null; do
  kill -0 $TP 2>/dev/null || break
  n=$((n+1)); [ $n -gt 1200 ] && break
  sleep 0.1
done
echo KT-STARTED
"#,
    );
    for c in checks {
        s.push_str(&format!("echo 'KT-CHECK {}'\n{}\n", c.name, c.guest));
    }
    s.push_str(&format!(
        r#"sleep 1
kill -TERM $TP
wait $TP
echo "KT-RC $?"
echo {JSON_BEGIN}
cat /tmp/tprobe.json
echo {JSON_END}
echo {ERR_BEGIN}
cat /tmp/tprobe.err
echo {ERR_END}
echo KT-DONE
reboot -f
"#
    ));
    s
}

/// Parses the serial console of one boot.
pub fn parse_console(text: &str) -> GuestRun {
    let mut run = GuestRun {
        console: text.to_owned(),
        ..GuestRun::default()
    };
    #[derive(PartialEq)]
    enum In {
        None,
        Json,
        Err,
    }
    let mut state = In::None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        match line {
            JSON_BEGIN => state = In::Json,
            ERR_BEGIN => state = In::Err,
            JSON_END | ERR_END => state = In::None,
            _ if state == In::Json => match serde_json::from_str::<Value>(line) {
                Ok(v) => run.lines.push(v),
                Err(_) => run.garbage.push(line.to_owned()),
            },
            _ if state == In::Err => {
                run.stderr.push_str(line);
                run.stderr.push('\n');
            }
            _ => {
                if let Some(r) = line.strip_prefix("KT-KERNEL ") {
                    run.release = r.trim().to_owned();
                } else if let Some(rc) = line.strip_prefix("KT-RC ") {
                    run.rc = rc.trim().parse().ok();
                }
            }
        }
    }
    run
}

/// A newc ("070701") cpio archive, the format the kernel unpacks as initramfs.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,                                        // uid
            0,                                        // gid
            if mode & 0o040000 != 0 { 2 } else { 1 }, // nlink
            0,                                        // mtime
            data.len() as u32,
            0,
            0, // dev major, minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100000 | mode, (0, 0), data);
    }

    pub fn char_dev(&mut self, name: &str, mode: u32, major: u32, minor: u32) {
        self.entry(name, 0o020000 | mode, (major, minor), &[]);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.buf
    }
}

/// The initramfs: busybox, tprobe, the syscall helper (`tests/guest/kt_helper.rs`) and `/init`.
pub fn initramfs(
    busybox: &Path,
    tprobe: &Path,
    helper: &Path,
    init: &str,
) -> std::io::Result<Vec<u8>> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "etc", "proc", "root", "sys", "tmp"] {
        c.dir(d);
    }
    // The kernel opens /dev/console for init before anything is mounted.
    c.char_dev("dev/console", 0o600, 5, 1);
    c.file("init", 0o755, init.as_bytes());
    c.file("bin/busybox", 0o755, &std::fs::read(busybox)?);
    c.file("bin/tprobe", 0o755, &std::fs::read(tprobe)?);
    c.file("bin/kt-helper", 0o755, &std::fs::read(helper)?);
    Ok(c.finish())
}

/// Boots `kernel` with `initrd` and returns the parsed console. Software emulation only: this
/// must work where KVM does not.
pub fn boot(kernel: &Kernel, initrd: &Path, timeout: Duration) -> Result<GuestRun, String> {
    let t0 = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "q35,accel=tcg",
            "-cpu",
            "max",
            "-m",
            "1024",
            "-smp",
            "1",
        ])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting qemu-system-x86_64: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let console = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
            return Err(format!(
                "{} did not finish within {timeout:?}; console:\n{console}",
                kernel.package
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let console = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !console.contains("KT-DONE") {
        return Err(format!(
            "{} stopped before the end of /init ({status}); qemu: {err}\nconsole:\n{console}",
            kernel.package
        ));
    }
    let mut run = parse_console(&console);
    run.elapsed = t0.elapsed();
    Ok(run)
}

/// Writes the initramfs for `checks` to a unique file and returns its path.
pub fn write_initramfs(checks: &[Check]) -> Result<PathBuf, String> {
    let tprobe = PathBuf::from(std::env::var_os("TPROBE_STATIC_BIN").ok_or("TPROBE_STATIC_BIN")?);
    let helper =
        PathBuf::from(std::env::var_os("TPROBE_GUEST_HELPER").ok_or("TPROBE_GUEST_HELPER")?);
    let busybox = Path::new("/bin/busybox");
    // A dynamically linked busybox (Debian's `busybox` rather than `busybox-static`) would
    // leave the guest without a working init.
    let bb = std::fs::read(busybox).map_err(|e| format!("{}: {e}", busybox.display()))?;
    if bb.windows(12).any(|w| w == b"/lib64/ld-li") {
        return Err("/bin/busybox is dynamically linked: install busybox-static".into());
    }
    let data = initramfs(busybox, &tprobe, &helper, &init_script(checks))
        .map_err(|e| format!("building the initramfs: {e}"))?;
    let path = std::env::temp_dir().join(format!("tprobe-kt-{}.cpio", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&data))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_aligned_and_end_with_the_trailer() {
        let mut c = Cpio::default();
        c.dir("bin");
        c.file("init", 0o755, b"#!/bin/sh\n");
        let b = c.finish();
        assert_eq!(b.len() % 4, 0);
        assert!(b.starts_with(b"070701"));
        // mode of the first entry: a directory
        assert_eq!(&b[14..22], b"000041ed");
        let init = b.windows(5).position(|w| w == b"init\0").unwrap();
        // data starts on a 4-byte boundary right after the padded name
        let data = (init + 5).div_ceil(4) * 4;
        assert_eq!(&b[data..data + 10], b"#!/bin/sh\n");
        assert!(b.windows(11).any(|w| w == b"TRAILER!!!\0"));
    }

    #[test]
    fn console_parsing_survives_carriage_returns_and_noise() {
        let text = "SeaBIOS\r\nKT-KERNEL 6.1.0-56-amd64\r\nKT-RC 0\r\nKT-JSON-BEGIN\r\n{\"kind\":\"probe.start\"}\r\n[ 1.0] oops\r\nKT-JSON-END\r\nKT-STDERR-BEGIN\r\nwarn\r\nKT-STDERR-END\r\nKT-DONE\r\n";
        let r = parse_console(text);
        assert_eq!(r.release, "6.1.0-56-amd64");
        assert_eq!(r.rc, Some(0));
        assert_eq!(r.lines.len(), 1);
        assert_eq!(r.garbage, vec!["[ 1.0] oops".to_owned()]);
        assert_eq!(r.stderr, "warn\n");
    }
}
