//! A private containerd for the container tests: its own config, root, state and socket under a
//! unique temp dir, a busybox image built here (no registry), plain containers through `ctr`,
//! CRI pods through the CRI gRPC API. Everything it makes is removed on drop.
use std::{
    collections::HashMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use k8s_cri::v1::{
    runtime_service_client::RuntimeServiceClient, ContainerConfig, ContainerMetadata,
    CreateContainerRequest, ImageSpec, LinuxContainerConfig, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopPodSandboxRequest,
};
use sha2::{Digest as _, Sha256};

/// The image every container runs (busybox, default command `sh`).
pub const IMAGE: &str = "tprobe.local/busybox:1";
/// The pod sandbox image: busybox sleeping until SIGTERM.
pub const PAUSE: &str = "tprobe.local/pause:1";

/// A unique name for this process and call.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// 64 random-enough hex characters (a container id in the usual form).
pub fn hex_id() -> String {
    let mut h = Sha256::new();
    h.update(unique("id").as_bytes());
    h.update(format!("{:?}", Instant::now()).as_bytes());
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            .to_le_bytes(),
    );
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A pod made through CRI (removed on drop of the [`Containerd`]).
pub struct Pod {
    pub sandbox_id: String,
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub cgroup_parent: String,
}

pub struct Containerd {
    pub dir: PathBuf,
    pub sock: PathBuf,
    /// containerd namespace for plain (`ctr`) containers: unique, so is its cgroup.
    pub ns: String,
    child: Option<Child>,
    rt: tokio::runtime::Runtime,
    pods: Vec<Pod>,
    cgroups: Vec<String>,
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A rootfs tarball under `dir`: static busybox and a few applet links.
pub fn busybox_rootfs_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("/bin/busybox (Debian busybox-static, installed by `cargo xtask setup`)");
    for applet in ["sh", "sleep", "cat", "true", "echo", "ls", "id"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let layer = dir.join("layer.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--owner=0", "--group=0", "--numeric-owner", "-cf"])
        .arg(&layer)
        .arg("."));
    layer
}

impl Containerd {
    /// Starts containerd and imports the images into the plain and the CRI namespaces.
    pub fn start() -> Containerd {
        let dir = std::env::temp_dir().join(unique("tprobe-ctrd"));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("containerd.sock");
        let d = dir.display();
        // restrict_oom_score_adj: this machine lacks CAP_SYS_RESOURCE (runc would fail).
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
"#
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        crate::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .expect("containerd (installed by `cargo xtask setup`)");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut c = Containerd {
            dir,
            sock,
            ns: unique("tprobe"),
            child: Some(child),
            rt,
            pods: Vec::new(),
            cgroups: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ctr_ok(&["version"]) {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                std::fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c.cgroups.push(format!("/{}", c.ns));
        let image = c.build_image();
        let ns = c.ns.clone();
        for n in [ns.as_str(), "k8s.io"] {
            c.ctr(
                n,
                &[
                    "images",
                    "import",
                    "--all-platforms",
                    image.to_str().unwrap(),
                ],
            );
        }
        c
    }

    fn ctr_cmd(&self, ns: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a").arg(&self.sock).args(["-n", ns]).args(args);
        cmd
    }

    fn ctr_ok(&self, args: &[&str]) -> bool {
        self.ctr_cmd("default", args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `ctr -n NS ARGS`, asserting success.
    pub fn ctr(&self, ns: &str, args: &[&str]) -> Output {
        run(&mut self.ctr_cmd(ns, args))
    }

    /// Host pid of a running plain container's task.
    pub fn task_pid(&self, id: &str) -> u32 {
        let out = self.ctr(&self.ns, &["task", "ls"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id)).then(|| f[1].parse().ok())?
            })
            .unwrap_or_else(|| panic!("no task {id}"))
    }

    /// Kills and deletes a plain container (ignores what is already gone).
    pub fn remove(&self, id: &str) {
        let _ = self
            .ctr_cmd(&self.ns, &["task", "kill", "-s", "SIGKILL", id])
            .output();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = self.ctr_cmd(&self.ns, &["task", "delete", id]).output();
            if out.is_ok_and(|o| o.status.success())
                || !String::from_utf8_lossy(&self.ctr(&self.ns, &["task", "ls"]).stdout)
                    .contains(id)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.ctr_cmd(&self.ns, &["containers", "rm", id]).output();
    }

    /// Builds an OCI image layout tarball with two images (busybox and the pause image).
    fn build_image(&self) -> PathBuf {
        let root = self.dir.join("image");
        let layer = busybox_rootfs_tar(&root);
        let layout = root.join("layout");
        let blobs = layout.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| -> (String, usize) {
            let h = hex(&Sha256::digest(bytes));
            std::fs::write(blobs.join(&h), bytes).unwrap();
            (format!("sha256:{h}"), bytes.len())
        };
        let (layer_digest, layer_size) = put(&std::fs::read(&layer).unwrap());
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let mut manifests = Vec::new();
        for (name, cmd) in [
            (IMAGE, serde_json::json!(["sh"])),
            (
                PAUSE,
                serde_json::json!(["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]),
            ),
        ] {
            let config = serde_json::json!({
                "architecture": arch,
                "os": "linux",
                "config": { "Cmd": cmd, "Env": ["PATH=/bin"] },
                "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
            });
            let config = serde_json::to_vec(&config).unwrap();
            let (cd, cs) = put(&config);
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs },
                "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size }],
            });
            let manifest = serde_json::to_vec(&manifest).unwrap();
            let (md, ms) = put(&manifest);
            manifests.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": md,
                "size": ms,
                "platform": { "architecture": arch, "os": "linux" },
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": "1",
                },
            }));
        }
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": manifests });
        std::fs::write(
            layout.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        std::fs::write(
            layout.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let tarball = root.join("image.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&tarball)
            .arg("."));
        tarball
    }

    async fn cri_client(sock: PathBuf) -> RuntimeServiceClient<tonic::transport::Channel> {
        let ch = tonic::transport::Endpoint::from_static("http://[::]:50051")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let p = sock.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(p).await?,
                    ))
                }
            }))
            .await
            .expect("CRI connection");
        RuntimeServiceClient::new(ch)
    }

    /// Runs a pod sandbox (host network, cgroupfs parent like kubelet's) and one container in
    /// it running `command`; returns the pod and the container id.
    pub fn run_pod(
        &mut self,
        pod_labels: &[(&str, &str)],
        container_name: &str,
        command: &[&str],
    ) -> (String, String) {
        let uid = {
            let h = hex_id();
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        };
        let name = unique("tprobe-pod");
        let namespace = "tprobe-tests".to_owned();
        let cgroup_parent = format!("/kubepods/besteffort/pod{uid}");
        let ns_opts = NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Container as i32,
            ipc: NamespaceMode::Pod as i32,
            ..Default::default()
        };
        // kubelet's labels: the pod's own plus the io.kubernetes.pod.* ones.
        let mut labels: HashMap<String, String> = pod_labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.insert("io.kubernetes.pod.name".into(), name.clone());
        labels.insert("io.kubernetes.pod.namespace".into(), namespace.clone());
        labels.insert("io.kubernetes.pod.uid".into(), uid.clone());
        let sandbox_config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.clone(),
                uid: uid.clone(),
                namespace: namespace.clone(),
                attempt: 0,
            }),
            hostname: String::new(),
            labels: labels.clone(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(ns_opts.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut ctr_labels: HashMap<String, String> = labels
            .iter()
            .filter(|(k, _)| k.starts_with("io.kubernetes.pod."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ctr_labels.insert("io.kubernetes.container.name".into(), container_name.into());
        let container_config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: container_name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            labels: ctr_labels,
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(ns_opts),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sock = self.sock.clone();
        let (sandbox_id, container_id) = self.rt.block_on(async move {
            let mut c = Self::cri_client(sock).await;
            let sandbox_id = c
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(sandbox_config.clone()),
                    runtime_handler: String::new(),
                })
                .await
                .expect("RunPodSandbox")
                .into_inner()
                .pod_sandbox_id;
            let created = c
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: sandbox_id.clone(),
                    config: Some(container_config),
                    sandbox_config: Some(sandbox_config),
                })
                .await;
            let container_id = match created {
                Ok(r) => r.into_inner().container_id,
                Err(e) => return (sandbox_id, Err(e)),
            };
            let started = c
                .start_container(StartContainerRequest {
                    container_id: container_id.clone(),
                })
                .await;
            (sandbox_id, started.map(|_| container_id))
        });
        // Recorded before asserting, so that drop removes the sandbox whatever happened.
        self.cgroups.push(cgroup_parent.clone());
        self.pods.push(Pod {
            sandbox_id: sandbox_id.clone(),
            uid,
            name,
            namespace,
            cgroup_parent,
        });
        let container_id = container_id.expect("CreateContainer/StartContainer");
        (sandbox_id, container_id)
    }

    /// The last pod made.
    pub fn pod(&self) -> &Pod {
        self.pods.last().expect("a pod")
    }

    /// StopPodSandbox + RemovePodSandbox (containerd needs both, or mounts stay behind).
    pub fn remove_pods(&mut self) {
        let pods: Vec<String> = self.pods.drain(..).map(|p| p.sandbox_id).collect();
        if pods.is_empty() {
            return;
        }
        let sock = self.sock.clone();
        self.rt.block_on(async move {
            let mut c = Self::cri_client(sock).await;
            for id in pods {
                let _ = c
                    .stop_pod_sandbox(StopPodSandboxRequest {
                        pod_sandbox_id: id.clone(),
                    })
                    .await;
                if let Err(e) = c
                    .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                    .await
                {
                    eprintln!("RemovePodSandbox: {e}");
                }
            }
        });
    }

    /// Empty cgroup dirs runc leaves behind, in every hierarchy (hybrid v1 + v2).
    fn remove_cgroups(&self) {
        let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        let roots: Vec<PathBuf> = roots.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        for cg in &self.cgroups {
            // The dir and its parents up to (not including) the top, deepest first.
            let mut rel = PathBuf::from(cg.trim_start_matches('/'));
            loop {
                for root in &roots {
                    let _ = std::fs::remove_dir(root.join(&rel));
                }
                if !rel.pop() || rel.as_os_str().is_empty() {
                    break;
                }
            }
        }
    }

    pub fn unmount_under(dir: &Path) {
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let mut mounts: Vec<&str> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(dir))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.remove_pods();
        // Plain containers left by a failed test.
        if let Ok(out) = self.ctr_cmd(&self.ns, &["containers", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                self.remove(id.trim());
            }
        }
        if let Some(mut child) = self.child.take() {
            crate::terminate(&mut child, Duration::from_secs(10));
        }
        Self::unmount_under(&self.dir);
        self.remove_cgroups();
        // runc's state dirs per namespace (containerd puts them there whatever the config).
        for ns in [self.ns.as_str(), "k8s.io"] {
            let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(ns));
        }
        if std::env::var_os("TPROBE_KEEP_CONTAINERD").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            let _ = writeln!(std::io::stderr(), "kept {}", self.dir.display());
        }
    }
}
