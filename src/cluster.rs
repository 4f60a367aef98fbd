//! Cluster mode: connecting the processes, checking they agree, then handing the sockets to
//! timely.
//!
//! timely's own `Config::Cluster` retries a missing peer forever and prints to stdout. Here
//! each process binds its own address, connects to every lower-indexed process (retrying with
//! a log line naming the address) and accepts every higher-indexed one (logging the processes
//! it still waits for), within `--connect-timeout`; a peer that never answers ends the run
//! with an error naming its address.
//! The handshake is timely's: the connecting process sends its index as a big-endian `u64`.
//! Then both sides exchange what must agree ([`agreement`]: workers, epoch, time, input...)
//! and refuse a peer that differs, naming the flag and both values; the first failure stops
//! the connecting and the accepting alike. Only then do the sockets go to timely's
//! `initialize_networking_from_sockets`, with no byte of ours left unread.
//!
//! If a peer dies mid-run, timely's communication threads panic with "timely communication
//! error"; `main` turns that into an error and a non-zero exit instead of a hang.

use std::any::Any;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::Hooks;
use tracing::{info, warn};

use crate::config::{Cluster, Config};

mod agreement;

use agreement::{Agreement, Disagreement};

/// How often an unanswered connection attempt, or a peer still missing, is logged.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// How long the accepting side waits before it first names the peers still missing.
const FIRST_WAIT_LOG: Duration = Duration::from_secs(1);

/// The longest a connected peer may take to send its index or its settings.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Why the cluster could not form.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// This process cannot listen on its own address.
    #[error("process {process} cannot listen on {address}: {error}")]
    Listen {
        /// This process.
        process: usize,
        /// Its address from the hostfile.
        address: String,
        /// Why.
        error: std::io::Error,
    },
    /// A lower-indexed peer never accepted.
    #[error("cannot reach process {process} at {address} after {waited:?}: {error}")]
    Unreachable {
        /// The peer.
        process: usize,
        /// Its address.
        address: String,
        /// How long we tried.
        waited: Duration,
        /// The last error.
        error: String,
    },
    /// Higher-indexed peers never connected.
    #[error("processes {missing:?} did not connect to this process ({address}) within {waited:?}; are they running with the same hostfile?")]
    NotJoined {
        /// This process's address.
        address: String,
        /// `process at address` of each missing peer.
        missing: Vec<String>,
        /// How long we waited.
        waited: Duration,
    },
    /// A peer connected but did not send its settings, or sent something else.
    #[error("process {process} at {address} did not complete the handshake: {error}; is every process the same hygroflow release, with the same hostfile?")]
    Handshake {
        /// The peer.
        process: usize,
        /// Its address.
        address: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A peer runs with other settings than this process.
    #[error(transparent)]
    Disagree(#[from] Disagreement),
    /// timely could not start its communication threads.
    #[error("cannot start cluster communication: {0}")]
    Timely(String),
}

/// The allocators for this process's workers (and a guard that keeps the network alive).
pub fn allocators(
    config: &Config,
) -> Result<(Vec<AllocatorBuilder>, Box<dyn Any + Send>), ClusterError> {
    let cluster = &config.cluster;
    if cluster.processes <= 1 {
        return cluster
            .single_process()
            .try_build()
            .map_err(ClusterError::Timely);
    }
    let sockets = connect(cluster, &Agreement::of(config), config.connect_timeout)?;
    let hooks = Hooks::default();
    let process_allocators = ProcessBuilder::new_typed_vector(
        cluster.workers,
        hooks.refill.clone(),
        hooks.spill.clone(),
    );
    let (builders, guard) = initialize_networking_from_sockets(
        process_allocators,
        sockets,
        cluster.process,
        cluster.workers,
        hooks,
    )
    .map_err(|e| ClusterError::Timely(e.to_string()))?;
    info!(
        process = cluster.process,
        processes = cluster.processes,
        "cluster connected"
    );
    Ok((
        builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
        Box::new(guard),
    ))
}

/// One socket per peer, in process order, `None` at this process's own position.
fn connect(
    cluster: &Cluster,
    agreement: &Agreement,
    timeout: Duration,
) -> Result<Vec<Option<TcpStream>>, ClusterError> {
    let me = cluster.process;
    let my_address = cluster.addresses[me].clone();
    let listener = TcpListener::bind(&my_address).map_err(|error| ClusterError::Listen {
        process: me,
        address: my_address.clone(),
        error,
    })?;
    // --connect-timeout is at most a year, which an Instant holds; checked all the same.
    let deadline = Instant::now().checked_add(timeout).ok_or_else(|| {
        ClusterError::Timely(format!("--connect-timeout {timeout:?} is too long"))
    })?;
    // Set by whichever side fails first (connecting or accepting), so the other stops too.
    let give_up = Arc::new(AtomicBool::new(false));
    let dialer = {
        let lower: Vec<(usize, String)> = cluster
            .addresses
            .iter()
            .cloned()
            .enumerate()
            .take(me)
            .collect();
        let handshake = Handshake::new(me, agreement, timeout);
        let give_up = Arc::clone(&give_up);
        std::thread::spawn(move || -> Result<Option<Vec<TcpStream>>, ClusterError> {
            let mut dialed = Vec::new();
            for (process, address) in lower {
                match dial(&handshake, process, &address, deadline, &give_up) {
                    Ok(Some(stream)) => dialed.push(stream),
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        give_up.store(true, Ordering::SeqCst);
                        return Err(e);
                    }
                }
            }
            Ok(Some(dialed))
        })
    };
    let handshake = Handshake::new(me, agreement, timeout);
    let accepted = accept(&listener, cluster, &handshake, deadline, &give_up);
    if accepted.is_err() {
        give_up.store(true, Ordering::SeqCst);
    }
    let dialed = dialer
        .join()
        .map_err(|_| ClusterError::Timely("connection thread failed".into()))?;
    // The first failure wins: the other side only stopped because of it.
    let accepted = accepted?;
    let dialed = dialed?;
    let (Some(dialed), Some(mut accepted)) = (dialed, accepted) else {
        return Err(ClusterError::Timely("connecting stopped".into()));
    };
    let mut sockets: Vec<Option<TcpStream>> = dialed.into_iter().map(Some).collect();
    sockets.push(None);
    for process in me + 1..cluster.processes {
        sockets.push(accepted.remove(&process));
    }
    Ok(sockets)
}

/// This process's side of the handshake: its index and what must agree.
struct Handshake {
    me: usize,
    agreement: Agreement,
    /// `--connect-timeout`.
    timeout: Duration,
    /// How long one peer may take to answer, within `--connect-timeout`.
    patience: Duration,
}

impl Handshake {
    fn new(me: usize, agreement: &Agreement, timeout: Duration) -> Self {
        Handshake {
            me,
            agreement: agreement.clone(),
            timeout,
            patience: timeout.clamp(Duration::from_millis(100), HANDSHAKE),
        }
    }

    /// Sends our settings, reads the peer's (`process`) and compares them. Both sides write
    /// before they read, and every byte is read here, before timely sees the socket.
    fn exchange(&self, stream: &mut TcpStream, process: usize) -> Result<(), ClusterError> {
        let address = stream
            .peer_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        let failed = |error| ClusterError::Handshake {
            process,
            address: address.clone(),
            error,
        };
        stream
            .set_write_timeout(Some(self.patience))
            .map_err(failed)?;
        stream
            .set_read_timeout(Some(self.patience))
            .map_err(failed)?;
        self.agreement.write_to(stream).map_err(failed)?;
        let theirs = Agreement::read_from(stream).map_err(failed)?;
        stream.set_write_timeout(None).map_err(failed)?;
        stream.set_read_timeout(None).map_err(failed)?;
        self.agreement.check(self.me, &theirs, process)?;
        Ok(())
    }
}

/// Connects to lower-indexed `process`, introduces ourselves and exchanges settings,
/// retrying until `deadline`; `None` when told to give up.
fn dial(
    handshake: &Handshake,
    process: usize,
    address: &str,
    deadline: Instant,
    give_up: &AtomicBool,
) -> Result<Option<TcpStream>, ClusterError> {
    let mut last_log: Option<Instant> = None;
    while !give_up.load(Ordering::SeqCst) {
        let attempt = resolve(address)
            .and_then(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)));
        match attempt {
            Ok(mut stream) => {
                stream.set_nodelay(true).ok();
                let index = (handshake.me as u64).to_be_bytes();
                if let Err(error) = stream.write_all(&index) {
                    warn!(process, address, %error, "handshake failed; retrying");
                } else {
                    handshake.exchange(&mut stream, process)?;
                    return Ok(Some(stream));
                }
            }
            Err(error) => {
                if Instant::now() >= deadline {
                    return Err(ClusterError::Unreachable {
                        process,
                        address: address.to_owned(),
                        waited: handshake.timeout,
                        error: error.to_string(),
                    });
                }
                if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    warn!(process, address, %error, "cannot reach peer process; retrying");
                    last_log = Some(Instant::now());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(None)
}

fn resolve(address: &str) -> std::io::Result<SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))
}

/// Accepts every higher-indexed process and exchanges settings, until `deadline`, logging
/// the processes still missing; `None` when told to give up.
fn accept(
    listener: &TcpListener,
    cluster: &Cluster,
    handshake: &Handshake,
    deadline: Instant,
    give_up: &AtomicBool,
) -> Result<Option<BTreeMap<usize, TcpStream>>, ClusterError> {
    let me = cluster.process;
    let expected = cluster.processes - me - 1;
    let mut accepted = BTreeMap::new();
    let missing = |accepted: &BTreeMap<usize, TcpStream>| {
        (me + 1..cluster.processes)
            .filter(|p| !accepted.contains_key(p))
            .collect::<Vec<_>>()
    };
    let not_joined = |accepted: &BTreeMap<usize, TcpStream>| ClusterError::NotJoined {
        address: cluster.addresses[me].clone(),
        missing: missing(accepted)
            .into_iter()
            .map(|p| format!("{p} at {}", cluster.addresses[p]))
            .collect(),
        waited: handshake.timeout,
    };
    listener
        .set_nonblocking(true)
        .map_err(|_| not_joined(&accepted))?;
    let mut next_log = Instant::now() + FIRST_WAIT_LOG;
    while accepted.len() < expected {
        if give_up.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(handshake.patience));
                let mut index = [0u8; 8];
                if stream.read_exact(&mut index).is_ok() {
                    let process = u64::from_be_bytes(index);
                    let process = usize::try_from(process).unwrap_or(usize::MAX);
                    // A peer with another -n claims an index we do not expect: the
                    // exchange names the difference. Something that is not a peer at all
                    // (a port scan) is ignored, as a connection that sends no index is.
                    match handshake.exchange(&mut stream, process) {
                        Err(ClusterError::Handshake { address, error, .. }) => {
                            warn!(%address, %error, "a connection did not complete the handshake; ignoring it");
                            continue;
                        }
                        other => other?,
                    }
                    if process > me && process < cluster.processes {
                        stream.set_nodelay(true).ok();
                        accepted.insert(process, stream);
                        continue;
                    }
                    warn!(
                        process,
                        "a connection claimed an unexpected process index; ignoring it"
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(not_joined(&accepted));
                }
                if now >= next_log {
                    for process in missing(&accepted) {
                        let address = &cluster.addresses[process];
                        warn!(
                            process,
                            address, "peer process has not connected yet; waiting"
                        );
                    }
                    next_log = now + LOG_EVERY;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => warn!(%error, "accepting a peer failed"),
        }
    }
    Ok(Some(accepted))
}
