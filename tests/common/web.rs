//! Helpers of the live page's tests (`tests/live.rs`): jobs with `--http`, a small HTTP/1.1
//! client, and headless Chromium spoken to over the DevTools protocol.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::common::{free_port, hygroflow};

/// Bounds every wait, so that a hang fails the test instead of holding the suite.
pub const PATIENCE: Duration = Duration::from_secs(45);

/// A child that is killed when the test ends, however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A job started with `args` (and `RUST_LOG=info`), its URL read from the start-up line;
/// stdout lines arrive on the receiver.
pub fn start_job(args: &[&str]) -> (Running, String, mpsc::Receiver<String>, Option<ChildStdin>) {
    let mut child = hygroflow()
        .env("RUST_LOG", "info")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hygroflow");
    let stdin = child.stdin.take();
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (url_tx, url_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(at) = line.find("url=http://") {
                let _ = url_tx.send(line[at + 4..].trim().to_owned());
            }
        }
    });
    let (out_tx, out_rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens: a closed stdout would end the job.
        for line in stdout.lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    let url = url_rx
        .recv_timeout(PATIENCE)
        .expect("the start-up line gives the live page's URL");
    (Running(child), url, out_rx, stdin)
}

/// `host:port` of a URL such as `http://127.0.0.1:41234/`.
pub fn authority(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

/// A plain HTTP/1.1 GET (`Connection: close`): the status code and the body; `None` when the server is not there
/// (yet).
pub fn try_get(url: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(authority(url)).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        authority(url)
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    let body = match length {
        // Some servers keep the connection open whatever the request says.
        Some(length) => {
            let mut body = vec![0; length];
            reader.read_exact(&mut body).ok()?;
            String::from_utf8_lossy(&body).into_owned()
        }
        None => {
            let mut body = String::new();
            reader.read_to_string(&mut body).ok()?;
            if head.contains("transfer-encoding: chunked") {
                dechunk(&body)
            } else {
                body
            }
        }
    };
    Some((code, body))
}

/// The body of a chunked response.
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// [`try_get`] from a server that must answer.
pub fn get(url: &str, path: &str) -> (u16, String) {
    try_get(url, path).unwrap_or_else(|| panic!("GET {url}{path}: no answer"))
}

/// Polls `check` until it returns `Some`, for at most [`PATIENCE`].
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Headless Chromium, spoken to over the DevTools protocol.
pub struct Browser {
    _chromium: Running,
    _profile: tempfile::TempDir,
    socket: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
    /// Console errors and uncaught exceptions seen so far.
    pub errors: Vec<String>,
}

impl Browser {
    pub fn start() -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        let chromium = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--window-size=1400,1000",
                &format!("--remote-debugging-port={port}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium runs (scripts/test.sh installs it: apt-get install chromium)");
        let chromium = Running(chromium);
        let devtools = format!("http://127.0.0.1:{port}/");
        let page = wait_for("chromium's DevTools endpoint", || {
            let (_, body) = try_get(&devtools, "/json")?;
            let targets: Value = serde_json::from_str(&body).ok()?;
            targets.as_array()?.iter().find(|t| t["type"] == "page")?["webSocketDebuggerUrl"]
                .as_str()
                .map(str::to_owned)
        });
        let stream = TcpStream::connect(authority(
            page.trim_start_matches("ws://")
                .split('/')
                .next()
                .unwrap_or(""),
        ))
        .expect("connect to DevTools");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let (socket, _) = tungstenite::client(page.as_str(), stream).expect("DevTools handshake");
        let mut browser = Browser {
            _chromium: chromium,
            _profile: profile,
            socket,
            next_id: 0,
            errors: Vec::new(),
        };
        browser.call("Runtime.enable", json!({}));
        browser.call("Page.enable", json!({}));
        browser
    }

    /// Calls `method` and returns its result; events met on the way are noted.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket
            .send(tungstenite::Message::text(message))
            .expect("send to DevTools");
        loop {
            let message = self.socket.read().expect("read from DevTools");
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
            match value["method"].as_str() {
                Some("Runtime.consoleAPICalled") if value["params"]["type"] == "error" => {
                    self.errors.push(value["params"].to_string())
                }
                Some("Runtime.exceptionThrown") => self.errors.push(value["params"].to_string()),
                _ => {}
            }
        }
    }

    /// The value of a JavaScript expression.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or(""))
            .expect("a base64 screenshot");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

/// Where a person can look at what the tests saw.
pub fn target_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    dir
}
