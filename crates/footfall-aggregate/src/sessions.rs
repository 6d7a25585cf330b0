//! Visits (sessions): splitting one visitor's requests, in event time, into visits.
//!
//! A visitor's requests (those not answered 4xx, see
//! [`footfall_event::VisitEvent::is_visitor_request`]) form one visit until
//!
//! * the visitor is inactive for longer than the visit timeout (30 minutes by
//!   default): the next request starts a new visit; or
//! * a request carries a campaign (`utm_source` / `utm_campaign`) other than the
//!   one the visit started with (including a visit that started without one): it
//!   starts a new visit. Requests without UTM parameters (internal navigation,
//!   assets) never end a visit.
//!
//! The splitting is pure and streaming: feed a visitor's requests in time order
//! to [`Sessionizer::next`]; it says which ones start a visit.

use std::time::Duration;

use crate::bots::BotRules;

/// Options for visits and privacy folding.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryOptions {
    /// Inactivity after which a visitor's next request starts a new visit.
    pub visit_timeout: Duration,
    /// Search terms, referrer hosts and campaign (UTM) values used by fewer
    /// distinct visitors than this on one day and site (every partition
    /// together) are folded into `(other)`.
    pub min_visitors: u32,
    /// The behavioural bot rules ([`crate::bots`]).
    pub bots: BotRules,
    /// The keyring's pseudonym epoch: whether weekly and monthly visitors
    /// are exact ([`crate::periods`]).
    pub epoch: footfall_keys::Epoch,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        SummaryOptions {
            visit_timeout: Duration::from_secs(30 * 60),
            min_visitors: 3,
            bots: BotRules::default(),
            epoch: footfall_keys::Epoch::Day,
        }
    }
}

impl SummaryOptions {
    pub(crate) fn timeout_us(&self) -> i64 {
        i64::try_from(self.visit_timeout.as_micros()).unwrap_or(i64::MAX)
    }
}

/// Campaign identity of a request: 0 for none, otherwise any value that is
/// equal for equal (`utm_source`, `utm_campaign`) pairs.
pub type CampaignKey = u64;

/// Splits one visitor's requests into visits. Call [`Sessionizer::reset`] between visitors.
#[derive(Debug, Clone)]
pub struct Sessionizer {
    timeout_us: i64,
    last_us: Option<i64>,
    campaign: CampaignKey,
}

impl Sessionizer {
    /// A sessionizer with the given inactivity timeout, in microseconds.
    pub fn new(timeout_us: i64) -> Self {
        Sessionizer {
            timeout_us,
            last_us: None,
            campaign: 0,
        }
    }

    /// Its timeout, the last request's time and the open visit's campaign
    /// (what [`Sessionizer::from_parts`] takes back).
    pub(crate) fn parts(&self) -> (i64, Option<i64>, CampaignKey) {
        (self.timeout_us, self.last_us, self.campaign)
    }

    /// A sessionizer standing where [`Sessionizer::parts`] was taken.
    pub(crate) fn from_parts(
        (timeout_us, last_us, campaign): (i64, Option<i64>, CampaignKey),
    ) -> Self {
        Sessionizer {
            timeout_us,
            last_us,
            campaign,
        }
    }

    /// Starts a new visitor.
    pub fn reset(&mut self) {
        self.last_us = None;
        self.campaign = 0;
    }

    /// Feeds the next request of the visitor (time in microseconds, non-decreasing)
    /// and returns whether it starts a new visit.
    pub fn next(&mut self, ts_us: i64, campaign: CampaignKey) -> bool {
        let starts = match self.last_us {
            None => true,
            Some(last) => {
                ts_us.saturating_sub(last) > self.timeout_us
                    || (campaign != 0 && campaign != self.campaign)
            }
        };
        if starts {
            self.campaign = campaign;
        }
        self.last_us = Some(ts_us);
        starts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn starts(hits: &[(i64, CampaignKey)]) -> Vec<bool> {
        let mut s = Sessionizer::new(30 * MIN);
        hits.iter().map(|&(t, c)| s.next(t, c)).collect()
    }

    #[test]
    fn inactivity_splits_after_the_timeout_not_at_it() {
        assert_eq!(
            starts(&[(0, 0), (30 * MIN, 0), (60 * MIN + 1, 0), (61 * MIN, 0)]),
            vec![true, false, true, false]
        );
    }

    #[test]
    fn campaign_change_splits_but_missing_campaign_does_not() {
        // A (no utm) -> B carries campaign 7 -> C none -> D campaign 7 -> E campaign 9
        assert_eq!(
            starts(&[(0, 0), (MIN, 7), (2 * MIN, 0), (3 * MIN, 7), (4 * MIN, 9)]),
            vec![true, true, false, false, true]
        );
    }

    #[test]
    fn reset_starts_a_new_visitor() {
        let mut s = Sessionizer::new(30 * MIN);
        assert!(s.next(0, 5));
        assert!(!s.next(MIN, 0));
        s.reset();
        assert!(s.next(2 * MIN, 0));
        // The visit started without a campaign: a campaign request starts a new one.
        assert!(s.next(3 * MIN, 5));
        assert!(!s.next(4 * MIN, 5));
    }
}
