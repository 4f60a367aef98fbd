//! Validation rules, one test per rule and per malformed kind.

use super::*;

const MAX: usize = DEFAULT_MAX_MESSAGE_BYTES;

fn ok(text: &str) -> Reading<'_> {
    match parse(text.as_bytes(), text.len(), MAX) {
        Ok(r) => r,
        Err(e) => panic!("{text:?} should be valid, got {e}"),
    }
}

fn err(bytes: &[u8]) -> MessageError {
    match parse(bytes, bytes.len(), MAX) {
        Ok(r) => panic!("{bytes:?} should be rejected, got {r:?}"),
        Err(e) => e,
    }
}

const SEED: &str = r#"{"guid":"0-ZZZ12345678-08K","destination":"0-AAA12345678","medicalimagingdevice":"MRI12","eventTime":"2022-08-16T13:26:39.447974Z","payload":{"format":"urn:example:sensor:humidity","data":{"humidity":71.7}}}"#;

#[test]
fn seed_message_is_valid() {
    let r = ok(SEED);
    assert_eq!(r.guid, "0-ZZZ12345678-08K");
    assert_eq!(r.device, "MRI12");
    assert_eq!(r.humidity_micro, 71_700_000);
    assert_eq!(r.event_time.as_deref(), Some("2022-08-16T13:26:39.447974Z"));
    assert!(
        matches!(r.guid, Cow::Borrowed(_)),
        "plain strings are borrowed"
    );
}

#[test]
fn both_device_spellings() {
    let r = ok(r#"{"guid":"g","medicalImagingdevice":"CT1","payload":{"data":{"humidity":1}}}"#);
    assert_eq!(r.device, "CT1");
    let r = ok(
        r#"{"guid":"g","medicalImagingdevice":"CT1","medicalimagingdevice":"CT2","payload":{"data":{"humidity":1}}}"#,
    );
    assert_eq!(
        r.device, "CT2",
        "the lower-case spelling wins when both are present"
    );
    // The alternative spelling is used only when the first is absent, not when it is bad.
    let e = err(
        br#"{"guid":"g","medicalimagingdevice":"","medicalImagingdevice":"CT1","payload":{"data":{"humidity":1}}}"#,
    );
    assert_eq!(e, MessageError::EmptyString(DEVICE));
}

#[test]
fn numbers_in_every_json_form() {
    let h = |text: &str| ok(text).humidity_micro;
    let msg = |n: &str| {
        format!(
            r#"{{"guid":"g","medicalimagingdevice":"d","payload":{{"data":{{"humidity":{n}}}}}}}"#
        )
    };
    assert_eq!(h(&msg("58")), 58_000_000);
    assert_eq!(h(&msg("5.82e1")), 58_200_000);
    assert_eq!(h(&msg("0")), 0);
    assert_eq!(h(&msg("100")), 100_000_000);
    assert_eq!(h(&msg("100.0")), 100_000_000);
    assert_eq!(h(&msg("12.345678")), 12_345_678);
    assert_eq!(h(&msg("-0.0")), 0);
}

#[test]
fn whitespace_crlf_and_unknown_fields_are_fine() {
    let text = format!("  {SEED}\r\n");
    assert_eq!(ok(&text).device, "MRI12");
    let r = ok(
        r#"{"x":[1,{"guid":5}],"guid":"g","medicalimagingdevice":"d","payload":{"extra":{"humidity":"no"},"data":{"humidity":3,"unit":"%"}}}"#,
    );
    assert_eq!(r.humidity_micro, 3_000_000);
}

#[test]
fn escaped_strings_are_decoded() {
    let r = ok(
        r#"{"guid":"a\"b","medicalimagingdevice":"M\u0052I1","payload":{"data":{"humidity":1}}}"#,
    );
    assert_eq!(r.guid, "a\"b");
    assert_eq!(r.device, "MRI1");
}

#[test]
fn guid_rules() {
    let base = |guid: &str| {
        format!(r#"{{{guid}"medicalimagingdevice":"d","payload":{{"data":{{"humidity":1}}}}}}"#)
    };
    assert_eq!(err(base("").as_bytes()), MessageError::Missing(GUID));
    assert_eq!(
        err(base(r#""guid":"","#).as_bytes()),
        MessageError::EmptyString(GUID)
    );
    assert_eq!(
        err(base(r#""guid":7,"#).as_bytes()),
        MessageError::NotAString {
            field: GUID,
            found: "a number"
        }
    );
    assert_eq!(
        err(base(r#""guid":null,"#).as_bytes()),
        MessageError::NotAString {
            field: GUID,
            found: "null"
        }
    );
}

#[test]
fn device_rules() {
    let base = |dev: &str| format!(r#"{{"guid":"g",{dev}"payload":{{"data":{{"humidity":1}}}}}}"#);
    assert_eq!(err(base("").as_bytes()), MessageError::Missing(DEVICE_ALT));
    assert_eq!(
        err(base(r#""medicalimagingdevice":"","#).as_bytes()),
        MessageError::EmptyString(DEVICE)
    );
    assert_eq!(
        err(base(r#""medicalImagingdevice":"","#).as_bytes()),
        MessageError::EmptyString(DEVICE_ALT)
    );
    assert_eq!(
        err(base(r#""medicalimagingdevice":["MRI1"],"#).as_bytes()),
        MessageError::NotAString {
            field: DEVICE,
            found: "an array"
        }
    );
}

#[test]
fn humidity_rules() {
    let msg = |h: &str| {
        format!(
            r#"{{"guid":"g","medicalimagingdevice":"d","payload":{{"data":{{"humidity":{h}}}}}}}"#
        )
    };
    assert_eq!(
        err(msg(r#""71.7""#).as_bytes()),
        MessageError::HumidityNotANumber("a string")
    );
    assert_eq!(
        err(msg("true").as_bytes()),
        MessageError::HumidityNotANumber("a boolean")
    );
    assert_eq!(
        err(msg("null").as_bytes()),
        MessageError::HumidityNotANumber("null")
    );
    assert_eq!(
        err(msg("{}").as_bytes()),
        MessageError::HumidityNotANumber("an object")
    );
    assert_eq!(
        err(msg("-0.5").as_bytes()),
        MessageError::HumidityOutOfRange(-0.5)
    );
    assert_eq!(
        err(msg("100.000001").as_bytes()),
        MessageError::HumidityOutOfRange(100.000001)
    );
    assert!(
        matches!(err(msg("1e400").as_bytes()), MessageError::Json(_)),
        "not finite"
    );
    let missing = [
        r#"{"guid":"g","medicalimagingdevice":"d"}"#,
        r#"{"guid":"g","medicalimagingdevice":"d","payload":"x"}"#,
        r#"{"guid":"g","medicalimagingdevice":"d","payload":{"data":null}}"#,
        r#"{"guid":"g","medicalimagingdevice":"d","payload":{"humidity":5}}"#,
        r#"{"guid":"g","medicalimagingdevice":"d","humidity":5}"#,
    ];
    for text in missing {
        assert_eq!(
            err(text.as_bytes()),
            MessageError::Missing(HUMIDITY),
            "{text}"
        );
    }
}

#[test]
fn malformed_kinds() {
    assert_eq!(err(b""), MessageError::Empty);
    assert_eq!(err(b"  \r"), MessageError::Empty);
    assert_eq!(
        err(b"{\"guid\":\"\xff\"}"),
        MessageError::NotUtf8 { valid_up_to: 9 }
    );
    assert!(matches!(
        err(&SEED.as_bytes()[..SEED.len() - 3]),
        MessageError::Json(_)
    ));
    assert!(matches!(
        err(format!("{SEED}{SEED}").as_bytes()),
        MessageError::Json(_)
    ));
    assert!(matches!(err(b"{\"guid\":\"g\",}"), MessageError::Json(_)));
    assert_eq!(err(b"[1,2]"), MessageError::NotAnObject("an array"));
    assert_eq!(err(b"\"text\""), MessageError::NotAnObject("a string"));
    assert_eq!(err(b"42"), MessageError::NotAnObject("a number"));
}

#[test]
fn size_limit_is_checked_before_parsing() {
    let big = vec![b' '; 10 << 20];
    assert_eq!(
        parse(&big, big.len(), MAX),
        Err(MessageError::TooLarge {
            len: 10 << 20,
            limit: MAX
        })
    );
    // A truncated prefix of a longer message reports the full length.
    assert_eq!(
        parse(b"{", 5_000_000, MAX),
        Err(MessageError::TooLarge {
            len: 5_000_000,
            limit: MAX
        })
    );
}

#[test]
fn every_error_has_a_kind_and_a_message() {
    let e = MessageError::NotAString {
        field: GUID,
        found: "a number",
    };
    assert_eq!(e.kind(), "not_a_string");
    assert_eq!(
        e.to_string(),
        "field `guid` must be a string, found a number"
    );
}

/// The fast path against serde_json: each of these messages, and every message one byte away
/// from it (a byte removed, or replaced by one of JSON's structural or number bytes, a quote,
/// an escape, whitespace, a control character or a letter), parses to the same reading or the
/// same error both ways. The messages themselves must take the fast path, or it is never used.
#[test]
fn the_fast_path_agrees_with_serde_one_byte_away_from_real_messages() {
    let messages = [
        SEED,
        r#"{"guid":"0-ZZZ1-0AK","medicalImagingdevice":"CT3","eventTime":"2022-08-16T13:26:39Z","payload":{"data":{"humidity":7e1,"x":[1,{"a":null}]}}}"#,
        "\r\n { \"payload\" : { \"data\" : { \"humidity\" : 0 } , \"format\" : [ ] } , \"guid\" : \"g\" , \"medicalimagingdevice\" : \"PET-CT1\" , \"n\" : -0.5E-3 , \"t\" : true , \"f\" : false }\t",
        r#"{"guid":"g","medicalimagingdevice":"MRI12","payload":{"data":{"humidity":100.000000}},"guid":"ü","payload":{"data":{"other":1}}}"#,
    ];
    let bytes: &[u8] = b"{}[],:\"\\ \t\n\r\x00\x1f-+.eE0159xatfnu\xc3";
    let mut compared = 0;
    for message in messages {
        assert!(
            fast::parse(message).is_some(),
            "{message:?} should take the fast path"
        );
        let original = message.as_bytes();
        let mut variants = Vec::new();
        for at in 0..original.len() {
            let mut removed = original.to_vec();
            removed.remove(at);
            variants.push(removed);
            for &byte in bytes {
                let mut replaced = original.to_vec();
                replaced[at] = byte;
                variants.push(replaced);
            }
        }
        variants.push(original.to_vec());
        for variant in &variants {
            assert_eq!(
                parse(variant, variant.len(), MAX),
                parse_with_serde(variant, variant.len(), MAX),
                "{:?}",
                String::from_utf8_lossy(variant)
            );
            compared += 1;
        }
    }
    assert!(compared > 15_000, "{compared} variants");
}

/// Numbers the fast path evaluates read exactly as serde_json reads them; longer ones are
/// left to serde_json.
#[test]
fn the_fast_path_reads_humidity_as_serde_does() {
    let numbers = [
        "0",
        "-0",
        "-0.0",
        "0.0",
        "100",
        "100.0",
        "1e2",
        "1E+2",
        "10e1",
        "0.1e3",
        "71.7",
        "71.70",
        "33.333333",
        "99.999999",
        "99.9999995",
        "12.3456789012345",
        "12.34567890123456",
        "0.000001",
        "0.0000005",
        "1e-7",
        "5e-7",
        "0.00000050",
        "1234567890123e-11",
        "100.000000000000000001",
        "7e0",
        "700e-1",
        "70000000000000000000000e-21",
        "1e22",
        "1e-22",
        "1e23",
        "4.5e-23",
        "0e400",
        "0e-400",
        "100.0000000000000000",
    ];
    for number in numbers {
        let text = format!(
            r#"{{"guid":"g","medicalimagingdevice":"CT1","payload":{{"data":{{"humidity":{number}}}}}}}"#
        );
        assert_eq!(
            parse(text.as_bytes(), text.len(), MAX),
            parse_with_serde(text.as_bytes(), text.len(), MAX),
            "{number}"
        );
    }
}
