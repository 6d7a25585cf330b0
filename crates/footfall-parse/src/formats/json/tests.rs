use super::caddy::go_duration_ms;
use super::*;

fn ts(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

#[test]
fn clf_times() {
    assert_eq!(
        parse_time_text("[17/Nov/2013:06:31:30 -0500]"),
        Some(ts("2013-11-17T06:31:30-05:00"))
    );
    assert_eq!(parse_time_text("31/Feb/2000:13:55:36 -0700"), None);
}

#[test]
fn iso_times() {
    assert_eq!(
        parse_time_text("2013-10-10T16:52:00+02:00"),
        Some(ts("2013-10-10T16:52:00+02:00"))
    );
    assert_eq!(
        parse_time_text("2013-10-10T16:52:00.5+0200"),
        Some(ts("2013-10-10T16:52:00.5+02:00"))
    );
    assert_eq!(
        parse_time_text("2013-10-10 16:52:00"),
        Some(ts("2013-10-10T16:52:00Z"))
    );
    assert_eq!(
        parse_time_text("2023-08-11T11:41:25"),
        Some(ts("2023-08-11T11:41:25Z"))
    );
    assert_eq!(
        parse_time_text("2023-08-11T11:39:21.773360139Z"),
        Some(ts("2023-08-11T11:39:21.773360139Z"))
    );
    assert_eq!(parse_time_text("yesterday"), None);
}

#[test]
fn epoch_times() {
    assert_eq!(
        parse_time_text("1384443873.878"),
        Some(ts("2013-11-14T15:44:33.878Z"))
    );
    assert_eq!(
        parse_time_text("1384443873878"),
        Some(ts("2013-11-14T15:44:33.878Z"))
    );
    assert_eq!(
        epoch_from_f64(1384443873878000000.0),
        Some(ts("2013-11-14T15:44:33.878Z"))
    );
    assert_eq!(epoch_from_f64(-1.0), None);
    assert_eq!(epoch_from_f64(f64::NAN), None);
    assert_eq!(parse_time_text("1.2.3"), None);
}

#[test]
fn go_durations() {
    assert_eq!(go_duration_ms("1.5ms"), Some(1.5));
    assert_eq!(go_duration_ms("2m3.5s"), Some(123_500.0));
    assert_eq!(go_duration_ms("350µs"), Some(0.35));
    assert_eq!(go_duration_ms("0"), Some(0.0));
    assert_eq!(go_duration_ms("5 parsecs"), None);
    assert_eq!(go_duration_ms("ms"), None);
}

#[test]
fn hex_escapes() {
    assert_eq!(
        nginx_hex_escapes_to_json(r#"{"a":"x\x22y\xC3\xA4\x5C\x01"}"#),
        "{\"a\":\"x\\\"yä\\\\\\u0001\"}"
    );
    assert_eq!(
        nginx_hex_escapes_to_json(r#"{"a":"\x2"}"#),
        r#"{"a":"\x2"}"#
    );
}

#[test]
fn mapping_from_yaml_overrides_defaults() {
    let m: JsonMapping = serde_yaml::from_str("client: [ip]\nduration_unit: ms\n").unwrap();
    assert_eq!(m.client, vec!["ip".to_owned()]);
    assert_eq!(m.duration_unit, DurationUnit::Milliseconds);
    assert_eq!(m.status, JsonMapping::default().status);
    assert!(serde_yaml::from_str::<JsonMapping>("clients: [ip]").is_err());
    let round_trip: JsonMapping =
        serde_yaml::from_str(&serde_yaml::to_string(&m).unwrap()).unwrap();
    assert_eq!(round_trip, m);
}
