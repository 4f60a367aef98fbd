//! Fault injection for the kill tests, in debug builds only.
//!
//! `HYGROFLOW_FAULT=POINT:N` kills the process with SIGKILL the `N`th time (counted over all
//! its threads, from 1) that it reaches the named point, as a `kill -9` landing at exactly that
//! moment would. Release builds compile every point to nothing and ignore the variable.
//!
//! | point | where |
//! |---|---|
//! | `log-append` | a record of a worker's epoch log is half appended |
//! | `checkpoint-write` | a worker's checkpoint file is half written (its temporary file) |
//! | `marker-write` | the `COMMITTED` marker is half written (its temporary file) |
//! | `after-marker` | the marker is durable; offsets not committed, reports not printed |
//! | `after-offsets` | the consumer group's offsets are committed |
//! | `after-release` | the committed reports are printed |

/// The names of the points, for tests that pick one.
pub const POINTS: [&str; 6] = [
    "log-append",
    "checkpoint-write",
    "marker-write",
    "after-marker",
    "after-offsets",
    "after-release",
];

/// The process reaches the point `name` (one of [`POINTS`]).
#[inline]
pub(crate) fn point(name: &'static str) {
    #[cfg(debug_assertions)]
    armed::reach(name);
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(debug_assertions)]
mod armed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static FAULT: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    fn armed() -> Option<(String, u64)> {
        let value = std::env::var("HYGROFLOW_FAULT").ok()?;
        let (point, n) = value.split_once(':')?;
        let n = n.parse().ok().filter(|n| *n > 0)?;
        super::POINTS
            .contains(&point)
            .then(|| (point.to_owned(), n))
    }

    pub(super) fn reach(name: &'static str) {
        let Some((point, n)) = FAULT.get_or_init(armed) else {
            return;
        };
        if point != name || HITS.fetch_add(1, Ordering::SeqCst) + 1 != *n {
            return;
        }
        eprintln!("hygroflow: fault injection: killed at {name} ({n})");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
