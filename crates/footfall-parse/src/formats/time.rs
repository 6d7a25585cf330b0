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

/// Seconds since the Unix epoch with an optional fraction, as UTC.
pub fn parse_epoch(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits = &frac[..frac.len().min(9)];
    let mut nanos: u32 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    nanos *= 10u32.pow(9 - digits.len() as u32);
    Some(Utc.timestamp_opt(secs, nanos).single()?.fixed_offset())
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
}
