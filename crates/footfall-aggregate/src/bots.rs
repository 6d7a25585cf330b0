//! Humans and bots: which visitor-days are automated, and why.
//!
//! A *visitor-day* is one `visitor_id` on one site and date. It is a **bot**
//! when one of the rules below holds for its requests of that date, and a
//! **human** otherwise; every request, page view, visit and visitor of that
//! visitor-day is counted under its audience, so in every summary table the
//! `human` rows plus the `bot` rows give the total.
//!
//! The rules, tried in this order; the first that holds is the visitor-day's
//! `bot_reason` ([`BOT_REASONS`]):
//!
//! | reason | holds when |
//! |---|---|
//! | `user_agent` | a request came from a bot user agent (the event's `is_bot`) |
//! | `robots_txt` | it fetched `/robots.txt` |
//! | `login_flood` | at least [`BotRules::login_posts`] POSTs to a login or XML-RPC endpoint ([`BotRules::login_paths`]) |
//! | `head_only` | every request was a HEAD |
//! | `mostly_4xx` | at least [`BotRules::mostly_4xx_min_requests`] requests, and at least [`BotRules::mostly_4xx_share`] of them answered 4xx |
//! | `polling` | at least [`BotRules::polling_share`] of its requests are fixed-interval polling (below) |
//! | `request_rate` | at least [`BotRules::max_per_minute`] requests other than assets within 60 seconds |
//! | `no_assets` | at least [`BotRules::no_assets_min_pages`] page requests and not one asset |
//! | `assets_only` | only assets, and not one with a referrer (an image or icon fetched on its own: scrapers; a browser fetches assets for a page, or with the linking page as referrer) |
//!
//! **Polling.** A visitor's requests to one route are polling when there are at
//! least [`BotRules::polling_min_requests`] of them and at least 80 % of the
//! gaps between them lie within [`BotRules::polling_jitter`] of their median
//! gap (or within one second), the median being at least one second. Every
//! such request after the first is not a page view, whoever made it.
//!
//! Every threshold is configurable (`[aggregate.bots]`, docs/configuration.md);
//! a threshold of 0 switches its rule off.

use serde::{Deserialize, Serialize};

/// Every `bot_reason`, in the order the rules are tried.
pub const BOT_REASONS: [&str; 9] = [
    "user_agent",
    "robots_txt",
    "login_flood",
    "head_only",
    "mostly_4xx",
    "polling",
    "request_rate",
    "no_assets",
    "assets_only",
];

/// The two audiences of every summary row.
pub const AUDIENCES: [&str; 2] = ["human", "bot"];

/// The audience of a class code: 0 is human, `1 + i` is the bot reason `i`.
pub(crate) fn audience(class: u8) -> &'static str {
    AUDIENCES[usize::from(class != HUMAN)]
}

/// The `bot_reason` of a class code (none for humans).
pub(crate) fn reason(class: u8) -> Option<&'static str> {
    (class != HUMAN).then(|| BOT_REASONS[usize::from(class) - 1])
}

/// The class code of a human visitor-day.
pub(crate) const HUMAN: u8 = 0;

/// The behavioural bot rules and their thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotRules {
    /// Whether fetching `/robots.txt` makes a bot.
    pub robots_txt: bool,
    /// POSTs to a login endpoint that make a bot (0: off).
    pub login_posts: u32,
    /// Path endings or fragments of login and XML-RPC endpoints (case-insensitive).
    pub login_paths: Vec<String>,
    /// Whether a visitor-day of HEAD requests only is a bot.
    pub head_only: bool,
    /// Requests a visitor-day needs before `mostly_4xx` applies (0: off).
    pub mostly_4xx_min_requests: u32,
    /// Share of 4xx answers that makes a bot.
    pub mostly_4xx_share: f64,
    /// Non-asset requests within 60 seconds that make a bot (0: off).
    pub max_per_minute: u32,
    /// Page requests without a single asset that make a bot (0: off).
    pub no_assets_min_pages: u32,
    /// Requests to one route that can be polling (0: off).
    pub polling_min_requests: u32,
    /// Allowed relative deviation of a polling gap from the median gap.
    pub polling_jitter: f64,
    /// Share of a visitor-day's requests that, being polling, make a bot.
    pub polling_share: f64,
    /// Whether a visitor-day of assets only, none with a referrer, is a bot.
    pub assets_only: bool,
}

impl Default for BotRules {
    fn default() -> Self {
        BotRules {
            robots_txt: true,
            login_posts: 3,
            login_paths: [
                "wp-login.php",
                "xmlrpc.php",
                "/login",
                "/signin",
                "/user/login",
            ]
            .map(String::from)
            .to_vec(),
            head_only: true,
            mostly_4xx_min_requests: 5,
            mostly_4xx_share: 0.5,
            max_per_minute: 30,
            no_assets_min_pages: 8,
            polling_min_requests: 6,
            polling_jitter: 0.1,
            polling_share: 0.8,
            assets_only: true,
        }
    }
}

impl BotRules {
    /// Checks the shares and lists; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("mostly_4xx_share", self.mostly_4xx_share),
            ("polling_share", self.polling_share),
            ("polling_jitter", self.polling_jitter),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "aggregate.bots.{key} = {v}: must be between 0 and 1"
                ));
            }
        }
        if self.login_paths.iter().any(|p| p.trim().is_empty()) {
            return Err("aggregate.bots.login_paths: an entry is empty".into());
        }
        Ok(())
    }

    /// Whether `path` is a login or XML-RPC endpoint.
    pub(crate) fn is_login_path(&self, path: &str) -> bool {
        let path = path.to_ascii_lowercase();
        self.login_paths
            .iter()
            .any(|p| path.contains(&p.to_ascii_lowercase()))
    }
}

/// What one visitor-day did, counted over its requests of the date.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Profile {
    pub requests: u32,
    pub user_agent_bot: bool,
    pub robots_txt: bool,
    pub login_posts: u32,
    pub heads: u32,
    pub status_4xx: u32,
    pub pages: u32,
    pub assets: u32,
    pub polling: u32,
    pub max_per_minute: u32,
    pub referred: bool,
}

impl BotRules {
    /// The class code of a visitor-day: [`HUMAN`], or `1 +` the index of the
    /// first rule that holds in [`BOT_REASONS`].
    pub(crate) fn classify(&self, p: &Profile) -> u8 {
        let at_least = |n: u32, min: u32| min > 0 && n >= min;
        let rules = [
            p.user_agent_bot,
            self.robots_txt && p.robots_txt,
            at_least(p.login_posts, self.login_posts),
            self.head_only && p.requests > 0 && p.heads == p.requests,
            at_least(p.requests, self.mostly_4xx_min_requests)
                && f64::from(p.status_4xx) >= self.mostly_4xx_share * f64::from(p.requests),
            self.polling_min_requests > 0
                && p.polling > 0
                && f64::from(p.polling) >= self.polling_share * f64::from(p.requests),
            at_least(p.max_per_minute, self.max_per_minute),
            at_least(p.pages, self.no_assets_min_pages) && p.assets == 0,
            self.assets_only && p.requests > 0 && p.assets == p.requests && !p.referred,
        ];
        match rules.iter().position(|&r| r) {
            Some(i) => i as u8 + 1,
            None => HUMAN,
        }
    }

    /// Whether requests at `times` (microseconds, ascending) to one route are
    /// fixed-interval polling.
    pub fn is_polling(&self, times: &[i64]) -> bool {
        let min = self.polling_min_requests as usize;
        if min == 0 || times.len() < min.max(3) {
            return false;
        }
        let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let mut sorted = gaps.clone();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        if median < 1_000_000 {
            return false;
        }
        let allowed = ((median as f64 * self.polling_jitter) as i64).max(1_000_000);
        gaps.retain(|g| (g - median).abs() <= allowed);
        gaps.len() * 5 >= (times.len() - 1) * 4
    }
}

/// The most requests of `times` (microseconds, ascending) within any 60 seconds.
pub(crate) fn max_per_minute(times: &[i64]) -> u32 {
    let mut best = 0;
    let mut from = 0;
    for (i, &t) in times.iter().enumerate() {
        while t - times[from] >= 60_000_000 {
            from += 1;
        }
        best = best.max(i - from + 1);
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn each_rule_gives_its_reason_and_the_first_wins() {
        let r = BotRules::default();
        let human = Profile {
            requests: 12,
            pages: 4,
            assets: 8,
            max_per_minute: 3,
            ..Default::default()
        };
        assert_eq!(r.classify(&human), HUMAN);
        let cases: [(&str, Profile); 9] = [
            (
                "user_agent",
                Profile {
                    user_agent_bot: true,
                    robots_txt: true,
                    ..human.clone()
                },
            ),
            (
                "robots_txt",
                Profile {
                    robots_txt: true,
                    ..human.clone()
                },
            ),
            (
                "login_flood",
                Profile {
                    login_posts: 3,
                    ..human.clone()
                },
            ),
            (
                "head_only",
                Profile {
                    requests: 2,
                    heads: 2,
                    pages: 2,
                    assets: 0,
                    ..Default::default()
                },
            ),
            (
                "mostly_4xx",
                Profile {
                    status_4xx: 6,
                    ..human.clone()
                },
            ),
            (
                "polling",
                Profile {
                    polling: 10,
                    ..human.clone()
                },
            ),
            (
                "request_rate",
                Profile {
                    max_per_minute: 30,
                    ..human.clone()
                },
            ),
            (
                "no_assets",
                Profile {
                    pages: 8,
                    assets: 0,
                    ..human.clone()
                },
            ),
            (
                "assets_only",
                Profile {
                    requests: 1,
                    assets: 1,
                    ..Default::default()
                },
            ),
        ];
        let hotlinked = Profile {
            requests: 1,
            assets: 1,
            referred: true,
            ..Default::default()
        };
        assert_eq!(r.classify(&hotlinked), HUMAN, "an asset with a referrer");
        for (want, p) in cases {
            assert_eq!(reason(r.classify(&p)), Some(want), "{p:?}");
            assert_eq!(audience(r.classify(&p)), "bot");
        }
        assert_eq!(audience(HUMAN), "human");
        assert_eq!(reason(HUMAN), None);
    }

    #[test]
    fn zero_switches_a_rule_off() {
        let r = BotRules {
            no_assets_min_pages: 0,
            max_per_minute: 0,
            login_posts: 0,
            ..BotRules::default()
        };
        let p = Profile {
            requests: 50,
            pages: 50,
            login_posts: 50,
            max_per_minute: 50,
            ..Default::default()
        };
        assert_eq!(r.classify(&p), HUMAN);
    }

    #[test]
    fn polling_needs_regular_gaps() {
        let r = BotRules::default();
        let every_30s: Vec<i64> = (0..10).map(|i| i * 30 * S).collect();
        assert!(r.is_polling(&every_30s));
        let jittered: Vec<i64> = (0..10).map(|i| i * 30 * S + (i % 3) * S / 2).collect();
        assert!(r.is_polling(&jittered));
        let human: Vec<i64> = [0, 5, 70, 75, 300, 302, 900, 1500].map(|s| s * S).to_vec();
        assert!(!r.is_polling(&human));
        assert!(!r.is_polling(&every_30s[..5]), "too few");
        let burst: Vec<i64> = (0..10).map(|i| i * S / 10).collect();
        assert!(
            !r.is_polling(&burst),
            "sub-second gaps are a burst, not polling"
        );
    }

    #[test]
    fn requests_per_minute_is_a_sliding_window() {
        assert_eq!(max_per_minute(&[]), 0);
        assert_eq!(max_per_minute(&[0, 59 * S, 60 * S, 61 * S]), 3);
        assert_eq!(max_per_minute(&[0, 120 * S]), 1);
    }

    #[test]
    fn bad_shares_name_their_key() {
        let r = BotRules {
            polling_share: 1.5,
            ..BotRules::default()
        };
        assert!(r.validate().unwrap_err().contains("polling_share"));
        assert!(BotRules::default().validate().is_ok());
    }
}
