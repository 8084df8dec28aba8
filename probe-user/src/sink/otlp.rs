//! OTLP logs over HTTP (protobuf, optionally gzip) to an OpenTelemetry collector.
//!
//! Runs on its own thread behind a bounded queue. Retryable failures (connection errors, 429,
//! 502, 503, 504) back off exponentially with jitter and honour `Retry-After`. Without a spool a
//! batch is retried in place for `retry_max_elapsed` and then dropped (counted, source `sink`);
//! meanwhile the queue fills and overflows (counted, source `queue`). With a spool, a batch that
//! cannot be sent goes to disk at once and is replayed in order when the collector answers
//! again (at-least-once); a full spool drops (counted, source `spool`). Any other status is a
//! permanent rejection (counted, source `sink`), as are records the collector reports rejected.
use std::{
    io::{Read as _, Write as _},
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use opentelemetry_proto::tonic::{
    collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse},
    common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
};
use prost::Message as _;

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    queue::{nap, LossCounters, Queue},
    settings::{
        default_batch, default_batch_timeout, default_queue, default_retry_max, default_shutdown,
        default_spool_max, default_timeout, humantime_serde_ms, yes,
    },
    spool::{Spool, SpoolError},
    RecordMeta,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// OTLP/HTTP logs URL; `/v1/logs` is appended when the URL has no path.
    pub endpoint: String,
    #[serde(default = "yes")]
    pub gzip: bool,
    /// Records per export request.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest time a record waits for its batch to fill.
    #[serde(default = "default_batch_timeout", with = "humantime_serde_ms")]
    pub batch_timeout: Duration,
    /// Records held in memory while the collector is slow or down; more are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue_size: usize,
    /// Directory for an on-disk spool: batches that cannot be sent wait there (at-least-once).
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    #[serde(default = "default_spool_max")]
    pub spool_max_bytes: u64,
    /// Without a spool: give a batch up (counted) after retrying this long.
    #[serde(default = "default_retry_max", with = "humantime_serde_ms")]
    pub retry_max_elapsed: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde_ms")]
    pub timeout: Duration,
    /// Longest time spent sending what is left at exit.
    #[serde(default = "default_shutdown", with = "humantime_serde_ms")]
    pub shutdown_timeout: Duration,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);

/// How one export attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; the number of records the collector says it rejected.
    Sent { rejected: u64 },
    /// Worth retrying, after at least the given delay when the server said so.
    Retry(Option<Duration>, String),
    /// Refused for good.
    Permanent(String),
}

pub fn is_retryable_status(code: u16) -> bool {
    matches!(code, 429 | 502 | 503 | 504)
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s).min(RETRY_AFTER_MAX));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let when = UNIX_EPOCH + Duration::from_secs(when.timestamp().max(0) as u64);
    Some(
        when.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(RETRY_AFTER_MAX),
    )
}

/// Exponential backoff with equal jitter: half the step fixed, half random.
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    pub fn delay(&mut self, server_hint: Option<Duration>) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let half = step / 2;
        let jittered = half + half.mul_f64(fastrand::f64());
        server_hint.map_or(jittered, |h| h.max(jittered))
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// One log record per encoded event: the body is the line as written to the other sinks.
pub fn log_record(rec: &[u8], observed_ns: u64) -> LogRecord {
    let body = String::from_utf8_lossy(rec).into_owned();
    let meta = RecordMeta::of(rec);
    let mut attributes = Vec::new();
    if let Some(k) = &meta.kind {
        attributes.push(kv("tprobe.kind", any_value::Value::StringValue(k.clone())));
    }
    if let Some(s) = meta.seq {
        attributes.push(kv("tprobe.seq", any_value::Value::IntValue(s as i64)));
    }
    let (severity_number, severity_text) = match (meta.kind.as_deref(), meta.level.as_deref()) {
        // Alerts are WARN or above, by level.
        (Some("alert"), Some("critical")) => (21, "FATAL"),
        (Some("alert"), Some("high")) => (18, "ERROR2"),
        (Some("alert"), Some("medium")) => (17, "ERROR"),
        (Some("alert"), _) => (13, "WARN"),
        (Some("probe.loss"), _) => (13, "WARN"),
        _ => (9, "INFO"),
    };
    LogRecord {
        time_unix_nano: meta.ts_ns.unwrap_or(observed_ns),
        observed_time_unix_nano: observed_ns,
        severity_number,
        severity_text: severity_text.into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body)),
        }),
        attributes,
        event_name: meta.kind.unwrap_or_default(),
        ..Default::default()
    }
}

pub fn request(records: &[Vec<u8>], host: &str) -> ExportLogsServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv(
                        "service.name",
                        any_value::Value::StringValue("tprobe".into()),
                    ),
                    kv("host.name", any_value::Value::StringValue(host.into())),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "tprobe".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records: records.iter().map(|r| log_record(r, now)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub struct Exporter {
    cfg: OtlpConfig,
    url: String,
    agent: ureq::Agent,
    host: String,
}

impl Exporter {
    pub fn new(cfg: OtlpConfig, host: String) -> Self {
        let mut url = cfg.endpoint.clone();
        let after_scheme = url.split_once("://").map(|x| x.1).unwrap_or("");
        if !after_scheme.contains('/') {
            url.push_str("/v1/logs");
        }
        let agent = ureq::AgentBuilder::new().timeout(cfg.timeout).build();
        Exporter {
            cfg,
            url,
            agent,
            host,
        }
    }

    /// One POST of `records`.
    pub fn export(&self, records: &[Vec<u8>]) -> Outcome {
        let mut body = request(records, &self.host).encode_to_vec();
        let mut req = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/x-protobuf");
        if self.cfg.gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            if enc.write_all(&body).is_ok() {
                if let Ok(z) = enc.finish() {
                    body = z;
                    req = req.set("Content-Encoding", "gzip");
                }
            }
        }
        for (k, v) in &self.cfg.headers {
            req = req.set(k, v);
        }
        match req.send_bytes(&body) {
            Ok(resp) => {
                let mut buf = Vec::new();
                let _ = resp.into_reader().take(1 << 20).read_to_end(&mut buf);
                let rejected = ExportLogsServiceResponse::decode(buf.as_slice())
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| p.rejected_log_records.max(0) as u64)
                    .unwrap_or(0);
                Outcome::Sent { rejected }
            }
            Err(ureq::Error::Status(code, resp)) => {
                let hint = resp
                    .header("Retry-After")
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let msg = format!("HTTP {code}");
                if is_retryable_status(code) {
                    Outcome::Retry(hint, msg)
                } else {
                    Outcome::Permanent(msg)
                }
            }
            Err(e) => Outcome::Retry(None, e.to_string()),
        }
    }
}

/// The sink thread's loop.
pub fn worker(cfg: OtlpConfig, host: String, queue: Arc<Queue>, losses: Arc<LossCounters>) {
    let mut spool = match &cfg.spool_dir {
        Some(d) => match Spool::open(d, cfg.spool_max_bytes) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!(
                    "otlp: cannot open spool {}: {e}; running without",
                    d.display()
                );
                None
            }
        },
        None => None,
    };
    let exp = Exporter::new(cfg.clone(), host);
    let mut backoff = Backoff::default();
    let mut next_try = Instant::now();
    let mut closing: Option<Instant> = None;
    let lost = |n: usize, what: &str, why: &str| {
        log::warn!("otlp: {n} records dropped ({what}): {why}");
    };
    loop {
        // Replay the spool first, oldest batch, when the collector may be back.
        if let Some(sp) = spool.as_mut().filter(|s| !s.is_empty()) {
            if Instant::now() >= next_try {
                match sp.peek() {
                    Some(Ok((recs, damaged))) => {
                        if damaged {
                            log::warn!("otlp: damaged spool batch, sending what could be read");
                        }
                        match exp.export(&recs) {
                            Outcome::Sent { rejected } => {
                                losses.sink.fetch_add(rejected, Relaxed);
                                sp.pop();
                                backoff.reset();
                            }
                            Outcome::Permanent(why) => {
                                losses.sink.fetch_add(recs.len() as u64, Relaxed);
                                lost(recs.len(), "rejected", &why);
                                sp.pop();
                            }
                            Outcome::Retry(hint, why) => {
                                log::debug!("otlp: collector unavailable: {why}");
                                next_try = Instant::now() + backoff.delay(hint);
                            }
                        }
                    }
                    Some(Err(e)) => {
                        log::warn!("otlp: unreadable spool batch dropped: {e}");
                        sp.pop();
                    }
                    None => {}
                }
            }
        }
        let spool_due = spool.as_ref().is_some_and(|s| !s.is_empty()) && {
            let now = Instant::now();
            now >= next_try
        };
        let wait = if spool_due {
            Duration::ZERO
        } else if spool.as_ref().is_some_and(|s| !s.is_empty()) {
            next_try
                .saturating_duration_since(Instant::now())
                .min(cfg.batch_timeout)
        } else {
            cfg.batch_timeout
        };
        let (batch, closed) = queue.pop_batch(cfg.batch_size, wait);
        if closed && closing.is_none() {
            closing = Some(Instant::now() + cfg.shutdown_timeout);
        }
        if !batch.is_empty() {
            match spool.as_mut() {
                Some(sp) => {
                    // Keep order: while older batches wait on disk, new ones queue behind them.
                    let outcome = if sp.is_empty() && Instant::now() >= next_try {
                        exp.export(&batch)
                    } else {
                        Outcome::Retry(None, "spool not empty".into())
                    };
                    match outcome {
                        Outcome::Sent { rejected } => {
                            losses.sink.fetch_add(rejected, Relaxed);
                            backoff.reset();
                        }
                        Outcome::Permanent(why) => {
                            losses.sink.fetch_add(batch.len() as u64, Relaxed);
                            lost(batch.len(), "rejected", &why);
                        }
                        Outcome::Retry(hint, why) => {
                            if sp.is_empty() {
                                next_try = Instant::now() + backoff.delay(hint);
                            }
                            match sp.push(&batch) {
                                Ok(()) => {}
                                Err(e @ SpoolError::Full(_)) => {
                                    losses.spool.fetch_add(batch.len() as u64, Relaxed);
                                    lost(batch.len(), "spool full", &format!("{e}; {why}"));
                                }
                                Err(e) => {
                                    losses.spool.fetch_add(batch.len() as u64, Relaxed);
                                    lost(batch.len(), "spool write", &e.to_string());
                                }
                            }
                        }
                    }
                }
                None => send_with_retries(&exp, &batch, &cfg, &losses, &mut closing, &queue),
            }
        }
        if let Some(dl) = closing {
            let spool_busy = spool.as_ref().is_some_and(|s| !s.is_empty());
            if queue.is_empty() && (!spool_busy || Instant::now() >= dl) {
                if spool_busy {
                    log::warn!(
                        "otlp: collector unreachable at exit; batches stay in the spool for the next run"
                    );
                }
                return;
            }
            if Instant::now() >= dl && spool.is_none() {
                let left = queue.len() as u64;
                losses.sink.fetch_add(left, Relaxed);
                lost(left as usize, "exit", "shutdown timeout");
                return;
            }
            if spool_busy && !spool_due {
                nap(Duration::from_millis(50), closing);
            }
        }
    }
}

fn send_with_retries(
    exp: &Exporter,
    batch: &[Vec<u8>],
    cfg: &OtlpConfig,
    losses: &LossCounters,
    closing: &mut Option<Instant>,
    queue: &Queue,
) {
    let started = Instant::now();
    let mut backoff = Backoff::default();
    loop {
        match exp.export(batch) {
            Outcome::Sent { rejected } => {
                losses.sink.fetch_add(rejected, Relaxed);
                return;
            }
            Outcome::Permanent(why) => {
                losses.sink.fetch_add(batch.len() as u64, Relaxed);
                log::warn!("otlp: {} records rejected: {why}", batch.len());
                return;
            }
            Outcome::Retry(hint, why) => {
                let d = backoff.delay(hint);
                if closing.is_none() && queue.is_closed() {
                    *closing = Some(Instant::now() + cfg.shutdown_timeout);
                }
                if started.elapsed() + d > cfg.retry_max_elapsed || !nap(d, *closing) {
                    losses.sink.fetch_add(batch.len() as u64, Relaxed);
                    log::warn!("otlp: {} records dropped after retries: {why}", batch.len());
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_and_backoff() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("99999", now), Some(RETRY_AFTER_MAX));
        let date = chrono::DateTime::from_timestamp(1_700_000_005, 0)
            .unwrap()
            .to_rfc2822();
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("soon", now), None);
        let mut b = Backoff::default();
        let d1 = b.delay(None);
        assert!(d1 >= BACKOFF_START / 2 && d1 <= BACKOFF_START);
        let d2 = b.delay(Some(Duration::from_secs(4)));
        assert!(d2 >= Duration::from_secs(4));
        for _ in 0..20 {
            assert!(b.delay(None) <= BACKOFF_MAX);
        }
        assert!(is_retryable_status(503) && !is_retryable_status(400));
    }

    #[test]
    fn records_carry_kind_seq_and_time() {
        let line = br#"{"ts":"2024-01-02T03:04:05.000000006Z","kind":"process.exec","seq":7}"#;
        let r = log_record(line, 1);
        assert_eq!(r.time_unix_nano, 1_704_164_645_000_000_006);
        assert_eq!(r.event_name, "process.exec");
        assert_eq!(r.severity_number, 9);
        let req = request(&[line.to_vec(), b"not json".to_vec()], "h");
        let recs = &req.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].time_unix_nano, recs[1].observed_time_unix_nano);
        let bytes = req.encode_to_vec();
        assert_eq!(
            ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap(),
            req
        );
    }

    /// A tiny scripted HTTP server: answers each request with the next (status, extra header)
    /// and records when it came and how many log records it carried.
    fn server(
        script: Vec<(u16, &'static str)>,
    ) -> (String, std::sync::mpsc::Receiver<(Instant, usize)>) {
        use std::io::{BufRead as _, BufReader};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut script = script.into_iter();
            for conn in l.incoming() {
                let Ok(mut c) = conn else { return };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut len = 0;
                let mut gz = false;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    gz |= lower.starts_with("content-encoding: gzip");
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                if gz {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(body.as_slice())
                        .read_to_end(&mut out)
                        .unwrap();
                    body = out;
                }
                let req = ExportLogsServiceRequest::decode(body.as_slice()).unwrap();
                let n = req.resource_logs[0].scope_logs[0].log_records.len();
                let _ = tx.send((Instant::now(), n));
                let (code, hdr) = script.next().unwrap_or((200, ""));
                let resp = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n{hdr}\r\n"
                );
                let _ = c.write_all(resp.as_bytes());
            }
        });
        (url, rx)
    }

    fn cfg(url: &str) -> OtlpConfig {
        match crate::sink::config::parse_sink(&format!(
            "otlp:{url}/v1/logs,batch_timeout=50ms,shutdown_timeout=3s,retry_max=5s"
        ))
        .unwrap()
        {
            crate::sink::config::SinkConfig::Otlp(o) => o,
            _ => unreachable!(),
        }
    }

    fn run(cfg: OtlpConfig, records: &[u8]) -> Arc<LossCounters> {
        let q = Arc::new(Queue::new(100));
        assert_eq!(q.push_lines(records), 0);
        q.close();
        let l = Arc::new(LossCounters::default());
        worker(cfg, "h".into(), q, l.clone());
        l
    }

    #[test]
    fn honours_retry_after_then_delivers() {
        let (url, rx) = server(vec![(503, "Retry-After: 1\r\n"), (429, ""), (200, "")]);
        let l = run(cfg(&url), b"a\nb\nc\n");
        let got: Vec<(Instant, usize)> = rx.try_iter().collect();
        assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), vec![3, 3, 3]);
        assert!(
            got[1].0 - got[0].0 >= Duration::from_secs(1),
            "Retry-After ignored"
        );
        assert_eq!(l.snapshot().map(|x| x.1), [0, 0, 0]);
    }

    #[test]
    fn permanent_rejection_is_counted() {
        let (url, rx) = server(vec![(400, "")]);
        let l = run(cfg(&url), b"a\nb\n");
        assert_eq!(rx.try_iter().count(), 1, "no retry of a 400");
        assert_eq!(l.sink.load(Relaxed), 2);
    }

    #[test]
    fn spool_keeps_batches_and_counts_what_does_not_fit() {
        let dir = std::env::temp_dir().join(format!("tprobe-otlp-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Nobody listens on this port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = cfg(&format!("http://127.0.0.1:{port}"));
        c.spool_dir = Some(dir.clone());
        c.spool_max_bytes = 30;
        c.batch_size = 2;
        c.shutdown_timeout = Duration::from_millis(300);
        // Batches of 2 x (4 + 8) bytes: the first fits in 30 bytes, the second does not.
        let l = run(c.clone(), b"record-1\nrecord-2\nrecord-3\nrecord-4\n");
        assert_eq!(l.spool.load(Relaxed), 2);
        assert_eq!(l.sink.load(Relaxed), 0);
        // The next run with a collector delivers what the spool kept.
        let (url, rx) = server(vec![]);
        c.endpoint = format!("{url}/v1/logs");
        let l = run(c, b"");
        assert_eq!(rx.try_iter().map(|g| g.1).collect::<Vec<_>>(), vec![2]);
        assert_eq!(l.snapshot().map(|x| x.1), [0, 0, 0]);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
