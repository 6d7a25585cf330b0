//! Timestamp parsing shared by the formats.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

fn two(b: &[u8]) -> Option<u32> {
    if b.len() == 2 && b[0].is_ascii_digit() && b[1].is_ascii_digit() {
        Some(((b[0] - b'0') * 10 + (b[1] - b'0')) as u32)
    } else {
        None
    }
}

fn month(b: &[u8]) -> Option<u32> {
    Some(match b {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// `10/Oct/2000:13:55:36 -0700` (Common Log Format), optionally with a fraction
/// of a second after the seconds. The offset may be absent (then UTC).
pub fn parse_clf_time(s: &str) -> Option<DateTime<FixedOffset>> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
    {
        return None;
    }
    let day = two(&b[0..2])?;
    let mon = month(&b[3..6])?;
    let year = (two(&b[7..9])? * 100 + two(&b[9..11])?) as i32;
    let (h, m, sec) = (two(&b[12..14])?, two(&b[15..17])?, two(&b[18..20])?);
    let mut rest = &b[20..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        let digits = &frac[..n.min(9)];
        for &d in digits {
            nanos = nanos * 10 + (d - b'0') as u32;
        }
        nanos *= 10u32.pow(9 - digits.len() as u32);
        rest = &frac[n..];
    }
    let offset = match rest {
        [] => FixedOffset::east_opt(0)?,
        [b' ', sign @ (b'+' | b'-'), hh0, hh1, mm0, mm1] => {
            let secs = (two(&[*hh0, *hh1])? * 3600 + two(&[*mm0, *mm1])? * 60) as i32;
            FixedOffset::east_opt(if *sign == b'-' { -secs } else { secs })?
        }
        _ => return None,
    };
    let naive = NaiveDate::from_ymd_opt(year, mon, day)?.and_hms_nano_opt(h, m, sec, nanos)?;
    offset.from_local_datetime(&naive).single()
}

/// The day of the last CLF time a source carried, with its offset: a log's
/// lines share both for hours, so [`parse_clf_time_with`] works out only the
/// time of day for the next ones.
#[derive(Debug, Clone, Default)]
pub struct ClfDay {
    /// `dd/Mon/yyyy` and ` +zzzz` as written.
    key: [u8; 17],
    day: Option<(NaiveDate, FixedOffset)>,
}

/// [`parse_clf_time`], with the day and offset taken from `last` when the
/// time has the usual form (`dd/Mon/yyyy:HH:MM:SS +zzzz`) and they are the
/// ones written there before. Always the same result as [`parse_clf_time`].
pub fn parse_clf_time_with(s: &str, last: &mut ClfDay) -> Option<DateTime<FixedOffset>> {
    let b = s.as_bytes();
    if b.len() != 26 || b[20] != b' ' {
        return parse_clf_time(s);
    }
    let mut key = [0u8; 17];
    key[..11].copy_from_slice(&b[..11]);
    key[11..].copy_from_slice(&b[20..]);
    let (date, offset) = match last.day {
        Some(day) if last.key == key => day,
        _ => {
            let t = parse_clf_time(s)?;
            *last = ClfDay {
                key,
                day: Some((t.date_naive(), *t.offset())),
            };
            return Some(t);
        }
    };
    if b[11] != b':' || b[14] != b':' || b[17] != b':' {
        return parse_clf_time(s);
    }
    let (h, m, sec) = (two(&b[12..14])?, two(&b[15..17])?, two(&b[18..20])?);
    if h > 23 || m > 59 || sec > 59 {
        return parse_clf_time(s);
    }
    // The UTC time of day; a time whose UTC day is another goes the long way.
    let utc = (h * 3600 + m * 60 + sec) as i32 - offset.local_minus_utc();
    if !(0..86_400).contains(&utc) {
        return parse_clf_time(s);
    }
    let time = NaiveTime::from_num_seconds_from_midnight_opt(utc as u32, 0)?;
    Some(DateTime::from_naive_utc_and_offset(
        NaiveDateTime::new(date, time),
        offset,
    ))
}

/// RFC 3339 / ISO 8601 (`2019-03-11T10:20:30+01:00`, `...Z`, with or without a
/// fraction); a time without an offset is taken as UTC.
pub fn parse_iso8601(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t);
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&n).fixed_offset());
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Epoch numbers. The unit goes by magnitude: seconds below 10^11 (until the
// year 5138), milliseconds below 10^14, microseconds below 10^17 and
// nanoseconds above, which covers nginx's `$msec`, Squid's time and every
// `time_format` Caddy offers.

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Nanoseconds per unit for an epoch value with integer part `int_part`
/// (seconds below 10^11, then milli-, micro-, nanoseconds).
fn epoch_unit_nanos(int_part: f64) -> i128 {
    if int_part < 1e11 {
        NANOS_PER_SEC
    } else if int_part < 1e14 {
        1_000_000
    } else if int_part < 1e17 {
        1_000
    } else {
        1
    }
}

fn epoch_from_nanos(total: i128) -> Option<DateTime<FixedOffset>> {
    let secs = i64::try_from(total.div_euclid(NANOS_PER_SEC)).ok()?;
    let nanos = u32::try_from(total.rem_euclid(NANOS_PER_SEC)).ok()?;
    DateTime::from_timestamp(secs, nanos).map(|t| t.fixed_offset())
}

/// An epoch number written as text (`1646861401.524`, `1384443873878`), as
/// UTC: digits with an optional fraction, surrounding whitespace ignored,
/// the unit by magnitude (see above), exact to the nanosecond. Signs,
/// exponents and anything else are `None`.
pub fn parse_epoch(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int.len() > 21 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int_v: i128 = int.parse().ok()?;
    let unit = epoch_unit_nanos(int_v as f64);
    // Fraction digits beyond the unit's nanosecond resolution are dropped.
    let mut frac_nanos: i128 = 0;
    let mut scale = unit;
    for d in frac.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        frac_nanos += i128::from(d - b'0') * scale;
    }
    epoch_from_nanos(int_v.checked_mul(unit)? + frac_nanos)
}

/// An epoch number given as a number (a JSON value), as UTC, the unit by
/// magnitude like [`parse_epoch`]. The fraction is rounded to the
/// microsecond: a binary float carries no more than that.
pub(crate) fn epoch_from_f64(v: f64) -> Option<DateTime<FixedOffset>> {
    if !v.is_finite() || !(0.0..=1e21).contains(&v) {
        return None;
    }
    let whole = v.trunc();
    let micros_per_unit = epoch_unit_nanos(whole) / 1000;
    let micros = if micros_per_unit > 0 {
        // The whole part is exact; only the fraction carries float error.
        (whole as i128).checked_mul(micros_per_unit)?
            + ((v - whole) * micros_per_unit as f64).round() as i128
    } else {
        (v / 1000.0).round() as i128
    };
    epoch_from_nanos(micros.checked_mul(1000)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_times() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "plain",
                "10/Oct/2000:13:55:36 -0700",
                Some("2000-10-10T13:55:36-07:00"),
            ),
            (
                "half-hour offset",
                "22/Jan/2019:03:56:14 +0330",
                Some("2019-01-22T03:56:14+03:30"),
            ),
            (
                "fraction",
                "17/May/2015:10:05:03.250 +0000",
                Some("2015-05-17T10:05:03.250+00:00"),
            ),
            (
                "no offset",
                "17/May/2015:10:05:03",
                Some("2015-05-17T10:05:03+00:00"),
            ),
            ("bad month", "17/Foo/2015:10:05:03 +0000", None),
            ("bad day", "32/May/2015:10:05:03 +0000", None),
            ("short", "17/May/2015", None),
            ("junk offset", "17/May/2015:10:05:03 +00x0", None),
        ];
        for (name, input, want) in cases {
            let got = parse_clf_time(input)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false));
            assert_eq!(got.as_deref(), *want, "{name}");
        }
    }

    #[test]
    fn the_day_cache_changes_no_result() {
        // Times around midnight in several offsets, across days, months and
        // a leap day, in an order that switches the cached day back and
        // forth, plus malformed ones.
        let mut inputs = Vec::new();
        for day in [
            "28/Feb/2024",
            "29/Feb/2024",
            "01/Mar/2024",
            "31/Dec/2023",
            "01/Jan/2024",
            "30/Feb/2024",
        ] {
            for off in [" +0000", " -0700", " +0530", " +1400", " -1200", " +00x0"] {
                for hms in [
                    "00:00:00", "05:29:59", "05:30:00", "06:59:59", "11:59:59", "12:00:00",
                    "16:59:59", "17:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60",
                    "1a:00:00", "12-00:00",
                ] {
                    inputs.push(format!("{day}:{hms}{off}"));
                }
            }
        }
        inputs.push("17/May/2015:10:05:03.250 +0000".into());
        inputs.push("17/May/2015:10:05:03".into());
        let mut last = ClfDay::default();
        for round in 0..3 {
            for (i, s) in inputs.iter().enumerate() {
                let s = if round == 2 {
                    &inputs[(i * 37) % inputs.len()]
                } else {
                    s
                };
                assert_eq!(parse_clf_time_with(s, &mut last), parse_clf_time(s), "{s}");
            }
        }
    }

    #[test]
    fn iso_and_epoch() {
        assert_eq!(
            parse_iso8601("2019-03-11T10:20:30+01:00")
                .unwrap()
                .to_rfc3339(),
            "2019-03-11T10:20:30+01:00"
        );
        assert_eq!(
            parse_iso8601("2019-03-11T10:20:30.5Z")
                .unwrap()
                .timestamp_subsec_millis(),
            500
        );
        assert!(parse_iso8601("yesterday").is_none());
        assert_eq!(
            parse_epoch("1646861401.5241024").unwrap().timestamp(),
            1646861401
        );
        assert_eq!(
            parse_epoch("1646861401.5")
                .unwrap()
                .timestamp_subsec_millis(),
            500
        );
        assert!(parse_epoch("12a").is_none());
        assert!(parse_epoch("1.2.3").is_none());
    }

    /// nginx `$msec` and Squid read epoch text through the same parser as
    /// the JSON formats: seconds with a fraction, the unit by magnitude.
    #[test]
    fn one_epoch_parser() {
        let ms = |s: &str| parse_epoch(s).map(|t| t.timestamp_millis());
        assert_eq!(ms(" 1384443873.878 "), Some(1_384_443_873_878));
        assert_eq!(ms("1384443873878"), Some(1_384_443_873_878));
        assert_eq!(ms("1384443873878000"), Some(1_384_443_873_878));
        assert_eq!(ms("1384443873878000000"), Some(1_384_443_873_878));
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms("5."), Some(5_000));
        for bad in ["", ".5", "-5", "+5", "1e9", "1 2"] {
            assert_eq!(ms(bad), None, "{bad:?}");
        }
        assert_eq!(
            epoch_from_f64(1_384_443_873.878).map(|t| t.timestamp_millis()),
            Some(1_384_443_873_878)
        );
    }
}
