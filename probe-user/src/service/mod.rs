//! The node service: `/metrics` and `/healthz` (`http`), the metrics registry (`metrics`,
//! `prom`), and its flags.
//!
//! Flags for running as a node service (a Kubernetes DaemonSet): the `/metrics` and `/healthz`
//! server, stall detection, the shutdown budget and where the host's /proc is mounted.
pub mod http;
pub mod metrics;
pub mod prom;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Where `/metrics` and `/healthz` listen unless told otherwise: loopback only.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9810";

#[derive(clap::Args, Debug, Clone)]
pub struct ServiceArgs {
    /// Address of the `/metrics` and `/healthz` HTTP server [default: 127.0.0.1:9810; when the
    /// default port is taken the server is skipped with a warning; port 0 picks a free port].
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Do not start the `/metrics` and `/healthz` server.
    #[arg(long, conflicts_with = "metrics_addr")]
    pub no_metrics: bool,
    /// `/healthz` fails once the ring buffer drain or a sink write has been stuck this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,
    /// Longest time the shutdown (final drain, sink flush) may take before tprobe exits anyway
    /// (keep it below Kubernetes' terminationGracePeriodSeconds).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// The host's procfs (e.g. `/host/proc` in a container that mounts it there).
    #[arg(long, env = "TPROBE_PROC_ROOT", default_value = "/proc")]
    pub proc_root: PathBuf,
}

impl Default for ServiceArgs {
    fn default() -> Self {
        ServiceArgs {
            metrics_addr: None,
            no_metrics: false,
            stall_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(20),
            proc_root: "/proc".into(),
        }
    }
}

impl ServiceArgs {
    /// The address to serve on and whether failing to bind it is fatal (only when asked for).
    pub fn listen(&self) -> Option<(SocketAddr, bool)> {
        if self.no_metrics {
            return None;
        }
        Some(match self.metrics_addr {
            Some(a) => (a, true),
            None => (DEFAULT_METRICS_ADDR.parse().expect("valid default"), false),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::config::cli::{Cli, Command};

    fn service(args: &[&str]) -> Result<super::ServiceArgs, clap::Error> {
        let cli = Cli::try_parse_from(["tprobe", "run"].iter().chain(args))?;
        match cli.command {
            Command::Run(r) => Ok(*r.service),
            _ => unreachable!(),
        }
    }

    #[test]
    fn listen_address_and_whether_it_is_required() {
        let (addr, required) = service(&[]).unwrap().listen().unwrap();
        assert_eq!(
            (addr.to_string().as_str(), required),
            ("127.0.0.1:9810", false)
        );
        let (addr, required) = service(&["--metrics-addr", "[::]:9900"])
            .unwrap()
            .listen()
            .unwrap();
        assert_eq!((addr.to_string().as_str(), required), ("[::]:9900", true));
        assert!(service(&["--no-metrics"]).unwrap().listen().is_none());
        assert!(service(&["--no-metrics", "--metrics-addr", "127.0.0.1:1"]).is_err());
        assert!(service(&["--metrics-addr", "localhost:80"]).is_err());
        let s = service(&["--stall-timeout", "3s", "--shutdown-timeout", "1m"]).unwrap();
        assert_eq!(s.stall_timeout.as_secs(), 3);
        assert_eq!(s.shutdown_timeout.as_secs(), 60);
    }
}
