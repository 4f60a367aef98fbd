//! Output held back until the checkpoint that covers it is committed (`--state-dir`).
//!
//! A report printed before its epoch's checkpoint is committed would be printed again after a
//! `kill -9`, and not always the same: the restarted run redoes the epoch, and in processing
//! time its messages fall into new epochs, so a report could show fewer messages than one
//! printed before the kill. So, with checkpoints, what the report printer writes goes into a
//! buffer, marked with the frontier it was written for ([`Marks::at`]), and worker 0 lets it
//! through to the real writer once the `COMMITTED` marker covers that frontier
//! ([`Release::release`]).
//!
//! ```text
//!  report thread: render ─> HeldWriter ─> buffer [.. epochs < f1 | .. epochs < f2 | ..]
//!                                  Marks::at(f) ─┘            │
//!  worker 0: COMMITTED marker at F ─> Release::release(F) ─> stdout (every mark <= F)
//! ```
//!
//! So no report is ever printed that a restart could take back. The price: a kill in the
//! instant between the marker and the release loses those epochs' lines from stdout (never a
//! count: the restarted run's reports carry on from the marker's totals); `--results-topic`
//! holds every report exactly once.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use hygroflow_dataflows::Epoch;

/// What has been written and not yet released.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    /// `(frontier, length)`: the first `length` bytes belong to epochs before `frontier`.
    marks: VecDeque<(Epoch, usize)>,
}

type Shared = Arc<Mutex<Buffer>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Buffer> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Holds `out` back: returns the writer to print to, the printer's side that marks frontiers,
/// and worker 0's side that releases what is committed to `out`.
pub(crate) fn hold(out: Box<dyn Write + Send>) -> (Box<dyn Write + Send>, Marks, Release) {
    let shared = Shared::default();
    let writer = HeldWriter(Arc::clone(&shared));
    let marks = Marks(Arc::clone(&shared));
    (Box::new(writer), marks, Release { shared, out })
}

/// The writer the printer writes to: it only appends to the buffer.
struct HeldWriter(Shared);

impl Write for HeldWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The printer's side: says which frontier what it has written so far was for.
#[derive(Clone)]
pub(crate) struct Marks(Shared);

impl Marks {
    /// Everything written so far belongs to epochs before `frontier` (`Epoch::MAX`: the final
    /// report too).
    pub(crate) fn at(&self, frontier: Epoch) {
        let mut buffer = lock(&self.0);
        let length = buffer.bytes.len();
        // Nothing written since the last mark: those bytes were already before its frontier.
        if buffer.marks.back().is_none_or(|last| last.1 < length) {
            buffer.marks.push_back((frontier, length));
        }
    }
}

/// Worker 0's side: lets committed output through.
pub(crate) struct Release {
    shared: Shared,
    out: Box<dyn Write + Send>,
}

impl Release {
    /// Writes everything marked for a frontier at or before `committed` (every epoch before it
    /// is in a committed checkpoint), in the order it was written.
    pub(crate) fn release(&mut self, committed: Epoch) -> io::Result<()> {
        let ready: Vec<u8> = {
            let mut buffer = lock(&self.shared);
            let mut length = 0;
            while let Some(&(frontier, end)) = buffer.marks.front() {
                if frontier > committed {
                    break;
                }
                length = end;
                buffer.marks.pop_front();
            }
            if length == 0 {
                return Ok(());
            }
            for mark in &mut buffer.marks {
                mark.1 -= length;
            }
            // Written outside the lock, so the printer never waits for a slow reader.
            let rest = buffer.bytes.split_off(length);
            std::mem::replace(&mut buffer.bytes, rest)
        };
        self.out.write_all(&ready)?;
        self.out.flush()
    }

    /// Bytes written and not yet released.
    #[cfg(test)]
    fn held(&self) -> usize {
        lock(&self.shared).bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<u8>>>);

    impl Write for Seen {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("seen").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seen {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("seen").clone()).expect("utf8")
        }
    }

    #[test]
    fn only_what_a_commit_covers_is_released_in_order() {
        let seen = Seen::default();
        let (mut writer, marks, mut release) = hold(Box::new(seen.clone()));
        writer.write_all(b"e1\n").expect("write");
        marks.at(2);
        writer.write_all(b"e2\n").expect("write");
        writer.write_all(b"e3\n").expect("write");
        marks.at(4);
        writer.write_all(b"e4 ").expect("write");
        // Nothing is committed: nothing is printed.
        release.release(1).expect("release");
        assert_eq!(seen.text(), "");
        // A commit between two marks releases up to the earlier one.
        release.release(3).expect("release");
        assert_eq!(seen.text(), "e1\n");
        release.release(4).expect("release");
        assert_eq!(seen.text(), "e1\ne2\ne3\n");
        // Unmarked bytes (an epoch being written) wait for their mark.
        release.release(Epoch::MAX).expect("release");
        assert_eq!(seen.text(), "e1\ne2\ne3\n");
        assert_eq!(release.held(), 3);
        writer.write_all(b"final\n").expect("write");
        marks.at(Epoch::MAX);
        release.release(Epoch::MAX).expect("release");
        assert_eq!(seen.text(), "e1\ne2\ne3\ne4 final\n");
        assert_eq!(release.held(), 0);
    }

    #[test]
    fn marks_without_output_since_the_last_add_nothing() {
        let seen = Seen::default();
        let (mut writer, marks, mut release) = hold(Box::new(seen.clone()));
        writer.write_all(b"a").expect("write");
        marks.at(5);
        marks.at(6);
        marks.at(7);
        // The bytes were written before frontier 5 was marked: they are epochs before 5.
        release.release(5).expect("release");
        assert_eq!(seen.text(), "a");
        release.release(7).expect("release");
        assert_eq!(seen.text(), "a");
    }

    #[test]
    fn a_closed_reader_is_the_release_error() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (mut writer, marks, mut release) = hold(Box::new(Closed));
        writer
            .write_all(b"x")
            .expect("the printer never sees the pipe");
        marks.at(1);
        let error = release.release(1).expect_err("broken pipe");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
