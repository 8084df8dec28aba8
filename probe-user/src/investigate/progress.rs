//! The progress bar on stderr: shown only when stderr is a terminal and the input has taken
//! more than about a second, so short runs and pipes see nothing.
use std::{
    io::{IsTerminal as _, Read, Write},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// After this long a bar appears.
const DELAY: Duration = Duration::from_secs(1);

pub struct Progress {
    /// Bytes read from disk in the current pass.
    read: Arc<AtomicU64>,
    state: Mutex<State>,
    enabled: bool,
}

struct State {
    started: Instant,
    bar: Option<ProgressBar>,
    /// Bytes of every pass together (passes × input size), 0 while unknown.
    total: u64,
    /// Bytes of the passes already done.
    done: u64,
    message: String,
}

impl Progress {
    /// A bar that shows up on a terminal's stderr (not when `NO_PROGRESS`-like callers ask
    /// `hidden`).
    pub fn stderr() -> Self {
        Self::new(std::io::stderr().is_terminal())
    }

    /// Never shows anything (tests, library use).
    pub fn hidden() -> Self {
        Self::new(false)
    }

    fn new(enabled: bool) -> Self {
        Progress {
            read: Arc::new(AtomicU64::new(0)),
            state: Mutex::new(State {
                started: Instant::now(),
                bar: None,
                total: 0,
                done: 0,
                message: String::new(),
            }),
            enabled,
        }
    }

    pub(super) fn counter(&self) -> Arc<AtomicU64> {
        self.read.clone()
    }

    /// Starts a pass over `bytes` of input; `passes` is how many passes there are in all.
    pub fn pass(&self, message: &str, bytes: u64, passes: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.done += self.read.swap(0, Ordering::Relaxed);
        s.total = bytes * passes;
        s.message = message.to_owned();
        if let Some(b) = &s.bar {
            b.set_length(s.total);
            b.set_message(s.message.clone());
        }
    }

    /// Called often (every few thousand lines): updates the bar, creating it once the delay
    /// has passed.
    pub fn tick(&self) {
        if !self.enabled {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let pos = s.done + self.read.load(Ordering::Relaxed);
        if s.bar.is_none() && s.started.elapsed() >= DELAY {
            let bar = if s.total > 0 {
                ProgressBar::with_draw_target(Some(s.total), ProgressDrawTarget::stderr())
                    .with_style(
                        ProgressStyle::with_template(
                            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    )
            } else {
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                    ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                )
            };
            bar.set_message(s.message.clone());
            s.bar = Some(bar);
        }
        if let Some(b) = &s.bar {
            b.set_position(pos);
        }
    }

    /// Copies stdin into the spool, with a spinner while it takes long.
    pub(super) fn spool(&self, from: &mut impl Read, to: &mut impl Write) -> std::io::Result<u64> {
        self.pass("reading stdin", 0, 1);
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let k = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            to.write_all(&buf[..k])?;
            n += k as u64;
            self.read.fetch_add(k as u64, Ordering::Relaxed);
            self.tick();
        }
        to.flush()?;
        // The spool's bytes are not part of the passes' total.
        self.read.store(0, Ordering::Relaxed);
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.done = 0;
        if let Some(b) = s.bar.take() {
            b.finish_and_clear();
        }
        Ok(n)
    }

    /// Removes the bar (before the result is printed).
    pub fn finish(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = s.bar.take() {
            b.finish_and_clear();
        }
    }
}
