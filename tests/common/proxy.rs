//! A TCP proxy for simulating a broker outage: clients talk to the proxy, the proxy to the
//! broker, and `cut()` drops every connection (and every new one) until `restore()`.
//!
//! Kafka clients connect to the address the broker advertises, not only to the bootstrap
//! address, so start the broker with `Broker::start_advertised(proxy_port)` to route all its
//! traffic through the proxy:
//!
//! ```ignore
//! let (broker, proxy) = proxy::broker_behind_proxy();
//! // clients use proxy.address() (== the advertised address)
//! proxy.cut();     // every connection is closed, new ones are closed at once
//! proxy.restore(); // connections work again
//! proxy.slow_down(Duration::from_millis(300)); // a broker that answers slowly
//! ```
//!
//! Plain std threads: one accepting, two per connection copying bytes.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Open connections: both sockets of each, to shut down on `cut()`.
type Connections = Mutex<HashMap<u64, (TcpStream, TcpStream)>>;

struct Shared {
    upstream: String,
    cut: AtomicBool,
    /// Milliseconds each chunk of bytes waits before it is forwarded.
    delay_ms: AtomicU64,
    stop: AtomicBool,
    next_id: AtomicU64,
    connections: Connections,
    accepted: AtomicU64,
}

/// A running proxy; stops (and closes its connections) on drop.
pub struct Proxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<thread::JoinHandle<()>>,
}

/// A broker that advertises a free port, and a proxy on that port that forwards to it: all the
/// clients' traffic goes through the proxy.
pub fn broker_behind_proxy() -> (crate::broker::Broker, Proxy) {
    let port = crate::common::free_port();
    let broker = crate::broker::Broker::start_advertised(port);
    let proxy = Proxy::start(port, &broker.listen_address());
    (broker, proxy)
}

impl Proxy {
    /// Listens on 127.0.0.1:`port` (0: any free port) and forwards each connection to
    /// `upstream` (host:port), which is connected to only when a client connects.
    pub fn start(port: u16, upstream: &str) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("proxy cannot listen on 127.0.0.1:{port}: {e}"));
        let address = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            cut: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("proxy-{}", address.port()))
                .spawn(move || accept_loop(listener, shared))
                .expect("spawn the proxy thread")
        };
        Proxy {
            address,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The address clients connect to, `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Connections accepted so far (cut or not).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections being forwarded now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.lock().map_or(0, |c| c.len())
    }

    /// Closes every open connection, and every new one as soon as it is accepted, until
    /// `restore()`. Clients see the broker go away.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        close_all(&self.shared);
    }

    /// Forwards new connections again (the ones `cut()` closed stay closed; clients reconnect).
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Holds every chunk of bytes read from either side for `delay` before forwarding it, in
    /// order, on every connection: each request and each answer is late by `delay` or more (a
    /// large answer by `delay` per chunk read), as from a slow or overloaded broker.
    /// `Duration::ZERO` forwards at once again.
    pub fn slow_down(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        close_all(&self.shared);
        // Wake the accepting thread up so it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn close_all(shared: &Shared) {
    let connections: Vec<(TcpStream, TcpStream)> = match shared.connections.lock() {
        Ok(mut c) => c.drain().map(|(_, pair)| pair).collect(),
        Err(_) => return,
    };
    for (client, server) in connections {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let server = match connect(&shared.upstream) {
            Ok(server) => server,
            Err(_) => {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let (Ok(client2), Ok(server2), Ok(client3), Ok(server3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        if let Ok(mut c) = shared.connections.lock() {
            c.insert(id, (client3, server3));
        }
        // `cut()` may have run between the check above and the insert.
        if shared.cut.load(Ordering::SeqCst) {
            close_all(&shared);
            continue;
        }
        for (from, to) in [(client, server2), (server, client2)] {
            let shared = Arc::clone(&shared);
            let _ = thread::Builder::new()
                .name(format!("proxy-conn-{id}"))
                .spawn(move || {
                    pump(from, to, &shared.delay_ms);
                    if let Ok(mut c) = shared.connections.lock() {
                        c.remove(&id);
                    }
                });
        }
    }
}

fn connect(upstream: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for address in upstream.to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, Duration::from_secs(2)) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Copies bytes from `from` to `to` until either side closes, then closes both; each chunk
/// read waits `delay_ms` before it is written.
fn pump(mut from: TcpStream, mut to: TcpStream, delay_ms: &AtomicU64) {
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let delay = delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    thread::sleep(Duration::from_millis(delay));
                }
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
