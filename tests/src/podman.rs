//! A private podman: its own root, runroot, tmpdir and config under a unique temp dir
//! (cgroupfs manager, runc, vfs storage). The Docker-API test also gets an API socket and the
//! busybox image imported from a local rootfs tarball; the deploy test builds its image in one.
//! Everything it makes is removed on drop.
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
    /// A podman command on this instance's storage, state and config.
    pub fn cmd(&self) -> Command {
        let d = &self.dir;
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("TMPDIR", d.join("tmp"))
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

    /// Runs `podman ARGS`, which must succeed; returns its trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// An instance with nothing in it yet (no image, no API service).
    pub fn private(tag: &str) -> Podman {
        let dir = std::env::temp_dir().join(unique(tag));
        for d in ["root", "runroot", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        // Default ulimits above this machine's hard limits would make every run fail.
        std::fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n",
        )
        .unwrap();
        Podman {
            sock: dir.join("podman.sock"),
            dir,
            service: None,
            containers: Vec::new(),
        }
    }

    /// Imports the image and starts `podman system service` on a private socket.
    pub fn start() -> Podman {
        let mut p = Podman::private("tprobe-podman");
        let tar = busybox_rootfs_tar(&p.dir.join("image"));
        run(p.cmd().arg("import").arg(&tar).arg(IMAGE));
        let log = std::fs::File::create(p.dir.join("service.log")).unwrap();
        let mut svc = p.cmd();
        svc.args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", p.sock.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        crate::die_with_parent(&mut svc);
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
            crate::terminate(&mut child, Duration::from_secs(10));
        }
        // What anything else (a build, a test that failed midway) left in its storage.
        let _ = self.cmd().args(["rm", "-af", "-t", "0"]).output();
        let _ = self.cmd().args(["rmi", "-af"]).output();
        Containerd::unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
