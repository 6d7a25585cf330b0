//! Summary tables: one day's events (of every partition) in, one [`RecordBatch`] per [`Table`] out.
//!
//! [`summarize`] is pure: the same events give the same batches, whatever
//! their order, rows sorted by their key columns. A run gives it all of a
//! date's events at once, from every Kafka partition, so every distinct count
//! and every privacy threshold is exact for the day: a visitor whose events
//! sit in several partitions (the topic's partitions were increased) is one
//! visitor, and a value is folded into [`OTHER`] only when fewer than
//! [`SummaryOptions::min_visitors`] distinct visitors used it that day on that
//! site. Folded rows merge, so every count still adds up to the unfolded total.
//! What is folded: search terms ([`Table::SearchTermsDaily`]), referrer hosts
//! ([`Table::ReferrersDaily`]) and each UTM value of [`Table::CampaignsDaily`]
//! on its own.
//!
//! **Humans and bots.** Every row of every table carries `audience` (`human`
//! or `bot`) and `bot_reason`: each visitor-day is classified once by the bot
//! rules of [`crate::bots`] and all its requests, page views, visits and
//! visitors count under that class, so the `human` rows plus the `bot` rows of
//! a table give its total.
//!
//! **Page views.** A page view is a request of kind `page` answered 2xx or
//! 304 to a GET or HEAD (the event's `is_pageview`) that is not a repeated
//! fixed-interval polling request ([`crate::bots`]); the human page views are
//! those of the `human` rows.
//!
//! Visitor counts follow GoAccess: a visitor is a distinct `visitor_id` with at
//! least one request not answered 4xx.
//!
//! **Additive over visitors.** Apart from folding, no count looks beyond one
//! visitor's events: with folding off, each table of a date is the key-wise
//! sum of the tables of each visitor's events alone, distinct visitors
//! included, and `visits` is their union (`tests::every_table_is_additive_over_visitors`).
//!
//! The work is one sort of the day's rows by (site, visitor, time, Kafka
//! partition and offset), one pass per visitor-day to classify it
//! ([`classes`]), and one pass over the rows ([`count`]); strings are interned
//! once into integer codes, so the group-by maps hash small integer tuples and
//! allocate nothing per row.

use arrow::array::RecordBatch;
use chrono::NaiveDate;

use crate::error::AggregateError;
pub use crate::sessions::SummaryOptions;
use crate::warehouse::side_by_side_threads;

mod batches;
mod classes;
mod codec;
mod count;
mod fold;
mod hot;
mod rows;
pub(crate) mod state;
#[cfg(test)]
pub(crate) mod tests;

/// The summary tables, each a directory of the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Requests, page views, visits and visitors per site and day.
    TrafficDaily,
    /// The same per local hour.
    TrafficHourly,
    /// Page views, entries, exits and time on page per route.
    PagesDaily,
    /// Requests and visitors per browser, OS and device.
    ClientsDaily,
    /// Requests per status and route.
    StatusDaily,
    /// On-site and search-engine search terms (rare ones folded).
    SearchTermsDaily,
    /// Visits per referrer medium, source, host and landing route.
    ReferrersDaily,
    /// Visits per UTM campaign (rare values folded).
    CampaignsDaily,
    /// Page-to-page transitions within visits.
    TransitionsDaily,
    /// Requests, errors, bytes and latency per route and hour.
    RoutesHourly,
    /// One row per visit.
    Visits,
}

impl Table {
    /// Every table, in the order of [`Summaries`].
    pub const ALL: [Table; 11] = [
        Table::TrafficDaily,
        Table::TrafficHourly,
        Table::PagesDaily,
        Table::ClientsDaily,
        Table::StatusDaily,
        Table::SearchTermsDaily,
        Table::ReferrersDaily,
        Table::CampaignsDaily,
        Table::TransitionsDaily,
        Table::RoutesHourly,
        Table::Visits,
    ];

    /// The table's directory name under the warehouse root.
    pub fn name(self) -> &'static str {
        match self {
            Table::TrafficDaily => "traffic_daily",
            Table::TrafficHourly => "traffic_hourly",
            Table::PagesDaily => "pages_daily",
            Table::ClientsDaily => "clients_daily",
            Table::StatusDaily => "status_daily",
            Table::SearchTermsDaily => "search_terms_daily",
            Table::ReferrersDaily => "referrers_daily",
            Table::CampaignsDaily => "campaigns_daily",
            Table::TransitionsDaily => "transitions_daily",
            Table::RoutesHourly => "routes_hourly",
            Table::Visits => "visits",
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The summary batches of one date (and partition), in [`Table::ALL`] order.
#[derive(Debug, Clone)]
pub struct Summaries {
    batches: Vec<RecordBatch>,
}

impl Summaries {
    /// The batch of one table (possibly with no rows).
    pub fn get(&self, table: Table) -> &RecordBatch {
        &self.batches[table as usize]
    }

    /// Every table with its batch.
    pub fn iter(&self) -> impl Iterator<Item = (Table, &RecordBatch)> {
        Table::ALL.into_iter().zip(self.batches.iter())
    }
}

/// The events columns [`summarize`] reads; a projection to these is enough.
pub const SUMMARY_COLUMNS: &[&str] = &[
    "ts",
    "tz_offset_s",
    "site",
    "host",
    "visitor_id",
    "method",
    "path",
    "route",
    "status",
    "bytes",
    "duration_ms",
    "upstream",
    "referrer_host",
    "referrer_medium",
    "referrer_source",
    "search_terms",
    "site_search",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "browser",
    "browser_version",
    "os",
    "device",
    "is_bot",
    "bot_name",
    "is_pageview",
    "kind",
    "kafka_partition",
    "kafka_offset",
];

/// Names of the latency buckets (disjoint; every request falls in exactly one).
pub const LATENCY_COLUMNS: [&str; 9] = [
    "lat_le_10ms",
    "lat_le_50ms",
    "lat_le_100ms",
    "lat_le_250ms",
    "lat_le_500ms",
    "lat_le_1000ms",
    "lat_le_2500ms",
    "lat_gt_2500ms",
    "lat_unknown",
];

/// Names of the status-class counters (every request falls in exactly one).
pub const STATUS_COLUMNS: [&str; 6] = [
    "status_1xx",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "status_other",
];

/// Label of the folded rare values (search terms, referrer hosts, campaign values).
pub const OTHER: &str = "(other)";
/// Pseudo page before a visit's first page view (`transitions_daily.from_route`).
pub const ENTRANCE: &str = "(entrance)";
/// Pseudo page after a visit's last page view (`transitions_daily.to_route`).
pub const EXIT: &str = "(exit)";

pub(crate) const CODE_OTHER: u32 = u32::MAX;
pub(crate) const CODE_ENTRANCE: u32 = u32::MAX - 1;
pub(crate) const CODE_EXIT: u32 = u32::MAX - 2;

/// Summarises the events of `date` (their local date, in their own offset).
///
/// `events` holds the date's events and, to continue visits across midnight,
/// may hold the previous day's: rows of the previous date in its last
/// `visit_timeout` only continue visits (a visit that started before midnight is
/// attributed to the previous date and is not counted here); every other row is
/// ignored. The batch needs the [`SUMMARY_COLUMNS`] (any order, more allowed).
pub fn summarize(
    events: &RecordBatch,
    date: NaiveDate,
    opts: &SummaryOptions,
) -> Result<Summaries, AggregateError> {
    Ok(summarize_batches([Ok(events.clone())], date, opts)?.0)
}

/// [`summarize`] over batches read one at a time (each is dropped once its
/// rows are decoded), so that only the decoded rows are held; also returns
/// how many rows were of `date` itself.
pub(crate) fn summarize_batches(
    batches: impl IntoIterator<Item = Result<RecordBatch, AggregateError>>,
    date: NaiveDate,
    opts: &SummaryOptions,
) -> Result<(Summaries, u64), AggregateError> {
    let rows = rows::Rows::load(batches, date, opts)?;
    let day_rows = rows.in_day.iter().filter(|&&d| d).count() as u64;
    let order = rows.order();
    let t = count::Tally::count(&rows, &order, opts);
    Ok((tables(&t, &rows.strings, opts)?, day_rows))
}

/// The summary batches of a date's tally `t` (its visits and search hits
/// grouped by visitor-day), its strings interned in `s`.
fn tables(
    t: &count::Tally,
    s: &rows::Interner,
    opts: &SummaryOptions,
) -> Result<Summaries, AggregateError> {
    let f = fold::fold(t, opts.min_visitors);
    let st = |c: u32| s.get(c);
    let batches = vec![
        batches::traffic(t.traffic.iter().map(|(&sc, v)| (sc, 0, v)), s, false)?,
        batches::traffic(t.hourly.iter().map(|(&(sc, h), v)| (sc, h, v)), s, true)?,
        batches::pages(t.pages.iter().map(|(&(sc, r), v)| (sc, st(r), v)), s)?,
        batches::clients(t.clients.iter().map(|(&(sc, k), v)| (sc, k.map(st), v)), s)?,
        batches::status(
            t.statuses
                .iter()
                .map(|(&(sc, code, r), &n)| (sc, (code, st(r)), n)),
            s,
        )?,
        batches::search(
            f.searches.into_iter().map(|((sc, kind, term), v)| {
                let kind = if kind == 0 {
                    "on-site"
                } else {
                    "search-engine"
                };
                (sc, [Some(kind), st(term)], v)
            }),
            s,
        )?,
        batches::referrers(
            f.referrers
                .into_iter()
                .map(|((sc, k), v)| (sc, k.map(st), v)),
            s,
        )?,
        batches::campaigns(
            f.campaigns
                .into_iter()
                .map(|((sc, k), v)| (sc, k.map(st), v)),
            s,
        )?,
        batches::transitions(
            t.transitions
                .iter()
                .map(|(&(sc, a, b), &n)| (sc, [st(a), st(b)], n)),
            s,
        )?,
        batches::routes(
            t.routes
                .iter()
                .map(|(&(sc, h, k), v)| (sc, (h, k.map(st)), v)),
            s,
        )?,
        batches::visits(&t.visits, s, side_by_side_threads(t.visits.len()))?,
    ];
    Ok(Summaries { batches })
}
