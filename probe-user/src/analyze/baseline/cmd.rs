//! `tprobe baseline show FILE`, `merge A B... -o OUT`, `diff A B`: profiles for people and
//! fleets. Each returns the text to print and the exit code.
use std::{fmt::Write as _, path::Path};

use super::{
    profile::{diff, time_string, Profile},
    store::{self, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot merge profiles of different workloads: {0} is `{1}`, {2} is `{3}`")]
    Workloads(String, String, String, String),
}

/// A person's view of a profile.
pub fn show(path: &Path) -> Result<String, CmdError> {
    let p = store::read(path)?;
    Ok(render(&p))
}

pub fn render(p: &Profile) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "workload  {}", p.workload);
    let _ = writeln!(s, "state     {}", p.state.as_str());
    let _ = writeln!(s, "learning  since {}", time_string(p.learning_since));
    if let Some(w) = p.watching_since {
        let _ = writeln!(s, "watching  since {}", time_string(w));
    }
    let _ = writeln!(
        s,
        "last new  {}\nevents    {} while learning",
        time_string(p.last_new),
        p.events
    );
    for (dim, vals) in &p.dimensions {
        let _ = writeln!(s, "\n{dim} ({} values)", vals.len());
        for (v, seen) in vals {
            let _ = writeln!(
                s,
                "  {v}\n      {} times, first {}, last {}",
                seen.count,
                time_string(seen.first),
                time_string(seen.last)
            );
        }
    }
    if !p.rates.is_empty() {
        let _ = writeln!(
            s,
            "\nrates (events per {} s: mean, standard deviation, intervals)",
            p.rate_interval_s
        );
        for (k, r) in &p.rates {
            let _ = writeln!(
                s,
                "  {k:<22} {:>10.1} {:>10.1} {:>6}",
                r.mean,
                r.var.max(0.0).sqrt(),
                r.n
            );
        }
    }
    s
}

/// Merges profiles of one workload (from several nodes) into `out`.
pub fn merge(
    inputs: &[std::path::PathBuf],
    out: &Path,
    dir_names: usize,
) -> Result<String, CmdError> {
    let mut merged: Option<(String, Profile)> = None;
    for path in inputs {
        let p = store::read(path)?;
        match &mut merged {
            None => merged = Some((path.display().to_string(), p)),
            Some((first, m)) => {
                if m.workload != p.workload {
                    return Err(CmdError::Workloads(
                        first.clone(),
                        m.workload.clone(),
                        path.display().to_string(),
                        p.workload,
                    ));
                }
                m.merge(&p, dir_names);
            }
        }
    }
    let Some((_, m)) = merged else {
        return Ok(String::new());
    };
    store::write(out, &m)?;
    Ok(format!(
        "{}: {} values of `{}` from {} profiles\n",
        out.display(),
        m.value_count(),
        m.workload,
        inputs.len()
    ))
}

/// What each profile has that the other has not; the exit code is 1 when they differ.
pub fn diff_files(a: &Path, b: &Path) -> Result<(String, u8), CmdError> {
    let (pa, pb) = (store::read(a)?, store::read(b)?);
    let d = diff(&pa, &pb);
    let mut s = String::new();
    if pa.workload != pb.workload {
        let _ = writeln!(s, "workload: - {}  + {}", pa.workload, pb.workload);
    }
    if pa.state != pb.state {
        let _ = writeln!(s, "state: - {}  + {}", pa.state.as_str(), pb.state.as_str());
    }
    for (dim, v) in &d.only_a {
        let _ = writeln!(s, "- {dim} {v}");
    }
    for (dim, v) in &d.only_b {
        let _ = writeln!(s, "+ {dim} {v}");
    }
    let num = |x: Option<f64>| x.map_or("-".to_owned(), |m| format!("{m:.1}"));
    for (k, ra, rb) in &d.rates {
        let _ = writeln!(s, "~ rate {k}: {} -> {} per interval", num(*ra), num(*rb));
    }
    let same = s.is_empty();
    if same {
        s.push_str("same values\n");
    }
    Ok((s, u8::from(!same)))
}
