//! Cluster mode: connecting the processes, then handing the sockets to timely.
//!
//! timely's own `Config::Cluster` retries a missing peer forever and prints to stdout. Here
//! each process binds its own address, connects to every lower-indexed process (retrying with
//! a log line naming the address) and accepts every higher-indexed one, within
//! `--connect-timeout`; a peer that never answers ends the run with an error naming its address.
//! The handshake is timely's: the connecting process sends its index as a big-endian `u64`.
//! Once connected, the sockets go to timely's `initialize_networking_from_sockets`.
//!
//! If a peer dies mid-run, timely's communication threads panic with "timely communication
//! error"; `main` turns that into an error and a non-zero exit instead of a hang.

use std::any::Any;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::Hooks;
use tracing::{info, warn};

use crate::config::Cluster;

/// How often an unanswered connection attempt is logged.
const LOG_EVERY: Duration = Duration::from_secs(5);

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
    /// timely could not start its communication threads.
    #[error("cannot start cluster communication: {0}")]
    Timely(String),
}

/// The allocators for this process's workers (and a guard that keeps the network alive).
pub fn allocators(
    cluster: &Cluster,
    timeout: Duration,
) -> Result<(Vec<AllocatorBuilder>, Box<dyn Any + Send>), ClusterError> {
    if cluster.processes <= 1 {
        return cluster
            .single_process()
            .try_build()
            .map_err(ClusterError::Timely);
    }
    let sockets = connect(cluster, timeout)?;
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
fn connect(cluster: &Cluster, timeout: Duration) -> Result<Vec<Option<TcpStream>>, ClusterError> {
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
    let lower: Vec<(usize, String)> = cluster
        .addresses
        .iter()
        .cloned()
        .enumerate()
        .take(me)
        .collect();
    let dialer = std::thread::spawn(move || -> Result<Vec<TcpStream>, ClusterError> {
        lower
            .into_iter()
            .map(|(process, address)| dial(me, process, &address, deadline, timeout))
            .collect()
    });
    let accepted = accept(&listener, cluster, deadline, timeout);
    let dialed = dialer
        .join()
        .map_err(|_| ClusterError::Timely("connection thread failed".into()))??;
    let mut accepted = accepted?;
    let mut sockets: Vec<Option<TcpStream>> = dialed.into_iter().map(Some).collect();
    sockets.push(None);
    for process in me + 1..cluster.processes {
        sockets.push(accepted.remove(&process));
    }
    Ok(sockets)
}

/// Connects to lower-indexed `process` and introduces ourselves, retrying until `deadline`.
fn dial(
    me: usize,
    process: usize,
    address: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, ClusterError> {
    let mut last_log: Option<Instant> = None;
    loop {
        let attempt = resolve(address)
            .and_then(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)));
        match attempt {
            Ok(mut stream) => {
                stream.set_nodelay(true).ok();
                if let Err(error) = stream.write_all(&(me as u64).to_be_bytes()) {
                    warn!(process, address, %error, "handshake failed; retrying");
                } else {
                    return Ok(stream);
                }
            }
            Err(error) => {
                if Instant::now() >= deadline {
                    return Err(ClusterError::Unreachable {
                        process,
                        address: address.to_owned(),
                        waited: timeout,
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
}

fn resolve(address: &str) -> std::io::Result<SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))
}

/// Accepts every higher-indexed process, until `deadline`.
fn accept(
    listener: &TcpListener,
    cluster: &Cluster,
    deadline: Instant,
    timeout: Duration,
) -> Result<std::collections::BTreeMap<usize, TcpStream>, ClusterError> {
    let me = cluster.process;
    let expected = cluster.processes - me - 1;
    let mut accepted = std::collections::BTreeMap::new();
    let not_joined =
        |accepted: &std::collections::BTreeMap<usize, TcpStream>| ClusterError::NotJoined {
            address: cluster.addresses[me].clone(),
            missing: (me + 1..cluster.processes)
                .filter(|p| !accepted.contains_key(p))
                .map(|p| format!("{p} at {}", cluster.addresses[p]))
                .collect(),
            waited: timeout,
        };
    listener
        .set_nonblocking(true)
        .map_err(|_| not_joined(&accepted))?;
    while accepted.len() < expected {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut index = [0u8; 8];
                if stream.read_exact(&mut index).is_ok() {
                    let process = u64::from_be_bytes(index) as usize;
                    if process > me && process < cluster.processes {
                        let _ = stream.set_read_timeout(None);
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
                if Instant::now() >= deadline {
                    return Err(not_joined(&accepted));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => warn!(%error, "accepting a peer failed"),
        }
    }
    Ok(accepted)
}
