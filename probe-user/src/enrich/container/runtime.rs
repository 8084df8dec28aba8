//! The runtime APIs behind a container lookup: CRI `runtime.v1`, containerd's own API and the
//! Docker Engine API, each over a unix socket connected lazily.
use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Mutex,
    },
    time::{Duration, Instant},
};

use super::{
    cgroup::{CgroupMatch, Runtime},
    config::ContainerConfig,
    stats::ContainerStats,
};
use crate::event::container::{ContainerInfo, PodInfo};
/// Error of a runtime API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
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

pub struct Clients {
    cri: Option<Socket>,
    /// `runtime_name` of the CRI Version call, asked once.
    cri_runtime: tokio::sync::OnceCell<String>,
    containerd: Option<Socket>,
    docker: Option<Socket>,
    namespaces: Vec<String>,
}

pub enum Outcome {
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
pub fn pod_labels(labels: HashMap<String, String>) -> BTreeMap<String, String> {
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

    pub async fn lookup(&self, m: &CgroupMatch, stats: &ContainerStats) -> Outcome {
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

impl Clients {
    /// Clients for the sockets `cfg` names (each connects on first use).
    pub fn new(cfg: &ContainerConfig) -> Self {
        Clients {
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
        }
    }
}
