//! Alerts (gh-9): the alert log of `hygroflow run --rules FILE --alerts FILE` and each JSON
//! report's `alerts_active`, at 1, 2 and 4 workers and on 2 processes of 2 workers, against an
//! independent oracle (`common/alert_oracle.rs`) that shares no code with the engine.
//!
//! The `oracle::` tests check the oracle itself on hand-made cases, with the transitions
//! worked out by hand; the `gh_9_alert_log_*` tests run the binary on the same cases and on
//! seeded random fleets, and compare every line.

#[path = "common/alert_cases.rs"]
mod alert_cases;
#[path = "common/alert_oracle.rs"]
mod alert_oracle;
#[path = "common/alert_rules.rs"]
mod alert_rules;
#[path = "common/alert_runs.rs"]
mod alert_runs;
mod common;

use serde_json::Value;

use alert_runs::{
    assert_success, check_everywhere, check_run, lines_of, oracle_of, output_within, run_args,
    sighup, wait_line, write_case,
};
use common::{hygroflow, json_lines};

#[test]
fn gh_9_alert_log_band_edges() {
    check_everywhere(&alert_cases::band_edges());
}

#[test]
fn gh_9_alert_log_silence() {
    check_everywhere(&alert_cases::silence());
}

#[test]
fn gh_9_alert_log_unreported_epochs() {
    check_everywhere(&alert_cases::gaps());
}

#[test]
fn gh_9_alert_log_rate_leaves_the_hour() {
    check_everywhere(&alert_cases::rate());
}

#[test]
fn gh_9_alert_log_rules_overrides() {
    check_everywhere(&alert_cases::overrides());
}

#[test]
fn gh_9_alert_log_random_1s() {
    check_everywhere(&alert_cases::random(9, 1000, 150));
}

#[test]
fn gh_9_alert_log_random_60s() {
    check_everywhere(&alert_cases::random(19, 60_000, 150));
}

#[test]
fn gh_9_alerts_on_stdout_before_each_report() {
    for case in [alert_cases::band_edges(), alert_cases::silence()] {
        let want = oracle_of(&case);
        let dir = tempfile::tempdir().expect("tempdir");
        let (input, rules) = write_case(&case, dir.path());
        let args = run_args(&case, &input, &rules, "-");
        let out = output_within(hygroflow().args(&args).args(["-w", "2"]), "--alerts -");
        assert_success(&out, "--alerts -");
        let lines = json_lines(&out.stdout);
        let (alerts, reports): (Vec<Value>, Vec<Value>) =
            lines.iter().cloned().partition(|l| l.get("kind").is_some());
        check_run(&alerts, &reports, &want, case.epoch_ms, "--alerts -");
        // Each epoch's alert lines come right before its report.
        let mut pending = Vec::new();
        for line in &lines {
            let epoch = line["epoch"].as_i64().expect("epoch");
            if line.get("kind").is_some() {
                pending.push(epoch);
            } else {
                assert!(
                    pending.iter().all(|&e| e == epoch),
                    "alerts of {pending:?} before the report of {epoch}"
                );
                pending.clear();
            }
        }
        assert!(pending.is_empty(), "alerts after the last report");
    }
}

/// Every case of the tests above.
fn all_cases() -> Vec<alert_cases::Case> {
    vec![
        alert_cases::band_edges(),
        alert_cases::silence(),
        alert_cases::gaps(),
        alert_cases::rate(),
        alert_cases::overrides(),
        alert_cases::random(9, 1000, 150),
        alert_cases::random(19, 60_000, 150),
    ]
}

/// The rules files the tests write are valid rules files (needs no alerting engine).
#[test]
fn gh_9_alert_test_rules_files_are_accepted() {
    for (i, case) in all_cases().iter().enumerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, rules) = write_case(case, dir.path());
        let rules = rules.to_str().expect("UTF-8");
        let epoch = case.epoch_flag();
        let out = output_within(
            hygroflow().args(["rules", "--rules", rules, "--epoch", &epoch]),
            "rules",
        );
        assert_success(&out, &format!("case {i}: {}", case.rules.to_toml()));
    }
}

/// The oracle's epochs are the engine's: without rules, each case is reported at exactly the
/// oracle's epochs, with the oracle's count of readings so far (needs no alerting engine).
#[test]
fn gh_9_alert_test_inputs_are_reported_at_the_oracles_epochs() {
    for (i, case) in all_cases().iter().enumerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (input, _) = write_case(case, dir.path());
        let input = input.to_str().expect("UTF-8");
        let epoch = case.epoch_flag();
        let args = ["run", "-i", input, "--time", "event", "--epoch", &epoch];
        let out = output_within(
            hygroflow().args(args).args(["--format", "json", "-w", "2"]),
            "run",
        );
        assert_success(&out, &format!("case {i}"));
        let readings = alert_oracle::parse_input(case.input.as_bytes());
        let want: Vec<(i64, usize)> = oracle_of(case)
            .reported
            .iter()
            .map(|(e, _)| {
                let end = (e + 1) * case.epoch_ms;
                (*e, readings.iter().filter(|r| r.ms < end).count())
            })
            .collect();
        let got: Vec<(i64, usize)> = json_lines(&out.stdout)
            .iter()
            .map(|r| {
                let n = r["total_messages"].as_u64().expect("total_messages");
                (r["epoch"].as_i64().expect("epoch"), n as usize)
            })
            .collect();
        assert_eq!(got, want, "case {i}");
    }
}

/// The oracle on hand-made cases: these need no engine.
mod oracle {
    use super::alert_cases::{self, Case};
    use super::alert_oracle::{assert_alert, format_time, parse_input, parse_time, Alert, Kind};
    use super::alert_rules::{pct, Keys, Rule, Rules};
    use super::oracle_of;

    /// `x` with at most 6 decimals and no trailing zeros.
    fn short(x: f64) -> String {
        let text = format!("{x:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }

    /// `EPOCH DEVICE KIND[:SENSOR] STATE VALUE LIMIT`, the epoch counted from the case's start.
    fn line(case: &Case, a: &Alert) -> String {
        let sensor = a.sensor.as_ref().map_or(String::new(), |s| format!(":{s}"));
        format!(
            "{} {} {}{sensor} {} {} {}",
            a.epoch - case.base_epoch(),
            a.device,
            a.kind.name(),
            if a.raised { "raised" } else { "resolved" },
            a.value.map_or("-".to_owned(), short),
            short(a.limit)
        )
    }

    fn log(case: &Case) -> Vec<String> {
        oracle_of(case).log.iter().map(|a| line(case, a)).collect()
    }

    /// The active set at each reported epoch, as `EPOCH: line; line`.
    fn active(case: &Case) -> Vec<String> {
        oracle_of(case)
            .reported
            .iter()
            .map(|(e, alerts)| {
                let lines: Vec<String> = alerts.iter().map(|a| line(case, a)).collect();
                format!("{}: {}", e - case.base_epoch(), lines.join("; "))
            })
            .collect()
    }

    #[test]
    fn times_are_converted_by_hand_correctly() {
        // The README's report: epoch 553047780 of 3 s ends at 01:09:03.
        assert_eq!(format_time(553_047_781 * 3000), "2022-07-30T01:09:03.000Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d ... +%s`
        assert_eq!(parse_time("2022-08-16T13:26:39.447974Z"), 1_660_656_399_447);
        assert_eq!(parse_time("2024-02-29T23:59:59Z"), 1_709_251_199_000);
        assert_eq!(parse_time("2024-02-29T23:59:59.5Z"), 1_709_251_199_500);
        for day in (0..60_000i64).step_by(7) {
            let ms = day * 86_400_000 + day * 7_919 % 86_400_000;
            assert_eq!(parse_time(&format_time(ms)), ms, "{}", format_time(ms));
        }
    }

    #[test]
    fn input_lines_are_read_with_either_device_key() {
        let text = concat!(
            r#"{"guid":"g1","destination":"d","medicalimagingdevice":"MRI12","eventTime":"2022-08-16T13:26:39.447974Z","payload":{"format":"f","data":{"humidity":71.7}}}"#,
            "\n",
            r#"{"guid":"g2","destination":"d","medicalImagingdevice":"CT1","eventTime":"2022-08-16T13:26:40Z","payload":{"format":"f","data":{"humidity":58}}}"#,
            "\n",
        );
        let readings = parse_input(text.as_bytes());
        let got: Vec<(&str, &str, i64, i64)> = readings
            .iter()
            .map(|r| (r.guid.as_str(), r.device.as_str(), r.ms, r.micros))
            .collect();
        assert_eq!(
            got,
            [
                ("g1", "MRI12", 1_660_656_399_447, 71_700_000),
                ("g2", "CT1", 1_660_656_400_000, 58_000_000)
            ]
        );
        // The cases' lines read back as written, both spellings included.
        let case = alert_cases::overrides();
        let readings = parse_input(case.input.as_bytes());
        assert_eq!(readings.len(), 7 * 12);
        assert!(case.input.contains("\"medicalImagingdevice\":\"MRI7\""));
        let mri7: Vec<i64> = readings
            .iter()
            .filter(|r| r.device == "MRI7")
            .map(|r| r.micros)
            .collect();
        let mut expected = vec![39_900_000; 6];
        expected.extend([40_500_000; 6]);
        assert_eq!(mri7, expected);
    }

    #[test]
    fn rules_merge_key_by_key_and_print_as_toml() {
        let rules = alert_cases::overrides().rules;
        let rule = |low: Option<&str>, high: &str, hyst: &str, rate: Option<&str>, w: i64| Rule {
            low: low.map(pct),
            high: Some(pct(high)),
            hysteresis: pct(hyst),
            rate_per_hour: rate.map(pct),
            window_ms: w * 1000,
            silence_ms: 10_000,
            retire_ms: 86_400_000,
        };
        assert_eq!(rules.rule("CT1"), rule(Some("30"), "60", "1", None, 3));
        assert_eq!(rules.rule("CT9"), rule(Some("30"), "55", "0.5", None, 3));
        assert_eq!(
            rules.rule("MRI1"),
            rule(Some("35"), "65", "0.5", Some("3"), 3)
        );
        assert_eq!(
            rules.rule("MRI7"),
            rule(Some("40"), "65", "0.5", Some("3"), 2)
        );
        assert_eq!(rules.rule("PETCT1"), rule(None, "60", "1", None, 3));
        assert_eq!(rules.rule("ct1"), rule(None, "60", "1", None, 3));
        let spec = Rules::default().rule("CT1");
        assert_eq!(
            (spec.window_ms, spec.silence_ms, spec.hysteresis),
            (60_000, 300_000, 1_000_000)
        );
        let small = Rules {
            defaults: Keys {
                high: Some(pct("60.000001")),
                window_s: Some(3),
                ..Keys::default()
            },
            modality: [(
                "MRI".to_owned(),
                Keys {
                    low: Some(pct("30")),
                    ..Keys::default()
                },
            )]
            .into(),
            device: [(
                "MRI12".to_owned(),
                Keys {
                    rate_per_hour: Some(pct("4.5")),
                    silence_s: Some(90),
                    ..Keys::default()
                },
            )]
            .into(),
        };
        assert_eq!(
            small.to_toml(),
            "[defaults]\nhigh = 60.000001\nwindow = \"3s\"\n\n[modality.\"MRI\"]\nlow = 30.0\n\n\
             [device.\"MRI12\"]\nrate_per_hour = 4.5\nsilence = \"90s\"\n"
        );
    }

    #[test]
    fn band_edges_raise_past_a_limit_and_resolve_at_the_hysteresis() {
        let case = alert_cases::band_edges();
        assert_eq!(
            log(&case),
            [
                "2 CT1 high raised 60.05 60",
                "2 CT2 high raised 60.1 60",
                "4 CT1 high resolved 58 58",
                "4 CT2 high resolved 58 58",
                "6 CT1 low raised 29.95 30",
                "6 CT2 low raised 29.9 30",
                "8 CT1 low resolved 32 32",
                "8 CT2 low resolved 32 32",
            ]
        );
        let both = |kind: &str| format!("2 CT1 {kind}; 2 CT2 {kind}");
        let high = both("high raised 60.05 60")
            .replace("2 CT2 high raised 60.05", "2 CT2 high raised 60.1");
        let low = "6 CT1 low raised 29.95 30; 6 CT2 low raised 29.9 30";
        let expected: Vec<String> = (0..10)
            .map(|e| match e {
                2 | 3 => format!("{e}: {high}"),
                6 | 7 => format!("{e}: {low}"),
                _ => format!("{e}: "),
            })
            .collect();
        assert_eq!(active(&case), expected);
    }

    #[test]
    fn silence_raises_after_exactly_the_silence_and_resolves_on_the_next_reading() {
        let case = alert_cases::silence();
        assert_eq!(
            log(&case),
            [
                "7 XR2 silent:XR2-a raised - 5",
                "9 XR2 silent:XR2-a resolved - 5",
                "10 XR1 silent:XR1-a raised - 10",
                "10 XR1 silent:XR1-d raised - 10",
                "11 XR1 silent:XR1-d resolved - 10",
                "12 XR1 silent:XR1-a resolved - 10",
                // Quiet again after its reading at 9, and still at the end.
                "14 XR2 silent:XR2-a raised - 5",
            ]
        );
        let json = oracle_of(&case).log[0].to_json(1000);
        let e = case.base_epoch() + 7;
        assert_eq!(
            json,
            serde_json::json!({
                "id": format!("XR2/silent/XR2-a/{e}"), "epoch": e,
                "time": "2022-08-16T13:26:08.000Z", "device": "XR2", "sensor": "XR2-a",
                "kind": "silent", "state": "raised", "value": null, "limit": 5.0,
            })
        );
    }

    #[test]
    fn unreported_epochs_are_not_evaluated_and_an_empty_window_changes_nothing() {
        let case = alert_cases::gaps();
        assert_eq!(
            log(&case),
            [
                "0 MRI1 high raised 70 60",
                "5 CT1 high raised 60.25 60",
                "20 CT1 high resolved 59 59",
                "20 CT1 silent:CT1-b raised - 10",
                "20 MRI1 silent:MRI1-a raised - 10",
            ]
        );
        let active = active(&case);
        let reported: Vec<&str> = active
            .iter()
            .map(|a| a.split(':').next().expect("epoch"))
            .collect();
        assert_eq!(reported, ["0", "1", "2", "3", "4", "5", "20", "21", "22"]);
        assert_eq!(
            active.last().expect("the last epoch"),
            "22: 20 CT1 silent:CT1-b raised - 10; 0 MRI1 high raised 70 60; \
             20 MRI1 silent:MRI1-a raised - 10"
        );
    }

    #[test]
    fn rate_raises_past_the_limit_and_resolves_when_the_excursion_leaves_the_hour() {
        let case = alert_cases::rate();
        assert_eq!(
            log(&case),
            [
                "5 MRI1 rate raised 6 5",
                "5 MRI3 rate raised 5.1 5",
                "5 MRI4 rate raised 5.1 5",
                "5 MRI5 rate raised 6 5",
                "65 MRI1 rate resolved 0 4",
                "65 MRI3 rate resolved 4 4",
                "65 MRI5 rate resolved 0 4",
                "100 MRI4 rate resolved 0 4",
            ]
        );
        let json = oracle_of(&case).log[0].to_json(60_000);
        assert_eq!(json["time"], "2022-08-16T13:32:00.000Z");
    }

    #[test]
    fn device_tables_override_modality_tables_key_by_key() {
        let case = alert_cases::overrides();
        assert_eq!(
            log(&case),
            [
                "0 CT9 high raised 56 55",
                "0 MRI7 low raised 39.9 40",
                "5 ct1 high raised 61 60",
                "7 MRI1 rate raised 3.033333 3",
                "7 MRI7 low resolved 40.5 40.5",
                "8 CT9 high resolved 54.5 54.5",
                "10 PETCT1 high raised 70 60",
            ]
        );
    }

    #[test]
    fn random_cases_raise_and_resolve_every_kind() {
        for (seed, epoch_ms) in [(9, 1000), (19, 60_000)] {
            let case = alert_cases::random(seed, epoch_ms, 150);
            let lines = case.input.lines().count();
            assert!((1000..5000).contains(&lines), "{lines} lines");
            let outcome = oracle_of(&case);
            for kind in [Kind::High, Kind::Low, Kind::Rate, Kind::Silent] {
                for raised in [true, false] {
                    let n = outcome
                        .log
                        .iter()
                        .filter(|a| a.kind == kind && a.raised == raised)
                        .count();
                    // A rate is never resolved within one hour of 1 s epochs.
                    let needed = usize::from(raised || kind != Kind::Rate || epoch_ms > 1000);
                    assert!(n >= needed, "{epoch_ms} ms: {kind:?} raised={raised}: {n}");
                }
            }
        }
    }

    #[test]
    fn lines_are_compared_with_a_tolerance_on_value_and_limit_only() {
        let alert = &oracle_of(&alert_cases::band_edges()).log[0];
        let mut got = alert.to_json(1000);
        got["value"] = serde_json::json!(60.050_000_4);
        assert_alert(&got, alert, 1000, "close enough");
        let far = std::panic::catch_unwind(|| {
            let mut got = alert.to_json(1000);
            got["value"] = serde_json::json!(60.050_01);
            assert_alert(&got, alert, 1000, "too far");
        });
        assert!(far.is_err());
        for (key, wrong) in [("state", "resolved"), ("sensor", "CT1-a"), ("time", "x")] {
            let wrong = std::panic::catch_unwind(|| {
                let mut got = alert.to_json(1000);
                got[key] = serde_json::json!(wrong);
                assert_alert(&got, alert, 1000, key);
            });
            assert!(wrong.is_err(), "{key}");
        }
        let extra = std::panic::catch_unwind(|| {
            let mut got = alert.to_json(1000);
            got["extra"] = serde_json::json!(1);
            assert_alert(&got, alert, 1000, "extra");
        });
        assert!(extra.is_err());
    }
}

#[test]
fn gh_9_alert_log_of_the_generated_scenarios() {
    let out = output_within(
        hygroflow().args([
            "generate",
            "--scenario",
            "excursion@1m,silence@2m,drift@3m",
            "--count",
            "30000",
            "--interval-ms",
            "30",
            "--seed",
            "3",
        ]),
        "generate",
    );
    assert_success(&out, "generate");
    let case = alert_cases::generated_scenarios(String::from_utf8(out.stdout).expect("utf8"));
    // Every kind is raised (and all but the rate, which lasts an hour, resolved).
    let want = oracle_of(&case);
    for kind in ["high", "silent", "rate"] {
        let raised = want.log.iter().any(|a| a.kind.name() == kind && a.raised);
        assert!(raised, "the scenarios raise {kind}: {:?}", want.log);
    }
    check_everywhere(&case);
}

/// GET `path` from the job's live server on `port`: the body.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    text
}

#[test]
fn gh_22_sighup_reloads_the_rules_and_the_log_follows_them_from_one_epoch_on() {
    use std::io::Write;
    let case = alert_cases::random(31, 1000, 300);
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, rules_path) = write_case(&case, dir.path());
    let log_path = dir.path().join("alerts.jsonl");
    let port = common::free_port();
    let mut job = hygroflow()
        .args([
            "run", "-i", "-", "--time", "event", "--format", "json", "-w", "2",
        ])
        .args(["--epoch", &case.epoch_flag(), "--rules"])
        .arg(&rules_path)
        .arg("--alerts")
        .arg(&log_path)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the job starts");
    let mut stdin = job.stdin.take().expect("stdin");
    let reports = lines_of(job.stdout.take().expect("stdout"));
    let stderr = lines_of(job.stderr.take().expect("stderr"));
    let (mut printed, mut logged) = (Vec::new(), Vec::new());
    // The first half of the epochs.
    let half = case.base_epoch() + 150;
    let epoch_of = |line: &str| {
        let v: Value = serde_json::from_str(line).expect("JSON");
        let ms = alert_oracle::parse_time(v["eventTime"].as_str().expect("eventTime"));
        ms.div_euclid(case.epoch_ms)
    };
    let lines: Vec<&str> = case.input.lines().collect();
    let split = lines
        .iter()
        .position(|l| epoch_of(l) >= half)
        .expect("a second half");
    for line in &lines[..split] {
        writeln!(stdin, "{line}").expect("feed");
    }
    stdin.flush().expect("flush");
    wait_line(&reports, &mut printed, "report near the half", |l| {
        serde_json::from_str::<Value>(l)
            .ok()
            .and_then(|r| r["epoch"].as_i64())
            .is_some_and(|e| e >= half - 3)
    });
    // An invalid file first: refused, counted, the rules in force stay.
    std::fs::write(&rules_path, "[defaults]\nhigh = 120\n").expect("write");
    sighup(job.id());
    let refused = wait_line(&stderr, &mut logged, "refusal", |l| l.contains("SIGHUP:"));
    assert!(
        refused.contains("line 2") && refused.contains("the rules in force stay"),
        "{refused}"
    );
    let metrics = http_get(port, "/metrics");
    assert!(
        metrics.contains("hygroflow_rules_reload_failures_total 1"),
        "{metrics}"
    );
    // Then the changed rules.
    let changed = alert_runs::changed_rules(&case);
    std::fs::write(&rules_path, changed.to_toml()).expect("write");
    sighup(job.id());
    wait_line(&stderr, &mut logged, "reload", |l| {
        l.contains("rules reloaded")
    });
    // Every report printed so far was judged by the old rules.
    let reported: Vec<i64> = printed
        .iter()
        .chain(reports.try_iter().collect::<Vec<_>>().iter())
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["epoch"].as_i64())
        .collect();
    let last_reported = reported.iter().copied().max().expect("reports");
    for line in &lines[split..] {
        writeln!(stdin, "{line}").expect("feed the rest");
    }
    drop(stdin);
    let status = job.wait().expect("the job ends");
    assert!(status.success(), "{logged:#?}");
    let log = json_lines(&std::fs::read(&log_path).expect("the alert log"));
    let (rules_lines, transitions) = alert_runs::split_rules_lines(&log);
    assert_eq!(rules_lines.len(), 1, "{rules_lines:?}");
    let change = rules_lines[0]["epoch"].as_i64().expect("epoch");
    assert!(
        change > last_reported && change < half,
        "the rules apply from epoch {change}: after the last report before the reload ({last_reported}), before the second half ({half})"
    );
    let want = alert_runs::oracle_changing(&case, (&case.rules, &changed), change);
    alert_oracle::assert_alerts(&transitions, &want.log, case.epoch_ms, "SIGHUP");
    let unchanged = oracle_of(&case);
    assert_ne!(
        unchanged.log, want.log,
        "the changed rules change nothing here"
    );
}

#[test]
fn gh_22_a_sensor_silent_for_retire_after_is_retired_and_comes_back_as_new() {
    // CT1's sensor a reads every second for a minute; b at 0-10 s and 40-45 s. With 1 s
    // epochs, silence 5 s and retire_after 10 s: b is silent at 15, retired at 25 (silent for
    // 10 s), back at 40 as a new sensor (no resolve), silent again at 50.
    let base_ms = alert_oracle::parse_time("2022-08-16T13:00:00Z");
    let mut input = String::new();
    for s in 0..60 {
        let mut sensors = vec!["a"];
        if s <= 10 || (40..=45).contains(&s) {
            sensors.push("b");
        }
        for guid in sensors {
            input.push_str(&format!(
                "{{\"guid\":\"{guid}\",\"destination\":\"d\",\"medicalimagingdevice\":\"CT1\",\"eventTime\":\"{}\",\"payload\":{{\"format\":\"f\",\"data\":{{\"humidity\":45.0}}}}}}\n",
                alert_oracle::format_time(base_ms + s * 1000 + 100)
            ));
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (input_path, rules_path, log_path) = (
        dir.path().join("in.jsonl"),
        dir.path().join("rules.toml"),
        dir.path().join("alerts.jsonl"),
    );
    std::fs::write(&input_path, input).expect("input");
    std::fs::write(
        &rules_path,
        "[defaults]\nsilence = \"5s\"\nretire_after = \"10s\"\n",
    )
    .expect("rules");
    let out = hygroflow()
        .args(["run", "-i"])
        .arg(&input_path)
        .args([
            "--time", "event", "--epoch", "1s", "--format", "json", "--rules",
        ])
        .arg(&rules_path)
        .arg("--alerts")
        .arg(&log_path)
        .output()
        .expect("runs");
    assert_success(&out, "retire");
    let log = json_lines(&std::fs::read(&log_path).expect("the alert log"));
    let base = base_ms / 1000;
    let got: Vec<(i64, &str, Option<&str>, f64)> = log
        .iter()
        .map(|l| {
            (
                l["epoch"].as_i64().expect("epoch") - base,
                l["state"].as_str().expect("state"),
                l["reason"].as_str(),
                l["limit"].as_f64().expect("limit"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (15, "raised", None, 5.0),
            (25, "resolved", Some("retired"), 10.0),
            (50, "raised", None, 5.0)
        ],
        "{log:#?}"
    );
    assert!(log.iter().all(|l| l["sensor"] == "b"), "{log:#?}");
}
