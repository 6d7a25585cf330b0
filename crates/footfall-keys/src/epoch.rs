//! The pseudonym epoch: how long one person keeps one `visitor_id`.
//!
//! The ratchet has a key for every day; the visitor-id key of a date is the
//! day key of the first day of the date's epoch. With `day` (the default) a
//! person's id changes at midnight; with `week` (ISO weeks, Monday first) or
//! `month` it is the same all epoch long, so distinct visitors over any range
//! inside one epoch are exact, at the price of linking more of a person's
//! visits (docs/privacy.md).

use chrono::{Datelike, Days, NaiveDate};
use serde::{Deserialize, Serialize};

/// How long one visitor id lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Epoch {
    /// A calendar day (the default).
    #[default]
    Day,
    /// An ISO week, Monday to Sunday.
    Week,
    /// A calendar month.
    Month,
}

impl Epoch {
    /// The first day of the epoch that holds `date`.
    pub fn start(self, date: NaiveDate) -> NaiveDate {
        match self {
            Epoch::Day => date,
            Epoch::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
            Epoch::Month => date.with_day(1).expect("every month has a first day"),
        }
    }

    /// The name used in files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Epoch::Day => "day",
            Epoch::Week => "week",
            Epoch::Month => "month",
        }
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Epoch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "day" => Ok(Epoch::Day),
            "week" => Ok(Epoch::Week),
            "month" => Ok(Epoch::Month),
            other => Err(format!("unknown epoch {other:?}: day, week or month")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts() {
        let d = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        assert_eq!(Epoch::Day.start(d(12, 4)), d(12, 4));
        // 2026-12-04 is a Friday; its ISO week starts on Monday 11-30.
        assert_eq!(Epoch::Week.start(d(12, 4)), d(11, 30));
        assert_eq!(Epoch::Week.start(d(11, 30)), d(11, 30));
        assert_eq!(Epoch::Week.start(d(12, 6)), d(11, 30));
        assert_eq!(Epoch::Month.start(d(12, 31)), d(12, 1));
        assert_eq!("week".parse::<Epoch>(), Ok(Epoch::Week));
        assert!("fortnight".parse::<Epoch>().is_err());
    }
}
