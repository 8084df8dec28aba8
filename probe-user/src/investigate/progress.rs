//! The progress bar on stderr: shown only when stderr is a terminal and the input has taken
//! more than about a second, so short runs and pipes see nothing. A thread of its own draws
//! it, so a bar shows up (and moves) even while a read blocks, e.g. on a slow stdin.
use std::{
    io::{IsTerminal as _, Read, Write},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// After this long a bar appears.
const DELAY: Duration = Duration::from_secs(1);
const REDRAW: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Shared {
    /// Bytes read from disk in the current pass.
    read: Arc<AtomicU64>,
    /// Bytes of the passes already done.
    done: AtomicU64,
    /// Bytes of every pass together, 0 while unknown (a spinner then).
    total: AtomicU64,
    message: Mutex<String>,
    stop: AtomicBool,
}

pub struct Progress {
    shared: Arc<Shared>,
    drawer: Mutex<Option<JoinHandle<()>>>,
}

fn bar(total: u64) -> ProgressBar {
    if total > 0 {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
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
    }
}

fn draw(s: Arc<Shared>) {
    let started = Instant::now();
    while started.elapsed() < DELAY {
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(REDRAW);
    }
    let mut shown: Option<(ProgressBar, bool)> = None;
    while !s.stop.load(Ordering::Relaxed) {
        let total = s.total.load(Ordering::Relaxed);
        // A spinner becomes a bar once the size is known (after stdin is spooled).
        if shown
            .as_ref()
            .is_none_or(|(_, sized)| *sized != (total > 0))
        {
            if let Some((b, _)) = shown.take() {
                b.finish_and_clear();
            }
            shown = Some((bar(total), total > 0));
        }
        if let Some((b, _)) = &shown {
            if total > 0 {
                b.set_length(total);
            }
            b.set_message(s.message.lock().map(|m| m.clone()).unwrap_or_default());
            b.set_position(s.done.load(Ordering::Relaxed) + s.read.load(Ordering::Relaxed));
        }
        std::thread::sleep(REDRAW);
    }
    if let Some((b, _)) = shown {
        b.finish_and_clear();
    }
}

impl Progress {
    /// A bar that shows up on a terminal's stderr.
    pub fn stderr() -> Self {
        Self::new(std::io::stderr().is_terminal())
    }

    /// Never shows anything (tests, library use).
    pub fn hidden() -> Self {
        Self::new(false)
    }

    fn new(enabled: bool) -> Self {
        let shared = Arc::new(Shared::default());
        let drawer = enabled.then(|| {
            let s = shared.clone();
            std::thread::spawn(move || draw(s))
        });
        Progress {
            shared,
            drawer: Mutex::new(drawer),
        }
    }

    pub(super) fn counter(&self) -> Arc<AtomicU64> {
        self.shared.read.clone()
    }

    /// Starts a pass over `bytes` of input; `passes` is how many passes there are in all.
    pub fn pass(&self, message: &str, bytes: u64, passes: u64) {
        let s = &self.shared;
        s.done
            .fetch_add(s.read.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        s.total.store(bytes * passes, Ordering::Relaxed);
        if let Ok(mut m) = s.message.lock() {
            *m = message.to_owned();
        }
    }

    /// Copies stdin into the spool (a spinner while it takes long).
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
            self.shared.read.fetch_add(k as u64, Ordering::Relaxed);
        }
        to.flush()?;
        // The spool's bytes are not part of the passes' total.
        self.shared.read.store(0, Ordering::Relaxed);
        self.shared.done.store(0, Ordering::Relaxed);
        Ok(n)
    }

    /// Removes the bar (before the result is printed).
    pub fn finish(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.drawer.lock().ok().and_then(|mut d| d.take()) {
            let _ = h.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
