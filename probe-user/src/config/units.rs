//! Units of flags and config values: sizes (`16M`) and durations (`30s`). A leaf.
use std::time::Duration;

use super::error::ConfigError;

/// Parses `4096`, `64K`, `16M`, `1G` (powers of 1024; `KiB` etc. accepted too).
pub fn parse_size(s: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ConfigError::BadSize(s.to_owned()))?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(ConfigError::BadSize(s.to_owned())),
    };
    n.checked_mul(mul).ok_or(ConfigError::BadSize(s.to_owned()))
}

pub fn check_ring_size(bytes: u64) -> Result<u32, ConfigError> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    if !bytes.is_power_of_two() || !bytes.is_multiple_of(page) || bytes > u32::MAX as u64 / 2 {
        return Err(ConfigError::RingSize(bytes, page));
    }
    Ok(bytes as u32)
}

/// `30s`, `5m`, `100ms`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("bad value: {s:?} is not a duration like 30s, 5m or 100ms ({e})"))
}
