//! Tests of the rules: each kind of mistake, the merge, modalities, exact percentages, windows.

use super::parse::{exact_micros, Problem};
use super::*;

const EPOCH: Duration = Duration::from_secs(3);

fn pct(micros: u32) -> Percent {
    Percent::from_micros(micros).expect("at most 100 %")
}

fn invalid(text: &str) -> Invalid {
    Rules::parse(text, EPOCH).expect_err(text)
}

#[test]
fn modality_is_the_leading_ascii_letters() {
    assert_eq!(modality("MRI12"), "MRI");
    assert_eq!(modality("PETCT7"), "PETCT");
    assert_eq!(modality("CT"), "CT");
    assert_eq!(modality("mri12"), "mri");
    assert_eq!(modality("12MRI"), "");
    assert_eq!(modality(""), "");
    assert_eq!(modality("ÉCHO1"), "");
    assert_eq!(modality("MR-1"), "MR");
}

#[test]
fn percentages_are_read_exactly() {
    for (text, micros) in [
        ("60.000001", 60_000_001),
        ("60", 60_000_000),
        ("0", 0),
        ("-0.0", 0),
        ("100", 100_000_000),
        ("100.000000", 100_000_000),
        ("0.000001", 1),
        ("45.5", 45_500_000),
        ("+6e1", 60_000_000),
        ("4.55E1", 45_500_000),
        ("1_0.5", 10_500_000),
        ("600e-1", 60_000_000),
        ("0.1", 100_000),
        ("33.333333", 33_333_333),
    ] {
        assert_eq!(exact_micros(text), Ok(micros), "{text}");
    }
    for (text, problem) in [
        ("60.0000001", Problem::TooPrecise),
        ("1e-7", Problem::TooPrecise),
        ("100.000001", Problem::Above100),
        ("1000", Problem::Above100),
        ("1e3", Problem::Above100),
        ("99999999999999999999", Problem::Above100),
        ("-0.5", Problem::Negative),
        ("-30", Problem::Negative),
        ("inf", Problem::NotDecimal),
        ("nan", Problem::NotDecimal),
        ("-inf", Problem::NotDecimal),
    ] {
        assert_eq!(exact_micros(text), Err(problem), "{text}");
    }
    let rules = Rules::parse("[defaults]\nhigh = 60.000001\nlow = 30\n", EPOCH).expect("valid");
    assert_eq!(rules.rule_for("X").high, Some(pct(60_000_001)));
    assert_eq!(rules.rule_for("X").low, Some(Percent::whole(30)));
    assert!(matches!(
        invalid("[defaults]\nhigh = 60.0000001\n").mistake,
        Mistake::TooPrecise { key: "high", .. }
    ));
    assert_eq!(pct(60_000_001).to_string(), "60.000001");
    assert_eq!(Percent::whole(30).to_string(), "30.0");
    assert_eq!(pct(500_000).to_string(), "0.5");
}

#[test]
fn gh_12_exponents_beyond_i64_arithmetic_are_refused_not_wrapped() {
    // Once read as 0.000001 (the exponent wrapped around); a panic in a debug build.
    for (text, problem) in [
        ("1e9223372036854775807", Problem::Above100),
        ("1e-9223372036854775808", Problem::TooPrecise),
        ("10e9223372036854775807", Problem::Above100),
        ("0.01e-9223372036854775807", Problem::TooPrecise),
        ("1e99999999999999999999", Problem::Above100),
        ("1e-99999999999999999999", Problem::TooPrecise),
    ] {
        assert_eq!(exact_micros(text), Err(problem), "{text}");
    }
    assert!(matches!(
        invalid("[defaults]\nlow = 1e9223372036854775807\n").mistake,
        Mistake::Above100 { key: "low", .. }
    ));
}

#[test]
fn the_most_specific_table_wins_key_by_key() {
    let text = r#"
[defaults]
low = 20
high = 70
silence = "10m"

[modality.MRI]
high = 60
rate_per_hour = 5

[device.MRI12]
low = 35
window = "30s"

[device.CT3]
hysteresis = 0.5
"#;
    let rules = Rules::parse(text, EPOCH).expect("valid");
    let mri12 = rules.rule_for("MRI12");
    assert_eq!(mri12.low, Some(Percent::whole(35)));
    assert_eq!(mri12.high, Some(Percent::whole(60)));
    assert_eq!(mri12.rate_per_hour, Some(Percent::whole(5)));
    assert_eq!(mri12.window, Duration::from_secs(30));
    assert_eq!(mri12.silence, Duration::from_secs(600));
    assert_eq!(mri12.hysteresis, DEFAULT_HYSTERESIS);
    let mri1 = rules.rule_for("MRI1");
    assert_eq!(
        (mri1.low, mri1.high),
        (Some(Percent::whole(20)), Some(Percent::whole(60)))
    );
    assert_eq!(mri1.window, DEFAULT_WINDOW);
    let ct3 = rules.rule_for("CT3");
    assert_eq!(ct3.hysteresis, pct(500_000));
    assert_eq!(ct3.rate_per_hour, None);
    assert_eq!(ct3.high, Some(Percent::whole(70)));
    // No leading letters: [defaults] only, even beside a modality table named "".
    let bare = rules.rule_for("12");
    assert_eq!(bare.high, Some(Percent::whole(70)));
    // Case-sensitive: mri12 is not an MRI.
    assert_eq!(rules.rule_for("mri12").high, Some(Percent::whole(70)));
    // A side without a value gets no band alert.
    let one_sided = Rules::parse("[defaults]\nhigh = 65\n", EPOCH).expect("valid");
    assert_eq!(one_sided.rule_for("MRI1").low, None);
}

#[test]
fn default_windows_are_rounded_up_to_the_epoch() {
    assert_eq!(
        round_up(DEFAULT_WINDOW, Duration::from_secs(7)),
        Duration::from_secs(63)
    );
    assert_eq!(
        round_up(DEFAULT_WINDOW, Duration::from_secs(3)),
        DEFAULT_WINDOW
    );
    assert_eq!(
        round_up(DEFAULT_WINDOW, Duration::from_secs(3600)),
        Duration::from_secs(3600)
    );
    assert_eq!(round_up(Duration::ZERO, EPOCH), EPOCH);
    let builtin = Rules::builtin(Duration::from_secs(7));
    assert_eq!(builtin.rule_for("MRI1").window, Duration::from_secs(63));
    let file = Rules::parse("[defaults]\nlow = 30\n", Duration::from_secs(7)).expect("valid");
    assert_eq!(file.rule_for("CT1").window, Duration::from_secs(63));
    // An explicit multiple is kept.
    let file = Rules::parse("[defaults]\nwindow = \"14s\"\n", Duration::from_secs(7)).expect("ok");
    assert_eq!(file.rule_for("CT1").window, Duration::from_secs(14));
}

#[test]
fn builtin_rules_cover_the_fleet() {
    let rules = Rules::builtin(EPOCH);
    for device in crate::fleet::device_names() {
        let rule = rules.rule_for(&device);
        assert_eq!(rule.low, Some(Percent::whole(30)), "{device}");
        assert_eq!(rule.high, Some(Percent::whole(60)), "{device}");
        let rate = (modality(&device) == "MRI").then_some(Percent::whole(5));
        assert_eq!(rule.rate_per_hour, rate, "{device}");
        assert_eq!(rule.window, DEFAULT_WINDOW);
        assert_eq!(rule.silence, DEFAULT_SILENCE);
    }
}

#[test]
fn printed_rules_read_back_the_same() {
    let text = r#"
[defaults]
high = 65.25
[modality.MRI]
low = 35.000001
rate_per_hour = 4
window = "6s"
[device."odd id \"1\""]
silence = "90s"
[device.MRI3]
high = 50
[device.77]
low = 10
"#;
    for epoch in [EPOCH, Duration::from_secs(7), Duration::from_millis(1)] {
        let epoch_text = if epoch == Duration::from_secs(7) {
            // 6s is not a multiple of 7s.
            text.replace("\"6s\"", "\"14s\"")
        } else {
            text.to_owned()
        };
        for rules in [
            Rules::builtin(epoch),
            Rules::parse(&epoch_text, epoch).expect("valid"),
        ] {
            let printed = rules.to_toml();
            let again = Rules::parse(&printed, epoch).unwrap_or_else(|e| panic!("{e}\n{printed}"));
            assert_eq!(again.to_toml(), printed);
            let mut devices = crate::fleet::device_names();
            devices.extend(["odd id \"1\"", "MRI3", "77", "X", ""].map(str::to_owned));
            for device in devices {
                assert_eq!(again.rule_for(&device), rules.rule_for(&device), "{device}");
            }
        }
    }
}

#[test]
fn each_mistake_has_its_own_error_naming_line_and_key() {
    let cases: &[(&str, usize, &str)] = &[
        ("[defaults]\nlow = \n", 2, "not TOML"),
        ("[defaults]\nlow = 1\nlow = 2\n", 3, "not TOML"),
        ("[default]\nlow = 30\n", 1, "unknown table [default]"),
        ("defaults = 3\n", 1, "defaults must be a table"),
        ("modality = 3\n", 1, "modality must be a table"),
        ("[modality.MR1]\nlow = 1\n", 1, "[modality.MR1]: a modality is"),
        ("[device.\"\"]\nlow = 1\n", 1, "must not be empty"),
        ("[defaults]\n\nlows = 30\n", 3, "unknown key lows in [defaults]"),
        ("[device.CT1]\nlow = \"30\"\n", 2, "low in [device.CT1] must be a number"),
        ("[defaults]\nhigh = 0x3c\n", 2, "high = 0x3c in [defaults]: expected a decimal"),
        ("[defaults]\nhigh = inf\n", 2, "high = inf in [defaults]: expected a decimal"),
        ("[defaults]\nhigh = 60.0000001\n", 2, "more than 6 digits"),
        ("[defaults]\nlow = -1\n", 2, "low = -1 in [defaults] is negative"),
        ("[defaults]\nrate_per_hour = 100.5\n", 2, "rate_per_hour = 100.5 in [defaults] is above 100"),
        ("[defaults]\nwindow = 60\n", 2, "window in [defaults] must be a duration in quotes"),
        ("[defaults]\nsilence = \"5 minutes please\"\n", 2, "silence = \"5 minutes please\" in [defaults]: expected a duration"),
        ("[defaults]\nsilence = \"0s\"\n", 2, "must be positive"),
        ("[defaults]\nwindow = \"2y\"\n", 2, "too long"),
        ("[modality.CT]\nwindow = \"10s\"\n", 2, "window = \"10s\" in [modality.CT] is not a multiple of the epoch (3s, see --epoch): use \"9s\" or \"12s\""),
        ("[defaults]\nwindow = \"1s\"\n", 2, "use \"3s\""),
        ("[defaults]\nlow = 60\nhigh = 60\n", 3, "high in [defaults]: low (60.0) must be below high (60.0)"),
        ("[defaults]\nhigh = 60\nlow = 70\n", 3, "low in [defaults]: low (70.0) must be below high (60.0)"),
        ("[defaults]\nlow = 30\n[device.MRI1]\nhigh = 20\n", 4, "high in [device.MRI1]: low (30.0) must be below high (20.0)"),
        ("[defaults]\nlow = 30\nhigh = 31\n", 3, "high in [defaults]: hysteresis (1.0) must be narrower than the band, high - low (1.0)"),
        ("[defaults]\nlow = 30\nhigh = 40\n[modality.MRI]\nhysteresis = 10\n", 5, "hysteresis in [modality.MRI]: hysteresis (10.0) must be narrower"),
        ("[defaults]\nrate_per_hour = 1\n", 2, "rate_per_hour in [defaults]: hysteresis (1.0) must be below rate_per_hour (1.0)"),
        ("[modality.MRI]\nrate_per_hour = 5\n[device.MRI2]\nhysteresis = 5\n", 4, "hysteresis in [device.MRI2]: hysteresis (5.0) must be below rate_per_hour (5.0)"),
    ];
    let mut kinds = std::collections::HashSet::new();
    for (text, line, says) in cases {
        let e = invalid(text);
        let message = e.to_string();
        assert!(
            message.contains(says),
            "{text:?}: {says:?} not in {message}"
        );
        assert_eq!(e.line, *line, "{text:?}: {message}");
        assert_eq!(message.lines().count(), 1, "{message}");
        kinds.insert(std::mem::discriminant(&e.mistake));
    }
    // Every kind of mistake but NotUtf8 (a property of the file's bytes: see tests/rules.rs).
    assert_eq!(kinds.len(), 17);
}

#[test]
fn the_rules_flag_takes_builtin_or_a_path() {
    assert_eq!(source("builtin"), Ok(RulesSource::Builtin));
    assert_eq!(source("r.toml"), Ok(RulesSource::File("r.toml".into())));
    assert_eq!(source("./none"), Ok(RulesSource::File("./none".into())));
    assert!(source("").is_err());
    assert_eq!(source("none"), Ok(RulesSource::None));
}

#[test]
fn severity_and_runbook_url_resolve_like_the_other_keys_and_round_trip() {
    let text = "[defaults]\nrunbook_url = \"https://wiki.example/humidity\"\n\n\
                [modality.MRI]\nseverity = \"critical\"\n\n\
                [device.MRI3]\nseverity = \"info\"\nrunbook_url = \"https://wiki.example/mri3\"\n";
    let rules = Rules::parse(text, EPOCH).expect("valid");
    let notice = |device: &str| rules.notice_for(device);
    assert_eq!(notice("MRI3").severity.as_deref(), Some("info"));
    assert_eq!(
        notice("MRI3").runbook_url.as_deref(),
        Some("https://wiki.example/mri3")
    );
    assert_eq!(notice("MRI1").severity.as_deref(), Some("critical"));
    assert_eq!(
        notice("MRI1").runbook_url.as_deref(),
        Some("https://wiki.example/humidity")
    );
    assert_eq!(
        notice("CT1").severity,
        None,
        "by kind where no table sets one"
    );
    let again = Rules::parse(&rules.to_toml(), EPOCH).expect("reads back");
    assert_eq!(again.to_toml(), rules.to_toml());
    assert_eq!(again.notice_for("MRI3"), notice("MRI3"));
    // Rules without them print as before (and keep their checksum).
    let plain = Rules::parse("[defaults]\nhigh = 60\n", EPOCH).expect("valid");
    assert!(!plain.to_toml().contains("severity") && !plain.to_toml().contains("runbook"));
}

#[test]
fn a_bad_severity_or_runbook_url_names_its_line() {
    for (text, line, says) in [
        (
            "[defaults]\nhigh = 60\nseverity = \"page\"\n",
            3,
            "expected \"critical\", \"warning\" or \"info\"",
        ),
        ("[defaults]\nseverity = 3\n", 2, "severity"),
        (
            "[defaults]\nrunbook_url = \"ftp://x/\"\n",
            2,
            "http:// or https://",
        ),
        (
            "[defaults]\nrunbook_url = \"https://x/\\u001b[2J\"\n",
            2,
            "\\u{1b}",
        ),
    ] {
        let err = invalid(text);
        assert_eq!(err.line, line, "{text}");
        let shown = err.to_string();
        assert!(shown.contains(says), "{text}: {shown}");
        assert!(!shown.contains('\u{1b}'), "{shown}");
    }
}
