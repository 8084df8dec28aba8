//! Syslog (RFC 5424) over TCP with octet-counting framing (RFC 6587), UDP or a unix datagram
//! socket. The MSG part is the encoded event line, unchanged. Runs on its own thread behind a
//! bounded queue; a receiver that is down is retried with backoff until the queue overflows
//! (counted, source `queue`); a message the transport cannot carry is counted (source `sink`).
use std::{
    io::Write as _,
    net::{TcpStream, ToSocketAddrs as _, UdpSocket},
    os::unix::net::UnixDatagram,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{
    otlp::Backoff,
    queue::{nap, LossCounters, Queue},
    settings::{
        default_app, default_facility, default_queue, default_shutdown, humantime_serde_ms,
        SinkSpecError,
    },
    RecordMeta,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    Tcp,
    Udp,
    Unix,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `tcp://HOST:PORT` (octet-counting framing), `udp://HOST:PORT` or `unix:///PATH` (datagram).
    pub address: String,
    #[serde(default = "default_facility")]
    pub facility: String,
    #[serde(default = "default_app")]
    pub app_name: String,
    #[serde(default = "default_queue")]
    pub queue_size: usize,
    #[serde(default = "default_shutdown", with = "humantime_serde_ms")]
    pub shutdown_timeout: Duration,
}

impl SyslogConfig {
    /// Splits the address into transport and target (host:port or path).
    pub fn target(&self) -> Result<(SyslogTransport, String), SinkSpecError> {
        let bad = || SinkSpecError::BadSyslogAddress(self.address.clone());
        let (scheme, rest) = self.address.split_once("://").ok_or_else(bad)?;
        let t = match scheme {
            "tcp" => SyslogTransport::Tcp,
            "udp" => SyslogTransport::Udp,
            "unix" => SyslogTransport::Unix,
            _ => return Err(bad()),
        };
        if rest.is_empty() || (t != SyslogTransport::Unix && !rest.contains(':')) {
            return Err(bad());
        }
        Ok((t, rest.to_owned()))
    }
}

/// Largest datagram we send; bigger messages are counted as lost rather than cut.
const MAX_DATAGRAM: usize = 65_000;

pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// A header field: printable US-ASCII without spaces, at most `max` long, `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v
    }
}

/// Formats one RFC 5424 message for a record (without transport framing).
pub fn format_message(rec: &[u8], facility: u8, host: &str, app: &str, pid: u32) -> Vec<u8> {
    let meta = RecordMeta::of(rec);
    // alerts by level (warning and above), warning for losses, informational otherwise
    let severity = match (meta.kind.as_deref(), meta.level.as_deref()) {
        (Some("alert"), Some("critical")) => 1,
        (Some("alert"), Some("high")) => 2,
        (Some("alert"), Some("medium")) => 3,
        (Some("alert"), _) | (Some("probe.loss"), _) => 4,
        _ => 6,
    };
    let ts = meta
        .ts_ns
        .and_then(|ns| {
            chrono::DateTime::from_timestamp(
                (ns / 1_000_000_000) as i64,
                (ns % 1_000_000_000) as u32,
            )
        })
        .unwrap_or_else(chrono::Utc::now);
    let mut out = format!(
        "<{}>1 {} {} {} {} {} - ",
        facility as u32 * 8 + severity,
        // TIME-SECFRAC allows at most 6 digits.
        ts.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        header_field(host, 255),
        header_field(app, 48),
        pid,
        header_field(meta.kind.as_deref().unwrap_or(""), 32),
    )
    .into_bytes();
    out.extend_from_slice(rec);
    out
}

enum Conn {
    Tcp(Option<TcpStream>),
    Udp(Option<UdpSocket>),
    Unix(Option<UnixDatagram>),
}

struct Sender {
    transport: SyslogTransport,
    target: String,
    conn: Conn,
    timeout: Duration,
}

#[derive(Debug)]
enum SendError {
    /// Try again later (receiver down, connection lost).
    Retry(std::io::Error),
    /// This message can never go (too large for a datagram).
    TooBig,
}

impl Sender {
    fn send(&mut self, msgs: &[Vec<u8>]) -> Result<(), (usize, SendError)> {
        let retry = |i, e| Err((i, SendError::Retry(e)));
        match &mut self.conn {
            Conn::Tcp(slot) => {
                if slot.is_none() {
                    let addr = match self.target.to_socket_addrs().map(|mut a| a.next()) {
                        Ok(Some(a)) => a,
                        Ok(None) => return retry(0, std::io::ErrorKind::NotFound.into()),
                        Err(e) => return retry(0, e),
                    };
                    match TcpStream::connect_timeout(&addr, self.timeout) {
                        Ok(s) => {
                            let _ = s.set_write_timeout(Some(self.timeout));
                            let _ = s.set_nodelay(true);
                            *slot = Some(s);
                        }
                        Err(e) => return retry(0, e),
                    }
                }
                let Some(s) = slot.as_mut() else {
                    return retry(0, std::io::ErrorKind::NotConnected.into());
                };
                let mut framed = Vec::new();
                for m in msgs {
                    framed.extend_from_slice(format!("{} ", m.len()).as_bytes());
                    framed.extend_from_slice(m);
                }
                // A connection that broke mid-batch resends the whole batch (at-least-once).
                if let Err(e) = s.write_all(&framed).and_then(|_| s.flush()) {
                    *slot = None;
                    return retry(0, e);
                }
                Ok(())
            }
            Conn::Udp(slot) => {
                if slot.is_none() {
                    let bind = if self.target.starts_with('[') {
                        "[::]:0"
                    } else {
                        "0.0.0.0:0"
                    };
                    let s = UdpSocket::bind(bind).and_then(|s| s.connect(&self.target).map(|_| s));
                    match s {
                        Ok(s) => *slot = Some(s),
                        Err(e) => return retry(0, e),
                    }
                }
                let Some(s) = slot.as_ref() else {
                    return retry(0, std::io::ErrorKind::NotConnected.into());
                };
                for (i, m) in msgs.iter().enumerate() {
                    if m.len() > MAX_DATAGRAM {
                        return Err((i, SendError::TooBig));
                    }
                    if let Err(e) = s.send(m) {
                        return retry(i, e);
                    }
                }
                Ok(())
            }
            Conn::Unix(slot) => {
                if slot.is_none() {
                    match UnixDatagram::unbound() {
                        Ok(s) => *slot = Some(s),
                        Err(e) => return retry(0, e),
                    }
                }
                let Some(s) = slot.as_ref() else {
                    return retry(0, std::io::ErrorKind::NotConnected.into());
                };
                for (i, m) in msgs.iter().enumerate() {
                    match s.send_to(m, &self.target) {
                        Ok(_) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                            return Err((i, SendError::TooBig))
                        }
                        Err(e) => return retry(i, e),
                    }
                }
                Ok(())
            }
        }
    }
}

/// The sink thread's loop.
pub fn worker(cfg: SyslogConfig, host: String, queue: Arc<Queue>, losses: Arc<LossCounters>) {
    let Ok((transport, target)) = cfg.target() else {
        return;
    };
    let facility = facility_code(&cfg.facility).unwrap_or(1);
    let pid = std::process::id();
    let mut sender = Sender {
        transport,
        target,
        conn: match transport {
            SyslogTransport::Tcp => Conn::Tcp(None),
            SyslogTransport::Udp => Conn::Udp(None),
            SyslogTransport::Unix => Conn::Unix(None),
        },
        timeout: Duration::from_secs(5),
    };
    let mut closing: Option<Instant> = None;
    let mut backoff = Backoff::default();
    loop {
        let (batch, closed) = queue.pop_batch(256, Duration::from_millis(200));
        if closed && closing.is_none() {
            closing = Some(Instant::now() + cfg.shutdown_timeout);
        }
        let mut msgs: Vec<Vec<u8>> = batch
            .iter()
            .map(|r| format_message(r, facility, &host, &cfg.app_name, pid))
            .collect();
        while !msgs.is_empty() {
            match sender.send(&msgs) {
                Ok(()) => {
                    backoff.reset();
                    msgs.clear();
                }
                Err((i, SendError::TooBig)) => {
                    losses.sink.fetch_add(1, Relaxed);
                    log::warn!(
                        "syslog: a {} byte message is too large, dropped",
                        msgs[i].len()
                    );
                    msgs.drain(..=i);
                }
                Err((i, SendError::Retry(e))) => {
                    msgs.drain(..i);
                    log::debug!("syslog {:?}: {e}; retrying", sender.transport);
                    if closing.is_none() && queue.is_closed() {
                        closing = Some(Instant::now() + cfg.shutdown_timeout);
                    }
                    if !nap(backoff.delay(None), closing) {
                        let left = msgs.len() as u64 + queue.len() as u64;
                        losses.sink.fetch_add(left, Relaxed);
                        log::warn!("syslog: receiver unreachable at exit, {left} records dropped");
                        return;
                    }
                }
            }
        }
        if closed && queue.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_header() {
        let line = br#"{"ts":"2024-01-02T03:04:05.123456789Z","kind":"process.exec","seq":1}"#;
        let m = format_message(line, 16, "my host", "tprobe", 42);
        let s = String::from_utf8(m).unwrap();
        assert_eq!(
            s,
            format!(
                "<134>1 2024-01-02T03:04:05.123456Z myhost tprobe 42 process.exec - {}",
                std::str::from_utf8(line).unwrap()
            )
        );
        let loss = format_message(br#"{"kind":"probe.loss"}"#, 1, "", "", 1);
        assert!(loss.starts_with(b"<12>1 "));
        assert!(String::from_utf8(loss)
            .unwrap()
            .contains(" - 1 probe.loss - "));
        assert_eq!(facility_code("local7"), Some(23));
        assert_eq!(facility_code("nope"), None);
    }
}
