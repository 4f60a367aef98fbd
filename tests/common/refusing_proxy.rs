//! A proxy in front of a real broker that can refuse to create topics: it forwards every Kafka
//! request and answer whole (frame by frame), and once `refuse()` is called it answers
//! CreateTopics itself with `TOPIC_AUTHORIZATION_FAILED`, as a broker whose ACLs forbid it
//! would. Tansu creates any topic
//! it is asked for; this is how a test sees a refusal.
//!
//! Start the broker with `Broker::start_advertised(port)` and this proxy on that port, so that
//! every connection of a client goes through it.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Kafka's CreateTopics request.
const CREATE_TOPICS: i16 = 19;
/// Kafka's error code for a topic operation that the ACLs forbid.
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// A running refusing proxy; stops accepting on drop.
pub struct RefusingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    refusing: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
}

impl RefusingProxy {
    /// Listens on 127.0.0.1:`port` and forwards to `upstream` (host:port).
    pub fn start(port: u16, upstream: &str) -> RefusingProxy {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("proxy cannot listen on 127.0.0.1:{port}: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let refusing = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let (upstream, stopping, count) =
            (upstream.to_owned(), Arc::clone(&stop), Arc::clone(&refused));
        let refuse = Arc::clone(&refusing);
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else {
                    continue;
                };
                let (count, refuse) = (Arc::clone(&count), Arc::clone(&refuse));
                thread::spawn(move || serve(client, server, &refuse, &count));
            }
        });
        RefusingProxy {
            port,
            stop,
            refusing,
            refused,
        }
    }

    /// From now on, CreateTopics requests are refused.
    pub fn refuse(&self) {
        self.refusing.store(true, Ordering::SeqCst);
    }

    /// CreateTopics requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for RefusingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Forwards one connection both ways, whole frames at a time, so that an answer the proxy
/// writes itself never lands inside one of the broker's.
fn serve(client: TcpStream, server: TcpStream, refusing: &AtomicBool, refused: &AtomicU64) {
    let (Ok(mut from_client), Ok(from_server), Ok(to_server)) =
        (client.try_clone(), server.try_clone(), server.try_clone())
    else {
        return;
    };
    let to_client = Arc::new(Mutex::new(client));
    let answers = Arc::clone(&to_client);
    let back = thread::spawn(move || {
        let mut from_server = from_server;
        while let Ok(frame) = read_frame(&mut from_server) {
            if write_frame(&answers, &frame).is_err() {
                break;
            }
        }
        if let Ok(client) = answers.lock() {
            let _ = client.shutdown(Shutdown::Both);
        }
    });
    let mut to_server = to_server;
    while let Ok(frame) = read_frame(&mut from_client) {
        let answer = refusing
            .load(Ordering::SeqCst)
            .then(|| refusal(&frame))
            .flatten();
        let sent = match answer {
            Some(answer) => {
                refused.fetch_add(1, Ordering::SeqCst);
                write_frame(&to_client, &answer)
            }
            None => to_server.write_all(&frame),
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = to_server.shutdown(Shutdown::Both);
    let _ = back.join();
}

/// One frame: the 4-byte length and what follows.
fn read_frame(from: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    from.read_exact(&mut length)?;
    let size = usize::try_from(i32::from_be_bytes(length)).map_err(io::Error::other)?;
    let mut frame = length.to_vec();
    frame.resize(4 + size, 0);
    from.read_exact(&mut frame[4..])?;
    Ok(frame)
}

fn write_frame(to: &Mutex<TcpStream>, frame: &[u8]) -> io::Result<()> {
    let mut to = to.lock().map_err(|_| io::Error::other("poisoned"))?;
    to.write_all(frame)
}

/// A cursor over a request's bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    fn skip_tags(&mut self) -> Option<()> {
        for _ in 0..self.varint()? {
            self.varint()?;
            let size = usize::try_from(self.varint()?).ok()?;
            self.take(size)?;
        }
        Some(())
    }
}

/// The answer to a CreateTopics request, refusing its first topic; `None` for any other
/// request. Versions 0 to 4 use the classic encoding, 5 and later the flexible one.
fn refusal(frame: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader(frame.get(4..)?);
    if r.i16()? != CREATE_TOPICS {
        return None;
    }
    let version = r.i16()?;
    let correlation = r.i32()?;
    let client_id = usize::try_from(r.i16()?.max(0)).ok()?;
    r.take(client_id)?;
    let flexible = version >= 5;
    let name = if flexible {
        r.skip_tags()?;
        r.varint()?; // topics, + 1
        let len = usize::try_from(r.varint()?.checked_sub(1)?).ok()?;
        r.take(len)?.to_vec()
    } else {
        r.i32()?; // topics
        let len = usize::try_from(r.i16()?).ok()?;
        r.take(len)?.to_vec()
    };
    let message = b"refused by the test proxy (no CreateTopics permission)";
    let mut body = correlation.to_be_bytes().to_vec();
    if flexible {
        body.push(0); // response header tags
        body.extend(0i32.to_be_bytes()); // throttle_time_ms
        body.push(2); // one topic
        body.push(u8::try_from(name.len() + 1).ok()?);
        body.extend(&name);
        if version >= 7 {
            body.extend([0u8; 16]); // topic id
        }
        body.extend(TOPIC_AUTHORIZATION_FAILED.to_be_bytes());
        body.push(u8::try_from(message.len() + 1).ok()?);
        body.extend(message);
        body.extend((-1i32).to_be_bytes()); // num_partitions
        body.extend((-1i16).to_be_bytes()); // replication_factor
        body.push(0); // configs: null
        body.push(0); // topic tags
        body.push(0); // response tags
    } else {
        if version >= 2 {
            body.extend(0i32.to_be_bytes()); // throttle_time_ms
        }
        body.extend(1i32.to_be_bytes()); // one topic
        body.extend(i16::try_from(name.len()).ok()?.to_be_bytes());
        body.extend(&name);
        body.extend(TOPIC_AUTHORIZATION_FAILED.to_be_bytes());
        if version >= 1 {
            body.extend(i16::try_from(message.len()).ok()?.to_be_bytes());
            body.extend(message);
        }
    }
    let mut answer = i32::try_from(body.len()).ok()?.to_be_bytes().to_vec();
    answer.extend(body);
    Some(answer)
}
