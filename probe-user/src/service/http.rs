//! The small HTTP server of `tprobe run`: `/metrics` (Prometheus text) and `/healthz` (200 when
//! hooks are attached and the drain and sinks keep moving, 503 otherwise). It runs as a task on
//! the runtime's worker thread, apart from the drain loop, so it answers even when the drain is
//! stuck, which is what a liveness probe needs.
use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn, Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::{
    metrics::Stats,
    prom::{self, Health},
};

struct State {
    registry: Registry,
    stats: Arc<Stats>,
    stall_after: Duration,
}

/// A running server; dropping it stops accepting connections.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves in the background.
pub async fn start(
    addr: SocketAddr,
    registry: Registry,
    stats: Arc<Stats>,
    stall_after: Duration,
) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State {
        registry,
        stats,
        stall_after,
    });
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    log::debug!("metrics server accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let st = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let st = st.clone();
                    async move { Ok::<_, Infallible>(handle(&req, &st)) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    log::debug!("metrics connection: {e}");
                }
            });
        }
    });
    Ok(Server { addr, task })
}

fn reply(status: u16, ctype: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn handle<B>(req: &Request<B>, st: &State) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(405, "text/plain", "only GET\n".into());
    }
    match req.uri().path() {
        "/metrics" => reply(200, prom::CONTENT_TYPE, prom::render(Some(&st.registry))),
        "/healthz" | "/readyz" => {
            let h = Health::of(&st.stats, st.stall_after);
            let code = if h.is_ok() { 200 } else { 503 };
            reply(code, "text/plain", format!("{h}\n"))
        }
        _ => reply(404, "text/plain", "try /metrics or /healthz\n".into()),
    }
}
