//! Container enrichment: cgroup id -> cgroup path -> container id and runtime (`cgroup.rs`) ->
//! metadata from the runtime's API (CRI `runtime.v1`, then containerd's own API).
//!
//! Lookups run on a small tokio runtime of their own and fill a cache keyed by cgroup id; the
//! pipeline only reads the cache and never waits on a runtime except through the bounded hold
//! queue of [`ContainerStage`]. Entries go when their cgroup is gone (checked every sweep).
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use super::cgroup::{self, CgroupMatch, Runtime};
use crate::event::Event;

/// Usual socket paths, tried in order when no flag names one.
pub const CRI_SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/var/run/crio/crio.sock",
];
/// Docker Engine API, or podman's compatible service.
pub const DOCKER_SOCKETS: &[&str] = &[
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/podman/podman.sock",
];
pub const CONTAINERD_SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
];

/// `container` of the schema. Fields the runtime did not give stay `None` (absent in JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodInfo>,
    /// Which lookup filled the object: `cri`, `containerd`, `docker` (Docker Engine API, also
    /// podman's) or `cgroup` (path only).
    pub source: &'static str,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PodInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

impl ContainerInfo {
    /// What the path alone tells (the answer when no runtime API knows the container).
    pub fn from_cgroup(m: &CgroupMatch) -> Self {
        ContainerInfo {
            id: m.id.clone(),
            runtime: m.runtime.map(|r| r.name().to_owned()),
            pod: m.pod_uid.as_ref().map(|uid| PodInfo {
                uid: Some(uid.clone()),
                ..Default::default()
            }),
            source: "cgroup",
            ..Default::default()
        }
    }
}

/// Settings of the container stage (CLI flags).
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    pub enabled: bool,
    pub cri_socket: Option<PathBuf>,
    pub containerd_socket: Option<PathBuf>,
    /// Docker Engine API socket (Docker, or podman's compatible service).
    pub docker_socket: Option<PathBuf>,
    /// containerd namespaces tried after the one the cgroup path names.
    pub containerd_namespaces: Vec<String>,
    /// Longest time an event waits for its container's first lookup.
    pub wait: Duration,
    /// How often entries of vanished cgroups are evicted.
    pub sweep_interval: Duration,
    /// How long a "not found" answer is kept before the runtime is asked again.
    pub negative_ttl: Duration,
    /// Events held at most (beyond it the oldest goes out without waiting).
    pub hold_capacity: usize,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            enabled: true,
            cri_socket: None,
            containerd_socket: None,
            docker_socket: None,
            containerd_namespaces: vec!["k8s.io".into(), "default".into(), "moby".into()],
            wait: Duration::from_millis(200),
            sweep_interval: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(30),
            hold_capacity: 4096,
        }
    }
}

/// `auto` (or no flag): the first usual path that exists; `none`/empty: off; else the path.
pub fn socket_choice(flag: Option<&str>, defaults: &[&str]) -> Option<PathBuf> {
    match flag.map(str::trim) {
        Some("none") | Some("") => None,
        Some("auto") | None => defaults.iter().map(PathBuf::from).find(|p| p.exists()),
        Some(p) => Some(PathBuf::from(p)),
    }
}

/// Counters for `probe.stop`.
#[derive(Default)]
pub struct ContainerStats {
    pub lookups: AtomicU64,
    pub found_cri: AtomicU64,
    pub found_containerd: AtomicU64,
    pub not_found: AtomicU64,
    pub cri_errors: AtomicU64,
    pub containerd_errors: AtomicU64,
    pub found_docker: AtomicU64,
    pub docker_errors: AtomicU64,
    /// Cgroup ids whose path could not be found (cgroup already gone, no /proc entry).
    pub path_unknown: AtomicU64,
    pub held: AtomicU64,
    /// Events emitted while their container's lookup was still running: they carry the
    /// cgroup-only object (`source: "cgroup"`).
    pub emitted_without_metadata: AtomicU64,
    pub hold_overflow: AtomicU64,
    pub evicted: AtomicU64,
}

#[derive(Clone, Debug)]
enum State {
    /// Not a container (or a path we could not read): no `container` field.
    Host,
    /// A runtime lookup is running; the cgroup-only answer is ready meanwhile (`None` for a
    /// path that only the runtime can confirm as a container).
    Pending(Option<Arc<ContainerInfo>>),
    Ready(Arc<ContainerInfo>),
}

struct Entry {
    state: State,
    matched: Option<CgroupMatch>,
    /// Ask the runtime again after this (negative caching).
    retry_at: Option<Instant>,
    last_used: Instant,
    /// Known through a cgroup2 file handle: its absence can be checked.
    by_handle: bool,
}

/// What the pipeline learns about one cgroup id.
#[derive(Clone, Debug)]
pub enum Lookup {
    Host,
    Pending(Option<Arc<ContainerInfo>>),
    Ready(Arc<ContainerInfo>),
}

/// Error of a runtime API call.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("cannot connect to {0}: {1}")]
    Connect(PathBuf, String),
    #[error("{0}")]
    Status(#[from] tonic::Status),
    #[error("{0}")]
    Docker(#[from] super::docker::DockerError),
}

/// One gRPC connection over a unix socket, made lazily, dropped on failure and re-made later.
struct Socket {
    path: PathBuf,
    what: &'static str,
    chan: tokio::sync::Mutex<Option<tonic::transport::Channel>>,
    down_until: Mutex<Option<Instant>>,
    warned: AtomicBool,
}

impl Socket {
    fn new(path: PathBuf, what: &'static str) -> Self {
        Socket {
            path,
            what,
            chan: tokio::sync::Mutex::new(None),
            down_until: Mutex::new(None),
            warned: AtomicBool::new(false),
        }
    }

    /// After a failure, give the runtime a moment before asking again.
    fn check_down(&self) -> Result<(), ApiError> {
        if self
            .down_until
            .lock()
            .unwrap()
            .is_some_and(|t| Instant::now() < t)
        {
            return Err(ApiError::Connect(
                self.path.clone(),
                "recently failed".into(),
            ));
        }
        Ok(())
    }

    async fn channel(&self) -> Result<tonic::transport::Channel, ApiError> {
        self.check_down()?;
        let mut g = self.chan.lock().await;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let path = self.path.clone();
        // The URI is required by tonic and ignored by the unix connector.
        let ch = tonic::transport::Endpoint::from_static("http://[::]:50051")
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|e| {
                ApiError::Connect(
                    self.path.clone(),
                    format!("{e}: {:?}", std::error::Error::source(&e)),
                )
            })?;
        *g = Some(ch.clone());
        Ok(ch)
    }

    /// Records a failure: one warning per socket, a counter, a short pause before retrying.
    async fn failed(&self, e: &ApiError, counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
        *self.chan.lock().await = None;
        *self.down_until.lock().unwrap() = Some(Instant::now() + Duration::from_secs(2));
        if !self.warned.swap(true, Relaxed) {
            log::warn!(
                "{} socket {} unusable, containers get less metadata until it answers: {e}",
                self.what,
                self.path.display()
            );
        }
    }
}

impl ApiError {
    /// Whether the socket itself failed (it is then marked down, with one warning), rather
    /// than the runtime answering with an error about this container.
    fn is_socket_failure(&self) -> bool {
        match self {
            ApiError::Connect(..) => true,
            ApiError::Status(s) => is_transport(s),
            ApiError::Docker(super::docker::DockerError::Status(_)) => false,
            ApiError::Docker(_) => true,
        }
    }
}

/// Books one runtime's answer to a lookup: a container found ends the lookup (`Some`); an error
/// is counted in `errors` (a socket failure through the socket, so it warns once) and sets
/// `failed`.
async fn book(
    res: Result<Option<ContainerInfo>, ApiError>,
    sock: &Socket,
    found: &AtomicU64,
    errors: &AtomicU64,
    id: &str,
    failed: &mut bool,
) -> Option<Outcome> {
    match res {
        Ok(Some(i)) => {
            found.fetch_add(1, Relaxed);
            Some(Outcome::Found(Box::new(i)))
        }
        Ok(None) => None,
        Err(e) => {
            if e.is_socket_failure() {
                sock.failed(&e, errors).await;
            } else {
                errors.fetch_add(1, Relaxed);
                log::debug!("{} lookup of {id}: {e}", sock.what);
            }
            *failed = true;
            None
        }
    }
}

/// A transport-level failure (the socket, not the answer).
fn is_transport(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
    )
}

struct Clients {
    cri: Option<Socket>,
    /// `runtime_name` of the CRI Version call, asked once.
    cri_runtime: tokio::sync::OnceCell<String>,
    containerd: Option<Socket>,
    docker: Option<Socket>,
    namespaces: Vec<String>,
}

enum Outcome {
    Found(Box<ContainerInfo>),
    NotFound,
    /// No runtime could be asked (socket missing or failing).
    Unavailable,
}

fn map(h: HashMap<String, String>) -> BTreeMap<String, String> {
    h.into_iter().collect()
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Pod fields from the `io.kubernetes.*` labels kubelet puts on containers.
fn pod_from_labels(labels: &BTreeMap<String, String>) -> Option<PodInfo> {
    let get = |k: &str| labels.get(k).cloned();
    let pod = PodInfo {
        name: get("io.kubernetes.pod.name"),
        namespace: get("io.kubernetes.pod.namespace"),
        uid: get("io.kubernetes.pod.uid"),
        labels: None,
    };
    (pod.name.is_some() || pod.uid.is_some()).then_some(pod)
}

/// Pod labels are the sandbox labels without the ones kubelet adds for itself.
fn pod_labels(labels: HashMap<String, String>) -> BTreeMap<String, String> {
    labels
        .into_iter()
        .filter(|(k, _)| !k.starts_with("io.kubernetes.pod."))
        .collect()
}

impl Clients {
    async fn cri(&self, m: &CgroupMatch) -> Result<Option<ContainerInfo>, ApiError> {
        use k8s_cri::v1::{
            runtime_service_client::RuntimeServiceClient, ContainerFilter, ContainerStatusRequest,
            ListContainersRequest, PodSandboxStatusRequest, VersionRequest,
        };
        let Some(sock) = &self.cri else {
            return Ok(None);
        };
        let mut c = RuntimeServiceClient::new(sock.channel().await?);
        let runtime = self
            .cri_runtime
            .get_or_try_init(|| async {
                let v = c.clone().version(VersionRequest::default()).await?;
                Ok::<_, ApiError>(v.into_inner().runtime_name)
            })
            .await?
            .clone();
        let runtime = match runtime.as_str() {
            "" => m.runtime.map(|r| r.name().to_owned()),
            "cri-o" | "crio" => Some("cri-o".to_owned()),
            r => Some(r.to_owned()),
        };
        let list = c
            .list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    id: m.id.clone(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner();
        let mut info = ContainerInfo {
            id: m.id.clone(),
            runtime,
            source: "cri",
            ..Default::default()
        };
        let sandbox_id = match list.containers.into_iter().find(|x| x.id == m.id) {
            Some(ctr) => {
                info.name = ctr.metadata.map(|md| md.name).and_then(non_empty);
                let labels = map(ctr.labels);
                info.pod = pod_from_labels(&labels);
                info.labels = Some(labels);
                // The status names the image as the user asked for it; the list gives an id.
                let st = c
                    .container_status(ContainerStatusRequest {
                        container_id: m.id.clone(),
                        verbose: false,
                    })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().status);
                info.image = st
                    .and_then(|s| s.image.map(|i| i.image))
                    .and_then(non_empty)
                    .or_else(|| ctr.image.map(|i| i.image).and_then(non_empty))
                    .or_else(|| non_empty(ctr.image_ref));
                ctr.pod_sandbox_id
            }
            // The sandbox (pause) container is not in the container list.
            None => m.id.clone(),
        };
        let sandbox = c
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: sandbox_id,
                verbose: false,
            })
            .await;
        match sandbox {
            Ok(r) => {
                if let Some(s) = r.into_inner().status {
                    let md = s.metadata.unwrap_or_default();
                    let pod = info.pod.get_or_insert_with(PodInfo::default);
                    pod.name = non_empty(md.name).or(pod.name.take());
                    pod.namespace = non_empty(md.namespace).or(pod.namespace.take());
                    pod.uid = non_empty(md.uid).or(pod.uid.take());
                    pod.labels = Some(pod_labels(s.labels));
                }
            }
            Err(s) if s.code() == tonic::Code::NotFound && info.labels.is_none() => {
                return Ok(None)
            }
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(s.into()),
        }
        Ok(Some(info))
    }

    async fn containerd(&self, m: &CgroupMatch) -> Result<Option<ContainerInfo>, ApiError> {
        use containerd_client::services::v1::{
            containers_client::ContainersClient, GetContainerRequest,
        };
        let Some(sock) = &self.containerd else {
            return Ok(None);
        };
        let mut c = ContainersClient::new(sock.channel().await?);
        let mut namespaces: Vec<&str> = m.containerd_namespace.iter().map(String::as_str).collect();
        if m.kube {
            namespaces.push("k8s.io");
        }
        for ns in &self.namespaces {
            if !namespaces.contains(&ns.as_str()) {
                namespaces.push(ns);
            }
        }
        for ns in namespaces {
            let mut req = tonic::Request::new(GetContainerRequest { id: m.id.clone() });
            let Ok(v) = ns.parse() else { continue };
            req.metadata_mut().insert("containerd-namespace", v);
            match c.get(req).await {
                Ok(r) => {
                    let Some(ctr) = r.into_inner().container else {
                        continue;
                    };
                    let labels = map(ctr.labels);
                    return Ok(Some(ContainerInfo {
                        id: m.id.clone(),
                        runtime: Some(Runtime::Containerd.name().to_owned()),
                        // Containers made by CRI name themselves in their labels.
                        name: labels.get("io.kubernetes.container.name").cloned(),
                        image: non_empty(ctr.image),
                        pod: pod_from_labels(&labels),
                        labels: Some(labels),
                        source: "containerd",
                    }));
                }
                Err(s) if s.code() == tonic::Code::NotFound => continue,
                Err(s) => return Err(s.into()),
            }
        }
        Ok(None)
    }

    async fn docker(&self, m: &CgroupMatch) -> Result<Option<ContainerInfo>, ApiError> {
        let Some(sock) = &self.docker else {
            return Ok(None);
        };
        sock.check_down()?;
        let Some(i) = super::docker::inspect(&sock.path, &m.id).await? else {
            return Ok(None);
        };
        let config = i.config.unwrap_or_default();
        let labels = config.labels.unwrap_or_default();
        Ok(Some(ContainerInfo {
            id: m.id.clone(),
            runtime: m.runtime.map(|r| r.name().to_owned()),
            name: non_empty(i.name.trim_start_matches('/').to_owned()),
            image: non_empty(config.image),
            pod: pod_from_labels(&labels),
            labels: Some(labels),
            source: "docker",
        }))
    }

    async fn lookup(&self, m: &CgroupMatch, stats: &ContainerStats) -> Outcome {
        let mut asked = false;
        let mut failed = false;
        let cri_first = m.kube
            || matches!(m.runtime, Some(Runtime::CriO) | None)
            || m.containerd_namespace.as_deref() == Some("k8s.io");
        if cri_first {
            if let Some(sock) = &self.cri {
                asked = true;
                let res = self.cri(m).await;
                let (found, errors) = (&stats.found_cri, &stats.cri_errors);
                if let Some(o) = book(res, sock, found, errors, &m.id, &mut failed).await {
                    return o;
                }
            }
        }
        if matches!(m.runtime, Some(Runtime::Containerd) | None) {
            if let Some(sock) = &self.containerd {
                asked = true;
                let res = self.containerd(m).await;
                let (found, errors) = (&stats.found_containerd, &stats.containerd_errors);
                if let Some(o) = book(res, sock, found, errors, &m.id, &mut failed).await {
                    return o;
                }
            }
        }
        if matches!(m.runtime, Some(Runtime::Docker | Runtime::Podman)) {
            if let Some(sock) = &self.docker {
                asked = true;
                let res = self.docker(m).await;
                let (found, errors) = (&stats.found_docker, &stats.docker_errors);
                if let Some(o) = book(res, sock, found, errors, &m.id, &mut failed).await {
                    return o;
                }
            }
        }
        if failed || !asked {
            Outcome::Unavailable
        } else {
            stats.not_found.fetch_add(1, Relaxed);
            Outcome::NotFound
        }
    }
}

/// The cgroup2 mount, opened once, to turn cgroup ids into paths through file handles.
struct CgroupFs {
    mount: PathBuf,
    fd: OwnedFd,
}

/// `FILEID_KERNFS`: a kernfs node id (the cgroup id) as a file handle.
const FILEID_KERNFS: i32 = 0xfe;

#[repr(C)]
struct KernfsHandle {
    handle_bytes: u32,
    handle_type: i32,
    id: u64,
}

impl CgroupFs {
    fn find() -> Option<CgroupFs> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = info.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split(' ').next()? == "cgroup2")
                .then(|| pre.split(' ').nth(4).map(PathBuf::from))?
        })?;
        let file = std::fs::File::open(&mount).ok()?;
        Some(CgroupFs {
            mount,
            fd: file.into(),
        })
    }

    fn open(&self, id: u64) -> std::io::Result<OwnedFd> {
        let mut h = KernfsHandle {
            handle_bytes: 8,
            handle_type: FILEID_KERNFS,
            id,
        };
        // SAFETY: `h` is a valid `struct file_handle` with 8 bytes of handle data.
        let fd = unsafe {
            libc::open_by_handle_at(
                self.fd.as_raw_fd(),
                (&mut h as *mut KernfsHandle).cast(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The cgroup path (as in `/proc/<pid>/cgroup`) of a cgroup id.
    fn path(&self, id: u64) -> Option<String> {
        let fd = self.open(id).ok()?;
        let full = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        let rel = full.strip_prefix(&self.mount).ok()?;
        Some(format!("/{}", rel.to_string_lossy()))
    }

    fn exists(&self, id: u64) -> bool {
        !matches!(self.open(id), Err(e) if e.raw_os_error() == Some(libc::ESTALE) || e.raw_os_error() == Some(libc::ENOENT))
    }
}

/// The shared cache and the lookups behind it.
pub struct Resolver {
    cache: Mutex<HashMap<u64, Entry>>,
    clients: Clients,
    cgroupfs: Option<CgroupFs>,
    proc_root: PathBuf,
    negative_ttl: Duration,
    pub stats: ContainerStats,
    /// Woken when a lookup finishes (the pipeline re-checks its hold queue).
    pub done: Notify,
    handle: tokio::runtime::Handle,
}

/// Entries of cgroups we cannot check through a handle go after this long unused.
const IDLE_TTL: Duration = Duration::from_secs(600);

impl Resolver {
    /// Starts the lookup runtime on its own thread and the periodic sweep.
    pub fn start(cfg: &ContainerConfig) -> std::io::Result<Arc<Resolver>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tprobe-containers")
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        // The runtime lives as long as the process: its worker serves every lookup.
        std::mem::forget(rt);
        let r = Arc::new(Resolver {
            cache: Mutex::new(HashMap::new()),
            clients: Clients {
                cri: cfg.cri_socket.clone().map(|p| Socket::new(p, "CRI")),
                cri_runtime: tokio::sync::OnceCell::new(),
                containerd: cfg
                    .containerd_socket
                    .clone()
                    .map(|p| Socket::new(p, "containerd")),
                docker: cfg
                    .docker_socket
                    .clone()
                    .map(|p| Socket::new(p, "Docker API")),
                namespaces: cfg.containerd_namespaces.clone(),
            },
            cgroupfs: CgroupFs::find(),
            proc_root: "/proc".into(),
            negative_ttl: cfg.negative_ttl,
            stats: ContainerStats::default(),
            done: Notify::new(),
            handle,
        });
        if r.cgroupfs.is_none() {
            log::info!("no cgroup2 mount: container lookups use /proc/<pid>/cgroup");
        }
        let weak = Arc::downgrade(&r);
        let every = cfg.sweep_interval;
        r.handle.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(r) = weak.upgrade() else { break };
                r.sweep();
            }
        });
        Ok(r)
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Container path match of a cgroup id (file handle first, then `/proc/<pid>/cgroup`).
    fn find(&self, cgroup_id: u64, pid: u32) -> (Option<Option<CgroupMatch>>, bool) {
        if let Some(fs) = &self.cgroupfs {
            if let Some(p) = fs.path(cgroup_id) {
                return (Some(cgroup::parse_path(&p)), true);
            }
        }
        let file = self.proc_root.join(pid.to_string()).join("cgroup");
        match std::fs::read_to_string(file) {
            Ok(s) => (Some(cgroup::parse_proc_cgroup(&s)), false),
            Err(_) => (None, false),
        }
    }

    /// Cache answer for an event, starting a lookup on a miss or when a negative answer expired.
    pub fn lookup(self: &Arc<Self>, cgroup_id: u64, pid: u32, now: Instant) -> Lookup {
        let mut cache = self.cache.lock().unwrap();
        if let Some(e) = cache.get_mut(&cgroup_id) {
            e.last_used = now;
            if e.retry_at.is_some_and(|t| now >= t) {
                if let Some(m) = e.matched.clone() {
                    e.retry_at = None;
                    self.spawn_lookup(cgroup_id, m);
                }
            }
            return match &e.state {
                State::Host => Lookup::Host,
                State::Pending(i) => Lookup::Pending(i.clone()),
                State::Ready(i) => Lookup::Ready(i.clone()),
            };
        }
        drop(cache);
        // Path resolution is a syscall or a /proc read, not a runtime call.
        let (found, by_handle) = self.find(cgroup_id, pid);
        let (state, matched) = match found {
            None => {
                self.stats.path_unknown.fetch_add(1, Relaxed);
                (State::Host, None)
            }
            Some(None) => (State::Host, None),
            Some(Some(m)) => {
                let fallback =
                    (!m.needs_confirmation).then(|| Arc::new(ContainerInfo::from_cgroup(&m)));
                (State::Pending(fallback), Some(m))
            }
        };
        let out = match &state {
            State::Host => Lookup::Host,
            State::Pending(i) => Lookup::Pending(i.clone()),
            State::Ready(i) => Lookup::Ready(i.clone()),
        };
        let m = matched.clone();
        self.cache.lock().unwrap().insert(
            cgroup_id,
            Entry {
                state,
                matched,
                retry_at: None,
                last_used: now,
                by_handle,
            },
        );
        // After the insert: the lookup task updates the entry it finds.
        if let Some(m) = m {
            self.spawn_lookup(cgroup_id, m);
        }
        out
    }

    /// Cache answer without starting anything (for events already held).
    pub fn peek(&self, cgroup_id: u64) -> Lookup {
        match self.cache.lock().unwrap().get(&cgroup_id).map(|e| &e.state) {
            Some(State::Ready(i)) => Lookup::Ready(i.clone()),
            Some(State::Pending(i)) => Lookup::Pending(i.clone()),
            _ => Lookup::Host,
        }
    }

    fn spawn_lookup(self: &Arc<Self>, cgroup_id: u64, m: CgroupMatch) {
        self.stats.lookups.fetch_add(1, Relaxed);
        let r = self.clone();
        self.handle.spawn(async move {
            let outcome = r.clients.lookup(&m, &r.stats).await;
            let retry = Some(Instant::now() + r.negative_ttl);
            let (state, retry_at) = match outcome {
                Outcome::Found(i) => (State::Ready(Arc::new(*i)), None),
                // A free-form `/<namespace>/<id>` path is a container only if containerd says so.
                _ if m.needs_confirmation => (State::Host, retry),
                _ => (
                    State::Ready(Arc::new(ContainerInfo::from_cgroup(&m))),
                    retry,
                ),
            };
            if let Some(e) = r.cache.lock().unwrap().get_mut(&cgroup_id) {
                // A refresh that failed keeps what an earlier lookup found.
                let keep = matches!(e.state, State::Ready(ref i) if i.source != "cgroup")
                    && !matches!(state, State::Ready(ref i) if i.source != "cgroup");
                if !keep {
                    e.state = state;
                }
                e.retry_at = retry_at;
            }
            r.done.notify_one();
        });
    }

    /// Drops entries whose cgroup is gone (and idle ones we cannot check).
    pub fn sweep(&self) {
        let now = Instant::now();
        let ids: Vec<(u64, bool, Instant)> = self
            .cache
            .lock()
            .unwrap()
            .iter()
            .map(|(k, e)| (*k, e.by_handle, e.last_used))
            .collect();
        let gone: Vec<u64> = ids
            .into_iter()
            .filter(|(id, by_handle, used)| match (&self.cgroupfs, by_handle) {
                (Some(fs), true) => !fs.exists(*id),
                _ => now.duration_since(*used) > IDLE_TTL,
            })
            .map(|(id, ..)| id)
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut cache = self.cache.lock().unwrap();
        for id in gone {
            if cache.remove(&id).is_some() {
                self.stats.evicted.fetch_add(1, Relaxed);
            }
        }
    }

    /// Counters and cache contents for `probe.stop`.
    pub fn report(&self) -> serde_json::Value {
        let cache = self.cache.lock().unwrap();
        let mut ids: Vec<&str> = cache
            .values()
            .filter_map(|e| match &e.state {
                State::Ready(i) | State::Pending(Some(i)) => Some(i.id.as_str()),
                State::Pending(None) => None,
                State::Host => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let s = &self.stats;
        serde_json::json!({
            "cache_entries": cache.len(),
            "cached_containers": ids,
            "lookups": s.lookups.load(Relaxed),
            "found_cri": s.found_cri.load(Relaxed),
            "found_containerd": s.found_containerd.load(Relaxed),
            "not_found": s.not_found.load(Relaxed),
            "cri_errors": s.cri_errors.load(Relaxed),
            "containerd_errors": s.containerd_errors.load(Relaxed),
            "found_docker": s.found_docker.load(Relaxed),
            "docker_errors": s.docker_errors.load(Relaxed),
            "path_unknown": s.path_unknown.load(Relaxed),
            "held": s.held.load(Relaxed),
            "emitted_without_metadata": s.emitted_without_metadata.load(Relaxed),
            "hold_overflow": s.hold_overflow.load(Relaxed),
            "evicted": s.evicted.load(Relaxed),
        })
    }
}

/// The pipeline's container step: attaches `container` and holds events whose container's
/// first lookup is in flight, for at most `wait`, releasing them in arrival order.
pub struct ContainerStage {
    pub resolver: Arc<Resolver>,
    wait: Duration,
    capacity: usize,
    /// Events in order; `Some(cgroup id)` while their container is still pending.
    queue: VecDeque<(Event, Option<u64>, Instant)>,
}

impl ContainerStage {
    pub fn new(resolver: Arc<Resolver>, cfg: &ContainerConfig) -> Self {
        ContainerStage {
            resolver,
            wait: cfg.wait,
            capacity: cfg.hold_capacity.max(1),
            queue: VecDeque::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes an enriched event; appends to `out` whatever may go out now, in order.
    pub fn push(&mut self, mut ev: Event, out: &mut Vec<Event>) {
        let now = Instant::now();
        let mut pending = None;
        if let Some(t) = &ev.task {
            match self.resolver.lookup(t.cgroup_id, t.pid, now) {
                Lookup::Host => {}
                Lookup::Ready(i) => ev.container = Some(i),
                Lookup::Pending(i) if self.wait.is_zero() => {
                    self.resolver
                        .stats
                        .emitted_without_metadata
                        .fetch_add(1, Relaxed);
                    ev.container = i;
                }
                Lookup::Pending(_) => pending = Some(t.cgroup_id),
            }
        }
        if pending.is_some() {
            self.resolver.stats.held.fetch_add(1, Relaxed);
        }
        if pending.is_none() && self.queue.is_empty() {
            self.finish(&mut ev, pending, false);
            out.push(ev);
            return;
        }
        self.queue.push_back((ev, pending, now + self.wait));
        if self.queue.len() > self.capacity {
            self.resolver.stats.hold_overflow.fetch_add(1, Relaxed);
            if let Some((mut ev, p, _)) = self.queue.pop_front() {
                self.finish(&mut ev, p, true);
                out.push(ev);
            }
        }
        self.release(false, out);
    }

    /// Fills `container` of an event leaving the queue.
    fn finish(&self, ev: &mut Event, pending: Option<u64>, late: bool) {
        let Some(id) = pending else { return };
        match self.resolver.peek(id) {
            Lookup::Ready(i) => ev.container = Some(i),
            Lookup::Pending(i) => {
                if late {
                    self.resolver
                        .stats
                        .emitted_without_metadata
                        .fetch_add(1, Relaxed);
                }
                ev.container = i;
            }
            Lookup::Host => ev.container = None,
        }
    }

    /// Moves out the head events whose lookup finished or whose time is up (all with `force`).
    pub fn release(&mut self, force: bool, out: &mut Vec<Event>) {
        let now = Instant::now();
        while let Some((_, pending, deadline)) = self.queue.front() {
            let ready = match pending {
                None => true,
                Some(id) => !matches!(self.resolver.peek(*id), Lookup::Pending(_)),
            };
            let late = !ready && (force || now >= *deadline);
            if !ready && !late {
                break;
            }
            let (mut ev, p, _) = self.queue.pop_front().unwrap();
            self.finish(&mut ev, p, late);
            out.push(ev);
        }
    }

    /// Blocks the pipeline thread until a batch arrives, a lookup finishes or the head's time
    /// is up. `None`: the channel closed.
    pub fn recv(&self, rx: &mut mpsc::Receiver<Vec<Event>>) -> Received {
        let Some((_, _, deadline)) = self.queue.front() else {
            return Received::from(rx.blocking_recv());
        };
        let deadline = tokio::time::Instant::from_std(*deadline);
        let r = &self.resolver;
        r.handle.block_on(async {
            tokio::select! {
                b = rx.recv() => Received::from(b),
                _ = r.done.notified() => Received::Timer,
                _ = tokio::time::sleep_until(deadline) => Received::Timer,
            }
        })
    }
}

/// What the pipeline's receive returned.
pub enum Received {
    /// A batch from the drain (possibly empty: a reload's wake-up).
    Batch(Vec<Event>),
    /// A held event may be due (lookup done or time up); no batch.
    Timer,
    /// The drain side is gone.
    Closed,
}

impl From<Option<Vec<Event>>> for Received {
    fn from(b: Option<Vec<Event>>) -> Self {
        b.map_or(Received::Closed, Received::Batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_choice_flags() {
        assert_eq!(socket_choice(Some("none"), &["/"]), None);
        assert_eq!(socket_choice(Some(""), &["/"]), None);
        assert_eq!(
            socket_choice(None, &["/nonexistent/x", "/"]),
            Some("/".into())
        );
        assert_eq!(socket_choice(Some("auto"), &["/nonexistent/x"]), None);
        assert_eq!(
            socket_choice(Some("/run/x.sock"), &[]),
            Some("/run/x.sock".into())
        );
    }

    #[test]
    fn cgroup_only_object_says_what_the_path_says() {
        let m = cgroup::parse_path(&format!(
            "/kubepods/besteffort/pod0b5f6c2e-8d4a-4f1b-9c3d-2e7a6b5c4d3e/{}",
            "a".repeat(64)
        ))
        .unwrap();
        let v = serde_json::to_value(ContainerInfo::from_cgroup(&m)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "id": "a".repeat(64),
                "pod": { "uid": "0b5f6c2e-8d4a-4f1b-9c3d-2e7a6b5c4d3e" },
                "source": "cgroup",
            })
        );
    }

    #[test]
    fn pod_labels_drop_kubelet_keys() {
        let l: HashMap<String, String> = [
            ("io.kubernetes.pod.name", "p"),
            ("io.kubernetes.pod.uid", "u"),
            ("app", "web"),
        ]
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
        let out = pod_labels(l);
        assert_eq!(out.len(), 1);
        assert_eq!(out["app"], "web");
    }

    fn entry(state: State) -> Entry {
        Entry {
            state,
            matched: None,
            retry_at: None,
            last_used: Instant::now(),
            by_handle: false,
        }
    }

    fn event(cgroup_id: u64, pid: u32) -> Event {
        let mut ev = Event::probe(
            1,
            crate::event::Body::Exit(crate::event::ExitStatus::from_wait_status(0)),
        );
        ev.task = Some(crate::event::Task {
            kind: probe_common::EventKind::ProcessExit,
            flags: 0,
            ts_ns: 1,
            pid,
            tid: pid,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id,
            start_ns: 1,
            parent_start_ns: 0,
            comm: b"x".to_vec(),
        });
        ev
    }

    /// Held events leave in arrival order: a host event behind a pending one waits for it.
    #[test]
    fn hold_queue_keeps_order_and_counts_late_events() {
        let cfg = ContainerConfig {
            wait: Duration::from_secs(60),
            ..Default::default()
        };
        let r = Resolver::start(&cfg).unwrap();
        let info = |src| {
            Arc::new(ContainerInfo {
                id: "c1".into(),
                source: src,
                ..Default::default()
            })
        };
        {
            let mut c = r.cache.lock().unwrap();
            c.insert(42, entry(State::Pending(Some(info("cgroup")))));
            c.insert(43, entry(State::Host));
            c.insert(44, entry(State::Pending(Some(info("cgroup")))));
        }
        let mut stage = ContainerStage::new(r.clone(), &cfg);
        let mut out = Vec::new();
        stage.push(event(43, 1), &mut out);
        assert_eq!(out.len(), 1, "nothing held: straight through");
        out.clear();
        stage.push(event(42, 2), &mut out);
        stage.push(event(43, 3), &mut out);
        assert!(
            out.is_empty(),
            "the host event waits behind the pending one"
        );
        r.cache.lock().unwrap().get_mut(&42).unwrap().state = State::Ready(info("cri"));
        stage.release(false, &mut out);
        let pids: Vec<u32> = out.iter().map(|e| e.task.as_ref().unwrap().pid).collect();
        assert_eq!(pids, [2, 3]);
        assert_eq!(out[0].container.as_ref().unwrap().source, "cri");
        assert!(out[1].container.is_none());
        out.clear();
        // Time up (forced here): the cgroup-only object goes out, counted.
        stage.push(event(44, 4), &mut out);
        assert!(out.is_empty());
        stage.release(true, &mut out);
        assert_eq!(out[0].container.as_ref().unwrap().source, "cgroup");
        assert_eq!(r.stats.emitted_without_metadata.load(Relaxed), 1);
        assert_eq!(r.stats.held.load(Relaxed), 2);
        assert!(stage.is_empty());
    }

    /// A cgroup id that names a real cgroup2 directory resolves to its path.
    #[test]
    fn own_cgroup_resolves_through_a_file_handle() {
        let Some(fs) = CgroupFs::find() else { return };
        let Some(rel) = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|s| cgroup::v2_path(&s).map(str::to_owned))
        else {
            return;
        };
        use std::os::unix::fs::MetadataExt as _;
        let dir = fs.mount.join(rel.trim_start_matches('/'));
        let Ok(md) = std::fs::metadata(&dir) else {
            return;
        };
        match fs.path(md.ino()) {
            Some(p) => assert_eq!(p.trim_end_matches('/'), rel.trim_end_matches('/')),
            // Without CAP_DAC_READ_SEARCH (not root) handles are refused: /proc is the fallback.
            None => assert!(!nix::unistd::Uid::effective().is_root()),
        }
        assert!(fs.exists(md.ino()) || !nix::unistd::Uid::effective().is_root());
    }
}
