//! `hygroflow rules` (gh-9 point 2): the rules in force printed as TOML that reads back the
//! same, and bad rules files refused in one line that names the line and key.

mod common;

use common::run;

/// Runs `hygroflow rules` with `args`; it must succeed. Returns stdout.
fn rules(args: &[&str]) -> String {
    let mut all = vec!["rules"];
    all.extend(args);
    let out = run(&all);
    assert!(
        out.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `hygroflow rules --rules FILE` must fail with `code` and one line containing `says`.
fn refused(file: &str, code: i32, says: &str) {
    let out = run(&["rules", "--rules", file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("hygroflow: "), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "an escape sequence reached the terminal"
    );
    assert!(stderr.contains(says), "{says:?} not in {stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn gh_9_builtin_rules_are_printed_per_modality() {
    let printed = rules(&[]);
    assert_eq!(printed, rules(&["--rules", "builtin", "--epoch", "3s"]));
    for table in [
        "[defaults]",
        "[modality.CT]",
        "[modality.LINAC]",
        "[modality.MRI]",
        "[modality.PETCT]",
        "[modality.SPECT]",
    ] {
        assert!(printed.contains(table), "{table} missing:\n{printed}");
    }
    let mri = printed.split("[modality.MRI]").nth(1).expect("MRI");
    let mri = mri.split("\n[").next().expect("MRI table");
    assert!(mri.contains("low = 30.0\nhigh = 60.0\n"), "{mri}");
    assert!(mri.contains("rate_per_hour = 5.0\n"), "{mri}");
    assert!(mri.contains("window = \"1m\"\n"), "{mri}");
    // Default windows are rounded up to the epoch.
    let printed = rules(&["--epoch", "7s"]);
    assert!(printed.contains("window = \"1m 3s\"\n"), "{printed}");
}

#[test]
fn gh_9_printed_rules_read_back_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rules.toml");
    std::fs::write(
        &file,
        "[defaults]\nlow = 25\nhigh = 65.5\n\n[modality.MRI]\nrate_per_hour = 4.000001\nwindow = \"30s\"\n\n[device.MRI12]\nhigh = 58\n\n[device.CT1]\nsilence = \"90s\"\n",
    )
    .expect("write");
    let file = file.to_str().expect("UTF-8");
    for epoch in ["3s", "10s"] {
        let printed = rules(&["--rules", file, "--epoch", epoch]);
        assert!(printed.contains("[device.MRI12]"), "{printed}");
        assert!(printed.contains("rate_per_hour = 4.000001"), "{printed}");
        let again = dir.path().join(format!("again-{epoch}.toml"));
        std::fs::write(&again, &printed).expect("write");
        let reread = rules(&["--rules", again.to_str().expect("UTF-8"), "--epoch", epoch]);
        assert_eq!(reread, printed);
    }
    let builtin = rules(&["--epoch", "7s"]);
    let again = dir.path().join("builtin.toml");
    std::fs::write(&again, &builtin).expect("write");
    assert_eq!(
        rules(&["--rules", again.to_str().expect("UTF-8"), "--epoch", "7s"]),
        builtin
    );
}

#[test]
fn gh_9_bad_rules_files_exit_2_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (text, says)) in [
        (
            &b"[defaults]\nlow = 60\nhigh = 50\n"[..],
            "line 3: high in [defaults]: low (60.0) must be below high (50.0)",
        ),
        (
            b"[defaults]\nhigh = 60.0000001\n",
            "line 2: high = 60.0000001 in [defaults] has more than 6 digits",
        ),
        (
            b"[modality.MRI]\nwindow = \"10s\"\n",
            "line 2: window = \"10s\" in [modality.MRI] is not a multiple",
        ),
        (
            b"[device.CT1]\ncolour = 1\n",
            "line 2: unknown key colour in [device.CT1]",
        ),
        (b"[sensor.X]\n", "line 1: unknown table [sensor]"),
        (b"[defaults]\nlow = 30 30\n", "line 2: not TOML"),
        (b"# ok\n[defaults]\nlow = 3\xff0\n", "line 3: not UTF-8"),
        (
            b"[device.\"\\u001b[2J\"]\nlow = 200\n",
            "line 2: low = 200 in [device.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).expect("write");
        let path = path.to_str().expect("UTF-8");
        refused(path, 2, &format!("hygroflow: rules {path} "));
        refused(path, 2, says);
    }
    let missing = dir.path().join("missing.toml");
    refused(
        missing.to_str().expect("UTF-8"),
        1,
        "cannot read rules file",
    );
}

#[test]
fn gh_22_maintenance_and_retire_after_read_back_and_their_mistakes_exit_2_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[defaults]\nretire_after = \"2h\"\n\n[device.CT1]\nretire_after = \"off\"\n\n\
         [[maintenance]]\ndevice = \"MRI*\"\nfrom = \"2026-12-07T06:00:00Z\"\nto = \"2026-12-07T08:00:00+01:00\"\nreason = \"coil service\"\n\n\
         [[maintenance]]\nmodality = \"CT\"\nfrom = \"2026-12-08T00:00:00Z\"\nto = \"2026-12-08T01:00:00Z\"\n",
    )
    .expect("write");
    let printed = rules(&["--rules", good.to_str().expect("UTF-8")]);
    assert!(printed.contains("retire_after = \"2h\""), "{printed}");
    assert!(printed.contains("retire_after = \"off\""), "{printed}");
    assert!(
        printed.contains("[[maintenance]]\ndevice = \"MRI*\"\n"),
        "{printed}"
    );
    assert!(printed.contains("reason = \"coil service\""), "{printed}");
    assert!(printed.contains("modality = \"CT\""), "{printed}");
    // What is printed reads back as the same rules.
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &printed).expect("write");
    assert_eq!(rules(&["--rules", again.to_str().expect("UTF-8")]), printed);
    // Without the new keys, nothing of them is printed: the rules keep their checksum.
    assert!(!rules(&[]).contains("retire_after"));

    for (i, (text, says)) in [
        (
            "[[maintenance]]\ndevice = \"CT1\"\nfrom = \"tomorrow\"\nto = \"2026-12-07T08:00:00Z\"\n",
            "line 3: from = \"tomorrow\" in [[maintenance]]: expected an RFC 3339 time",
        ),
        (
            "[[maintenance]]\ndevice = \"CT1\"\nfrom = \"2026-12-07T08:00:00Z\"\nto = \"2026-12-07T06:00:00Z\"\n",
            "line 4: [[maintenance]] to = \"2026-12-07T06:00:00Z\" is not after from",
        ),
        (
            "[[maintenance]]\ndevice = \"C*T\"\nfrom = \"2026-12-07T06:00:00Z\"\nto = \"2026-12-07T08:00:00Z\"\n",
            "line 2: device = \"C*T\" in [[maintenance]]: expected a device id",
        ),
        (
            "[[maintenance]]\nmodality = \"CT1\"\nfrom = \"2026-12-07T06:00:00Z\"\nto = \"2026-12-07T08:00:00Z\"\n",
            "line 2: modality = \"CT1\" in [[maintenance]]",
        ),
        (
            "[[maintenance]]\nfrom = \"2026-12-07T06:00:00Z\"\nto = \"2026-12-07T08:00:00Z\"\n",
            "[[maintenance]] needs exactly one of device",
        ),
        (
            "[[maintenance]]\ndevice = \"CT1\"\nto = \"2026-12-07T08:00:00Z\"\n",
            "[[maintenance]] needs from",
        ),
        (
            "[[maintenance]]\ndevice = \"CT1\"\nuntil = \"x\"\n",
            "line 3: unknown key until in [[maintenance]]",
        ),
        ("maintenance = 3\n", "line 1: maintenance must be an array of tables"),
        (
            "[defaults]\nretire_after = \"soon\"\n",
            "line 2: retire_after = \"soon\" in [defaults]",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).expect("write");
        refused(path.to_str().expect("UTF-8"), 2, says);
    }
}
