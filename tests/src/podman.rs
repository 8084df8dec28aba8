//! A private podman for the Docker-API test: its own root, runroot, tmpdir and API socket
//! under a unique temp dir (cgroupfs manager, runc, vfs storage, no network), the busybox
//! image imported from a local rootfs tarball. Everything it makes is removed on drop.
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::containerd::{busybox_rootfs_tar, run, unique, Containerd};

pub const IMAGE: &str = "tprobe.local/busybox:1";

pub struct Podman {
    pub dir: PathBuf,
    pub sock: PathBuf,
    service: Option<Child>,
    containers: Vec<String>,
}

impl Podman {
    fn cmd(&self) -> Command {
        let d = &self.dir;
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            // crun refuses hybrid cgroups; vfs leaves no overlay mounts behind.
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                "runc",
            ]);
        c
    }

    /// Imports the image and starts `podman system service` on a private socket.
    pub fn start() -> Podman {
        let dir = std::env::temp_dir().join(unique("tprobe-podman"));
        std::fs::create_dir_all(&dir).unwrap();
        // Default ulimits above this machine's hard limits would make every run fail.
        std::fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        let mut p = Podman {
            sock: dir.join("podman.sock"),
            dir,
            service: None,
            containers: Vec::new(),
        };
        let tar = busybox_rootfs_tar(&p.dir.join("image"));
        run(p.cmd().arg("import").arg(&tar).arg(IMAGE));
        let log = std::fs::File::create(p.dir.join("service.log")).unwrap();
        let mut svc = p.cmd();
        svc.args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", p.sock.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        unsafe {
            use std::os::unix::process::CommandExt as _;
            svc.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        p.service = Some(
            svc.spawn()
                .expect("podman (installed by `cargo xtask setup`)"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.sock.exists() {
            assert!(Instant::now() < deadline, "podman service did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    /// `podman run -d` with labels; returns the container id.
    pub fn run_detached(&mut self, name: &str, labels: &[&str], command: &[&str]) -> String {
        let mut c = self.cmd();
        c.args(["run", "-d", "--network", "none", "--name", name]);
        for l in labels {
            c.args(["--label", l]);
        }
        c.arg(IMAGE).args(command);
        let out = run(&mut c);
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        self.containers.push(id.clone());
        id
    }

    pub fn remove(&mut self, id: &str) {
        let _ = self
            .cmd()
            .args(["rm", "-f", "-t", "0", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.containers.retain(|c| c != id);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for id in self.containers.clone() {
            self.remove(&id);
        }
        if let Some(mut child) = self.service.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Containerd::unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
