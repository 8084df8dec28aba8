//! Docker Engine API (also served by podman's compat service) over a unix socket, with hyper:
//! one `GET /containers/<id>/json` per cache miss.
use std::{collections::BTreeMap, path::Path, time::Duration};

use http_body_util::BodyExt as _;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot connect: {0}")]
    Connect(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("timed out")]
    Timeout,
}

/// The part of `ContainerInspect` we use.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    #[serde(default)]
    pub id: String,
    /// `/name` (Docker and podman prefix a slash).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub config: Option<InspectConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `Ok(None)`: the engine does not know the container (404).
pub async fn inspect(sock: &Path, id: &str) -> Result<Option<Inspect>, DockerError> {
    let call = async {
        let stream = tokio::net::UnixStream::connect(sock).await?;
        let (mut tx, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("/containers/{id}/json"))
            .header("host", "localhost")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
        let resp = tx.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        match status {
            200 => Ok(Some(serde_json::from_slice(&body)?)),
            404 => Ok(None),
            s => Err(DockerError::Status(s)),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .map_err(|_| DockerError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_and_podman_inspect() {
        let j = r#"{"Id":"abc","Name":"/web","Config":{"Image":"nginx:1","Labels":{"a":"b"},"Env":["X=1"]},"State":{}}"#;
        let i: Inspect = serde_json::from_str(j).unwrap();
        assert_eq!(i.name, "/web");
        let c = i.config.unwrap();
        assert_eq!(c.image, "nginx:1");
        assert_eq!(c.labels.unwrap()["a"], "b");
        // podman may send null labels.
        let i: Inspect = serde_json::from_str(r#"{"Id":"x","Config":{"Labels":null}}"#).unwrap();
        assert!(i.config.unwrap().labels.is_none());
    }
}
