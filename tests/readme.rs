//! The README's "With Kafka" block, run command by command against a real broker.

mod common;

use std::process::Command;

use common::{assert_report_matches, json_lines, recompute};

/// The first ```sh block after the "## With Kafka" heading.
fn kafka_block(readme: &str) -> Vec<String> {
    let section = readme
        .split("## With Kafka")
        .nth(1)
        .expect("a With Kafka section");
    let block = section.split("```sh\n").nth(1).expect("a sh block");
    let block = block.split("```").next().expect("block end");
    block
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn readme_with_kafka_commands_work() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let lines = kafka_block(&readme);
    assert!(lines.len() >= 6, "{lines:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let bin = env!("CARGO_BIN_EXE_hygroflow");
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    for line in &lines {
        let line = line.replace("9092", &port.to_string());
        let line = match line.strip_prefix("hygroflow ") {
            Some(rest) => format!("{bin} {rest}"),
            None => line.replace("scripts/", &format!("{root}/scripts/")),
        };
        script.push_str(&line);
        script.push('\n');
        if line.starts_with("tansu broker") {
            // Wait until the broker accepts connections.
            script.push_str(&format!(
                "for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1; done\n"
            ));
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "script:\n{script}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fleet = std::fs::read(dir.path().join("fleet.jsonl")).expect("fleet.jsonl");
    let reports = json_lines(&std::fs::read(dir.path().join("reports.jsonl")).expect("reports"));
    assert_report_matches(reports.last().expect("final report"), &recompute(&fleet));
    // `topic describe` shows the group caught up: lag 0 on every partition.
    let describe = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = describe
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() == 5 && cols[0].parse::<i32>().is_ok())
        .collect();
    assert_eq!(rows.len(), 4, "{describe}");
    for cols in rows {
        assert!(
            cols[3].parse::<i64>().is_ok_and(|c| c > 0),
            "committed offset: {describe}"
        );
        assert_eq!(cols[4], "0", "lag: {describe}");
    }
}
