//! Sink settings: a serde-friendly struct (for the config file) and the `--sink` flag syntax
//! `TYPE[:TARGET][,key=value...]`, e.g. `file:/var/log/tprobe.json,max_size=64M,keep=5,gzip`.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{otlp::OtlpConfig, rotate::FileConfig, settings::*, syslog::SyslogConfig};
use crate::config::units::parse_size;

/// One output. Several may be active at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    Stdout,
    File(FileConfig),
    Otlp(OtlpConfig),
    Syslog(SyslogConfig),
}

impl SinkConfig {
    /// A short name used in loss reports (`probe.loss` `kind`) and logs.
    pub fn name(&self) -> String {
        match self {
            SinkConfig::Stdout => "stdout".into(),
            SinkConfig::File(f) => format!("file:{}", f.path.display()),
            SinkConfig::Otlp(o) => format!("otlp:{}", o.endpoint),
            SinkConfig::Syslog(s) => format!("syslog:{}", s.address),
        }
    }
}

/// Parses one `--sink` value.
pub fn parse_sink(spec: &str) -> Result<SinkConfig, SinkSpecError> {
    let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let mut parts = rest.split(',');
    let target = parts.next().unwrap_or("").trim().to_owned();
    let mut opts: Vec<(String, String)> = Vec::new();
    for p in parts.filter(|p| !p.trim().is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, "true"));
        opts.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let bad = |k: &str, v: &str| SinkSpecError::BadValue(spec.into(), k.into(), v.into());
    let unknown = |k: &str| SinkSpecError::UnknownOption(spec.into(), k.into());
    let need_target = || {
        if target.is_empty() {
            Err(SinkSpecError::MissingTarget(spec.into()))
        } else {
            Ok(target.clone())
        }
    };
    let boolean = |k: &str, v: &str| match v {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(bad(k, v)),
    };
    let size = |k: &str, v: &str| parse_size(v).map_err(|_| bad(k, v));
    let dur = |k: &str, v: &str| humantime::parse_duration(v).map_err(|_| bad(k, v));
    let count = |k: &str, v: &str| {
        v.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(k, v))
    };
    match kind.trim() {
        "stdout" | "-" => match opts.first() {
            Some((k, _)) => Err(unknown(k)),
            None => Ok(SinkConfig::Stdout),
        },
        "file" => {
            let mut c = FileConfig {
                path: need_target()?.into(),
                max_size: None,
                keep: default_keep(),
                gzip: false,
            };
            for (k, v) in &opts {
                match k.as_str() {
                    "max_size" | "size" => c.max_size = Some(size(k, v)?.max(1)),
                    "keep" => c.keep = count(k, v)?,
                    "gzip" => c.gzip = boolean(k, v)?,
                    _ => return Err(unknown(k)),
                }
            }
            Ok(SinkConfig::File(c))
        }
        "otlp" => {
            let mut c = OtlpConfig {
                endpoint: need_target()?,
                gzip: true,
                batch_size: default_batch(),
                batch_timeout: default_batch_timeout(),
                queue_size: default_queue(),
                spool_dir: None,
                spool_max_bytes: default_spool_max(),
                retry_max_elapsed: default_retry_max(),
                timeout: default_timeout(),
                shutdown_timeout: default_shutdown(),
                headers: BTreeMap::new(),
            };
            if !(c.endpoint.starts_with("http://") || c.endpoint.starts_with("https://")) {
                return Err(bad("endpoint", &c.endpoint));
            }
            for (k, v) in &opts {
                match k.as_str() {
                    "gzip" => c.gzip = boolean(k, v)?,
                    "batch" | "batch_size" => c.batch_size = count(k, v)?,
                    "batch_timeout" => c.batch_timeout = dur(k, v)?,
                    "queue" | "queue_size" => c.queue_size = count(k, v)?,
                    "spool" | "spool_dir" => c.spool_dir = Some(v.into()),
                    "spool_max" | "spool_max_bytes" => c.spool_max_bytes = size(k, v)?,
                    "retry_max" | "retry_max_elapsed" => c.retry_max_elapsed = dur(k, v)?,
                    "timeout" => c.timeout = dur(k, v)?,
                    "shutdown_timeout" => c.shutdown_timeout = dur(k, v)?,
                    "header" => {
                        let (hk, hv) = v.split_once(':').ok_or_else(|| bad(k, v))?;
                        c.headers.insert(hk.trim().into(), hv.trim().into());
                    }
                    _ => return Err(unknown(k)),
                }
            }
            Ok(SinkConfig::Otlp(c))
        }
        "syslog" => {
            let mut c = SyslogConfig {
                address: need_target()?,
                facility: default_facility(),
                app_name: default_app(),
                queue_size: default_queue(),
                shutdown_timeout: default_shutdown(),
            };
            c.target()?;
            for (k, v) in &opts {
                match k.as_str() {
                    "facility" => {
                        if crate::sink::syslog::facility_code(v).is_none() {
                            return Err(bad(k, v));
                        }
                        c.facility = v.clone();
                    }
                    "app_name" | "app" => c.app_name = v.clone(),
                    "queue" | "queue_size" => c.queue_size = count(k, v)?,
                    "shutdown_timeout" => c.shutdown_timeout = dur(k, v)?,
                    _ => return Err(unknown(k)),
                }
            }
            Ok(SinkConfig::Syslog(c))
        }
        other => Err(SinkSpecError::UnknownType(other.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::syslog::SyslogTransport;

    #[test]
    fn specs() {
        assert_eq!(parse_sink("stdout").unwrap(), SinkConfig::Stdout);
        let SinkConfig::File(f) = parse_sink("file:/tmp/x.json,max_size=1M,keep=3,gzip").unwrap()
        else {
            panic!()
        };
        assert_eq!(f.max_size, Some(1 << 20));
        assert_eq!(f.keep, 3);
        assert!(f.gzip);
        let SinkConfig::Otlp(o) = parse_sink(
            "otlp:http://127.0.0.1:4318/v1/logs,spool=/tmp/s,spool_max=10M,queue=5,header=x-a:b",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.spool_dir, Some("/tmp/s".into()));
        assert_eq!(o.queue_size, 5);
        assert_eq!(o.headers["x-a"], "b");
        let SinkConfig::Syslog(s) = parse_sink("syslog:unix:///dev/log,facility=local3").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            s.target().unwrap(),
            (SyslogTransport::Unix, "/dev/log".into())
        );
        assert!(matches!(
            parse_sink("syslog:tcp://nohostport"),
            Err(SinkSpecError::BadSyslogAddress(_))
        ));
        assert!(matches!(
            parse_sink("file"),
            Err(SinkSpecError::MissingTarget(_))
        ));
        assert!(matches!(
            parse_sink("file:/x,keep=0"),
            Err(SinkSpecError::BadValue(..))
        ));
        assert!(matches!(
            parse_sink("file:/x,color"),
            Err(SinkSpecError::UnknownOption(..))
        ));
        assert!(matches!(
            parse_sink("kafka:x"),
            Err(SinkSpecError::UnknownType(_))
        ));
        assert!(parse_sink("syslog:udp://127.0.0.1:514,facility=nope").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let c = parse_sink("otlp:http://h:4318,batch_timeout=2s").unwrap();
        let j = serde_json::to_string(&c).unwrap();
        assert!(j.contains("\"type\":\"otlp\""), "{j}");
        let back: SinkConfig = serde_json::from_str(&j).unwrap();
        assert_eq!(back, c);
        let min: SinkConfig =
            serde_json::from_str(r#"{"type":"file","path":"/tmp/a","max_size":100}"#).unwrap();
        assert!(matches!(min, SinkConfig::File(FileConfig { keep: 5, .. })));
    }
}
