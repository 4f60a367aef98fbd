//! The file reader's rules: dealing lines, capping them, live pipes, stopping.
use super::*;

fn drain(sources: Vec<FileSource>) -> Vec<Vec<(u64, Vec<u8>, usize)>> {
    sources
        .into_iter()
        .map(|mut s| {
            let mut got = Vec::new();
            loop {
                let poll = s
                    .poll(3, &mut |r| {
                        if let Origin::Line(n) | Origin::Byte(n) = r.origin {
                            got.push((n, r.bytes.to_vec(), r.len));
                        }
                        Ok(())
                    })
                    .expect("no read error");
                if poll == Poll::Finished {
                    break got;
                }
            }
        })
        .collect()
}

#[test]
fn lines_are_dealt_round_robin_over_global_workers() {
    let input = b"a\nbb\n\nccc\r\nd".to_vec();
    // Process holding global workers 1 and 2 of 3.
    let (sources, handle) = spawn_reader(
        Box::new(std::io::Cursor::new(input)),
        "t".into(),
        1..3,
        3,
        100,
    );
    let got = drain(sources);
    handle.join().expect("reader thread");
    assert_eq!(got[0], vec![(2, b"bb".to_vec(), 2), (5, b"d".to_vec(), 1)]);
    assert_eq!(got[1], vec![(3, b"".to_vec(), 0)]);
}

#[test]
fn gh_8_a_byte_order_mark_before_the_first_line_is_dropped() {
    let input = b"\xEF\xBB\xBFa\n\xEF\xBB\xBFb\n".to_vec();
    let (sources, handle) = spawn_reader(
        Box::new(std::io::Cursor::new(input)),
        "t".into(),
        0..1,
        1,
        100,
    );
    let got = drain(sources);
    handle.join().expect("reader thread");
    // Only at the very start: a mark later in the file is data (and not JSON).
    assert_eq!(
        got[0],
        vec![(1, b"a".to_vec(), 1), (2, b"\xEF\xBB\xBFb".to_vec(), 4)]
    );
}

#[test]
fn every_line_goes_to_exactly_one_worker() {
    let text: String = (0..1000).map(|i| format!("line{i}\n")).collect();
    let (sources, handle) = spawn_reader(
        Box::new(std::io::Cursor::new(text.into_bytes())),
        "t".into(),
        0..4,
        4,
        100,
    );
    let mut all: Vec<u64> = drain(sources)
        .into_iter()
        .flatten()
        .map(|(n, _, _)| n)
        .collect();
    handle.join().expect("reader thread");
    all.sort();
    assert_eq!(all, (1..=1000).collect::<Vec<_>>());
}

#[test]
fn long_lines_are_capped_but_keep_their_length() {
    let mut input = vec![b'x'; 5000];
    input.push(b'\n');
    input.extend_from_slice(b"ok\n");
    let (sources, handle) = spawn_reader(
        Box::new(std::io::Cursor::new(input)),
        "t".into(),
        0..1,
        1,
        10,
    );
    let got = drain(sources);
    handle.join().expect("reader thread");
    assert_eq!(got[0][0].1.len(), 11);
    assert_eq!(got[0][0].2, 5000);
    assert_eq!(got[0][1], (2, b"ok".to_vec(), 2));
}

/// A pipe: each read returns at most what the writer has written so far (a short read),
/// and blocks while the writer has written nothing more.
struct Pipe {
    chunks: Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

/// The writing end of a [`Pipe`]; dropping it closes the pipe.
fn pipe() -> (std::sync::mpsc::Sender<Vec<u8>>, Pipe) {
    let (tx, chunks) = std::sync::mpsc::channel();
    let pipe = Pipe {
        chunks,
        pending: Vec::new(),
    };
    (tx, pipe)
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            match self.chunks.recv() {
                Ok(chunk) => self.pending = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

/// Polls until `count` lines have arrived, failing after ten seconds instead of hanging.
fn receive(source: &mut FileSource, count: usize) -> Vec<(u64, Vec<u8>)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "only {got:?} of {count} lines arrived"
        );
        let poll = source
            .poll(count - got.len(), &mut |r| {
                if let Origin::Line(n) = r.origin {
                    got.push((n, r.bytes.to_vec()));
                }
                Ok(())
            })
            .expect("no read error");
        match poll {
            Poll::Busy => {}
            Poll::Idle => std::thread::sleep(std::time::Duration::from_millis(1)),
            Poll::Finished => panic!("the input ended after {got:?}"),
        }
    }
    got
}

#[test]
fn lines_before_a_pause_in_a_pipe_arrive_before_the_rest_is_written() {
    let (writer, input) = pipe();
    let (mut sources, handle) = spawn_reader(Box::new(input), "t".into(), 0..2, 2, 100);
    // The last line is still being written when the writer pauses.
    writer
        .send(b"a\nb\r\nc\npart".to_vec())
        .expect("the reader is reading");
    assert_eq!(
        receive(&mut sources[0], 2),
        vec![(1, b"a".to_vec()), (3, b"c".to_vec())]
    );
    assert_eq!(receive(&mut sources[1], 1), vec![(2, b"b".to_vec())]);
    writer
        .send(b"ial\ne\n".to_vec())
        .expect("the reader is reading");
    assert_eq!(receive(&mut sources[1], 1), vec![(4, b"partial".to_vec())]);
    assert_eq!(receive(&mut sources[0], 1), vec![(5, b"e".to_vec())]);
    drop(writer);
    let rest = drain(sources);
    handle.join().expect("reader thread");
    assert_eq!(rest, vec![vec![], vec![]], "nothing twice");
}

#[test]
fn a_paused_pipe_still_caps_long_lines() {
    let (writer, input) = pipe();
    let (mut sources, handle) = spawn_reader(Box::new(input), "t".into(), 0..1, 1, 10);
    for piece in [vec![b'x'; 6], vec![b'x'; 20], b"\nok\n".to_vec()] {
        writer.send(piece).expect("the reader is reading");
    }
    let got = receive(&mut sources[0], 2);
    assert_eq!(got[0], (1, vec![b'x'; 11]));
    assert_eq!(got[1], (2, b"ok".to_vec()));
    drop(writer);
    drop(sources);
    handle.join().expect("reader thread");
}

/// The sizes of the batches sent for `text` read in pieces of `piece` bytes, each read
/// having asked for `READ_BYTES`, when every read is already done as the reader starts.
fn batch_sizes(text: &[u8], piece: usize) -> Vec<usize> {
    let pieces: Vec<&[u8]> = text.chunks(piece).collect();
    let (full, chunks) = sync_channel(pieces.len());
    for bytes in pieces {
        let mut buf = vec![0; READ_BYTES];
        buf[..bytes.len()].copy_from_slice(bytes);
        let chunk = Chunk {
            buf,
            len: bytes.len(),
        };
        full.send(Ok(chunk)).expect("queued");
    }
    drop(full);
    let (tx, rx) = sync_channel(text.len() / BATCH_BYTES + 2);
    let mut dealer = Dealer::new(vec![tx], 0..1, 1);
    read_lines(
        &chunks,
        &channel().0,
        100,
        &AtomicBool::new(false),
        &mut dealer,
    )
    .expect("reads");
    dealer.finish();
    rx.iter()
        .map(|feed| match feed {
            Feed::Lines(batch) => batch.data.len(),
            Feed::Failed(e) => panic!("{e}"),
        })
        .collect()
}

/// Lines long enough that batches fill up on bytes before they do on lines.
fn long_lines() -> Vec<u8> {
    let text: String = (0..60_000).map(|i| format!("line {i:>40}\n")).collect();
    assert!(text.len() > 2 * READ_BYTES);
    text.into_bytes()
}

#[test]
fn full_reads_send_full_batches() {
    // A regular file answers every read in full until its end.
    let sizes = batch_sizes(&long_lines(), READ_BYTES);
    let (last, full) = sizes.split_last().expect("batches");
    assert!(full.iter().all(|&n| n >= BATCH_BYTES), "{sizes:?}");
    assert!(*last > 0);
}

#[test]
fn short_reads_with_more_already_read_send_full_batches() {
    // A pipe that keeps coming (`cat file |`) answers 64 KiB at a time.
    let sizes = batch_sizes(&long_lines(), 64 * 1024);
    let (last, full) = sizes.split_last().expect("batches");
    assert!(full.iter().all(|&n| n >= BATCH_BYTES), "{sizes:?}");
    assert!(*last > 0);
}

#[test]
fn a_read_error_keeps_its_cause() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "bad disk",
            ))
        }
    }
    let (mut sources, handle) = spawn_reader(Box::new(Broken), "in.jsonl".into(), 0..1, 1, 10);
    let error = loop {
        match sources[0].poll(10, &mut |_| Ok(())) {
            Ok(Poll::Finished) => panic!("the error was lost"),
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(e) => break e,
        }
    };
    handle.join().expect("reader thread");
    assert_eq!(error.to_string(), "reading in.jsonl");
    let cause = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<Arc<std::io::Error>>())
        .expect("the I/O error is the cause");
    assert_eq!(cause.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(cause.to_string(), "bad disk");
}

#[test]
fn gh_10_parts_of_a_file_start_at_line_starts_and_cover_it_once() {
    let text = b"aaaa\nbb\ncccccc\nd\n\neeee";
    for parts in 1..=8 {
        let mut cursor = std::io::Cursor::new(&text[..]);
        let bounds =
            super::line_aligned_bounds(&mut cursor, text.len() as u64, parts).expect("bounds");
        assert_eq!(bounds.len(), parts + 1);
        assert_eq!((bounds[0], bounds[parts]), (0, text.len() as u64));
        for pair in bounds.windows(2) {
            assert!(pair[0] <= pair[1], "{bounds:?}");
        }
        for b in &bounds[..parts] {
            let b = *b as usize;
            assert!(
                b == 0 || b == text.len() || text[b - 1] == b'\n',
                "{parts}: {bounds:?}"
            );
        }
    }
}

#[test]
fn gh_10_range_sources_name_lines_by_byte_offset_and_cap_long_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in.jsonl");
    let long = "x".repeat(3000);
    let text = format!("\u{feff}first\r\nsecond line\n{long}\n\nlast");
    std::fs::write(&path, &text).expect("write");
    for parts in 1..=4 {
        let sources = super::range_sources(&path, "in", (0..parts, parts), 100).expect("sources");
        let mut seen: Vec<(u64, Vec<u8>, usize)> = Vec::new();
        for mut source in sources {
            loop {
                let poll = source
                    .poll(2, &mut |r| {
                        if let Origin::Byte(at) = r.origin {
                            seen.push((at, r.bytes.to_vec(), r.len));
                        }
                        Ok(())
                    })
                    .expect("no read error");
                if poll == Poll::Finished {
                    break;
                }
            }
        }
        seen.sort();
        let expected: Vec<(u64, Vec<u8>, usize)> = vec![
            // The byte order mark is dropped but counted; the length keeps the `\r`.
            (0, b"first".to_vec(), 6),
            (10, b"second line".to_vec(), 11),
            (22, vec![b'x'; 101], 3000),
            (3023, Vec::new(), 0),
            (3024, b"last".to_vec(), 4),
        ];
        assert_eq!(seen, expected, "{parts} part(s)");
    }
}

#[test]
fn gh_10_a_range_source_skips_a_line_longer_than_its_buffer_but_counts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in.jsonl");
    let huge = 3 * READ_BYTES + 7;
    let mut text = vec![b'y'; huge];
    text.extend_from_slice(b"\nnext\n");
    text.extend(std::iter::repeat_n(b'z', huge));
    std::fs::write(&path, &text).expect("write");
    let mut sources = super::range_sources(&path, "in", (0..1, 1), 100).expect("sources");
    let mut seen: Vec<(u64, usize, usize)> = Vec::new();
    loop {
        let poll = sources[0]
            .poll(10, &mut |r| {
                if let Origin::Byte(at) = r.origin {
                    seen.push((at, r.bytes.len(), r.len));
                }
                Ok(())
            })
            .expect("no read error");
        if poll == Poll::Finished {
            break;
        }
    }
    let next = huge as u64 + 1;
    assert_eq!(seen, [(0, 101, huge), (next, 4, 4), (next + 5, 101, huge)]);
}

/// What the reader must deliver for `text`: every line numbered from 1, kept up to `keep`
/// bytes, then without a leading byte order mark or trailing CR, with its full length.
fn expected_lines(text: &[u8], keep: usize) -> Vec<(u64, Vec<u8>, usize)> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    body.split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let kept = &line[..line.len().min(keep)];
            let (kept, len) = match kept.strip_prefix(BOM) {
                Some(rest) if i == 0 => (rest, line.len() - BOM.len()),
                _ => (kept, line.len()),
            };
            (i as u64 + 1, trim_cr(kept).to_vec(), len)
        })
        .collect()
}

#[test]
fn gh_10_whole_reads_for_one_worker_deliver_what_copied_lines_do() {
    // Several full reads, lines cut by every read boundary, CRLF, a mark at the start, lines
    // longer than the limit and one longer than the room left for a cut line.
    let mut text = BOM.to_vec();
    for i in 0..60_000u32 {
        let line = match i % 997 {
            0 => "y".repeat(300),
            1 if i > 30_000 => "z".repeat(LINE_ROOM + 5_000),
            _ => format!(
                "{{\"n\":{i},\"pad\":\"{}\"}}",
                "p".repeat((i % 53) as usize)
            ),
        };
        text.extend_from_slice(line.as_bytes());
        text.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
    }
    assert!(text.len() > 3 * READ_BYTES);
    let want = expected_lines(&text, 101);
    let whole = || -> Vec<(u64, Vec<u8>, usize)> {
        let input = Box::new(std::io::Cursor::new(text.clone()));
        let (sources, handle) = spawn_reader(input, "t".into(), 0..1, 1, 100);
        let got = drain(sources);
        handle.join().expect("reader thread");
        got.into_iter().flatten().collect()
    };
    let got = whole();
    assert_eq!(got.len(), want.len());
    for (got, want) in got.iter().zip(&want) {
        assert_eq!(got, want, "line {}", want.0);
    }
    // Dealt to two workers, every line is copied; together they deliver the same.
    let input = Box::new(std::io::Cursor::new(text.clone()));
    let (sources, handle) = spawn_reader(input, "t".into(), 0..2, 2, 100);
    let mut dealt: Vec<_> = drain(sources).into_iter().flatten().collect();
    handle.join().expect("reader thread");
    dealt.sort();
    assert_eq!(dealt, want);
}

#[test]
fn gh_10_striped_sources_deliver_every_line_once_by_byte_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in.jsonl");
    let mut text = String::new();
    let mut want = Vec::new();
    for i in 0..2_000 {
        let line = format!("line {i} {}", "p".repeat(i % 37));
        want.push((text.len() as u64, line.clone().into_bytes()));
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(&path, &text).expect("write");
    for peers in 1..=3 {
        for stripe in [1, 100, 4_096, 1 << 20] {
            let sources = super::striped_sources(&path, "in", (0..peers, peers), (100, stripe))
                .expect("sources");
            let mut seen = Vec::new();
            let mut per_worker = Vec::new();
            for mut source in sources {
                let mut mine = 0;
                loop {
                    let poll = source
                        .poll(7, &mut |r| {
                            if let Origin::Byte(at) = r.origin {
                                seen.push((at, r.bytes.to_vec()));
                            }
                            mine += 1;
                            Ok(())
                        })
                        .expect("no read error");
                    if poll == Poll::Finished {
                        break;
                    }
                }
                per_worker.push(mine);
            }
            seen.sort();
            assert_eq!(seen, want, "{peers} worker(s), stripes of {stripe} bytes");
            // Small stripes share the lines out evenly; one stripe per worker keeps halves.
            if stripe == 100 {
                let (least, most) = (per_worker.iter().min(), per_worker.iter().max());
                assert!(
                    most.zip(least).is_some_and(|(m, l)| m - l <= 2_000 / 10),
                    "{per_worker:?}"
                );
            }
        }
    }
}
