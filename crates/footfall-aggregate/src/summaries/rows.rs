//! The rows a day's summaries are computed from: the in-scope events decoded
//! once into integer codes (strings interned) and small values, indexed by
//! scope position.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray};
use chrono::NaiveDate;

use super::{SummaryOptions, CODE_ENTRANCE, CODE_EXIT, CODE_OTHER, ENTRANCE, EXIT, OTHER};
use crate::bots::BotRules;
use crate::error::AggregateError;
use crate::hash::FxHashMap;
use crate::schema::{day_number, local_day, local_time_of_day, opt_str, Cols, DAY_US};

/// Resource kinds as codes: the bot rules tell pages and assets from the
/// rest (`kind` of the event).
pub(super) mod kind {
    pub const PAGE: u8 = 0;
    pub const ASSET: u8 = 1;
    pub const OTHER: u8 = 2;
}

/// The code of an event's `kind`, reading older events' values too
/// ([`footfall_event::legacy_kind`]).
fn kind_code(s: Option<&str>) -> u8 {
    match s {
        Some("page") => kind::PAGE,
        Some("asset") => kind::ASSET,
        Some(old) if footfall_event::legacy_kind(old) == "asset" => kind::ASSET,
        _ => kind::OTHER,
    }
}

/// Row flags the bot rules read.
pub(super) mod flag {
    pub const ROBOTS_TXT: u8 = 1;
    pub const LOGIN_POST: u8 = 2;
    pub const HEAD: u8 = 4;
}

#[inline]
pub(super) fn latency_bucket(ms: Option<f64>) -> usize {
    match ms {
        None => 8,
        Some(ms) if ms.is_nan() => 8,
        Some(ms) if ms <= 10.0 => 0,
        Some(ms) if ms <= 50.0 => 1,
        Some(ms) if ms <= 100.0 => 2,
        Some(ms) if ms <= 250.0 => 3,
        Some(ms) if ms <= 500.0 => 4,
        Some(ms) if ms <= 1000.0 => 5,
        Some(ms) if ms <= 2500.0 => 6,
        Some(_) => 7,
    }
}

/// String interner: code 0 is null, other codes index `values`. It owns
/// its strings (each once), so that the batches they came from can go as
/// soon as they are read.
pub(super) struct Interner {
    map: FxHashMap<Arc<str>, u32>,
    values: Vec<Arc<str>>,
}

impl Interner {
    fn new() -> Self {
        Interner {
            map: FxHashMap::default(),
            values: vec![Arc::from("")],
        }
    }

    /// Every string by code (code 0, null, is the empty string).
    pub(super) fn values(&self) -> &[Arc<str>] {
        &self.values
    }

    /// How many more strings fit without growing.
    #[cfg(test)]
    pub(super) fn room(&self) -> usize {
        let values = self.values.capacity() - self.values.len();
        values.min(self.map.capacity() - self.map.len())
    }

    /// Makes room for `total` strings.
    pub(super) fn reserve(&mut self, total: usize) {
        self.values
            .reserve_exact(total.saturating_sub(self.values.len()));
        self.map.reserve(total.saturating_sub(self.map.len()));
    }

    /// Adds `s` as the next code; `None` if it is interned already (read
    /// back, every string is new).
    pub(super) fn add_new(&mut self, s: &str) -> Option<()> {
        if self.map.contains_key(s) {
            return None;
        }
        self.code(s);
        Some(())
    }

    #[inline]
    fn code(&mut self, s: &str) -> u32 {
        if let Some(&c) = self.map.get(s) {
            return c;
        }
        let c = self.values.len() as u32;
        let owned: Arc<str> = Arc::from(s);
        self.values.push(Arc::clone(&owned));
        self.map.insert(owned, c);
        c
    }

    /// Appends the codes of `arr` at `rows` to `out`, with a one-entry cache
    /// for runs of equal values.
    fn column(&mut self, arr: &StringArray, rows: &[u32], out: &mut Vec<u32>) {
        out.reserve(rows.len());
        let mut last: (&str, u32) = ("", u32::MAX);
        for &r in rows {
            let r = r as usize;
            let code = match opt_str(arr, r) {
                None => 0,
                Some(s) if last.1 != u32::MAX && s == last.0 => last.1,
                Some(s) => {
                    let c = self.code(s);
                    last = (s, c);
                    c
                }
            };
            out.push(code);
        }
    }

    /// The rank of each of `codes` among them in the order of their strings
    /// (null first), indexed by code: comparing two codes' ranks compares
    /// their strings, as codes and strings are one to one. Codes not given
    /// rank 0.
    pub(super) fn ranks(&self, codes: impl IntoIterator<Item = u32>) -> Vec<u32> {
        let mut codes: Vec<u32> = codes.into_iter().collect();
        codes.sort_unstable();
        codes.dedup();
        codes.sort_unstable_by(|&a, &b| self.get(a).cmp(&self.get(b)));
        let mut rank = vec![0; self.values.len()];
        for (r, c) in codes.into_iter().enumerate() {
            rank[c as usize] = r as u32;
        }
        rank
    }

    #[inline]
    pub(super) fn get(&self, code: u32) -> Option<&str> {
        match code {
            0 => None,
            CODE_OTHER => Some(OTHER),
            CODE_ENTRANCE => Some(ENTRANCE),
            CODE_EXIT => Some(EXIT),
            c => Some(&self.values[c as usize]),
        }
    }
}

/// A visitor-day as one number (never 0): equal for the rows of one (site,
/// visitor) and different for any other.
#[inline]
pub(super) fn visitor_day(site: u32, visitor: u32) -> u64 {
    ((u64::from(site) << 32) | u64::from(visitor)) + 1
}

/// The campaign of a request: its `utm_source` and `utm_campaign` codes as one
/// number (0 for neither).
#[inline]
pub(super) fn campaign(utm_source: u32, utm_campaign: u32) -> u64 {
    (u64::from(utm_source) << 32) | u64::from(utm_campaign)
}

/// The in-scope rows: decoded codes and values, indexed by scope position.
#[derive(Default)]
pub(super) struct Rows {
    pub strings: Interner,
    pub in_day: Vec<bool>,
    pub ts: Vec<i64>,
    pub hour: Vec<u8>,
    pub site: Vec<u32>,
    pub visitor: Vec<u32>,
    pub host: Vec<u32>,
    pub method: Vec<u32>,
    pub route: Vec<u32>,
    pub upstream: Vec<u32>,
    pub ref_host: Vec<u32>,
    pub medium: Vec<u32>,
    pub source: Vec<u32>,
    pub search_terms: Vec<u32>,
    pub site_search: Vec<u32>,
    pub utm: [Vec<u32>; 5],
    pub browser: Vec<u32>,
    pub browser_version: Vec<u32>,
    pub os: Vec<u32>,
    pub device: Vec<u32>,
    pub bot_name: Vec<u32>,
    pub status: Vec<u16>,
    pub bytes: Vec<i64>,
    pub latency: Vec<u8>,
    pub is_bot: Vec<bool>,
    pub is_pageview: Vec<bool>,
    pub kind: Vec<u8>,
    pub flags: Vec<u8>,
    /// (Kafka partition, offset): unique per event, so orders are total
    /// whatever order the rows came in.
    pub message: Vec<(i32, i64)>,
}

/// The positions of the batch's rows that count for `date`, and whether each
/// is of the date itself (else of the previous date's last visit timeout,
/// which only continues visits).
fn scope(
    c: &Cols<'_>,
    n: usize,
    date: NaiveDate,
    opts: &SummaryOptions,
) -> Result<(Vec<u32>, Vec<bool>), AggregateError> {
    let ts = c.ts("ts")?;
    let tz = c.i32("tz_offset_s")?;
    let day = day_number(date);
    let tail_from = DAY_US - opts.timeout_us().min(DAY_US);
    let mut scope = Vec::with_capacity(n);
    let mut in_day = Vec::with_capacity(n);
    for i in 0..n {
        let (t, off) = (ts.value(i), tz.value(i));
        let d = local_day(t, off);
        if d == day {
            scope.push(i as u32);
            in_day.push(true);
        } else if d == day - 1 && local_time_of_day(t, off) >= tail_from {
            scope.push(i as u32);
            in_day.push(false);
        }
    }
    Ok((scope, in_day))
}

/// The bot-rule flags of one request.
fn flags(method: Option<&str>, path: Option<&str>, rules: &BotRules) -> u8 {
    let path = path.unwrap_or_default();
    let mut f = 0;
    if path.eq_ignore_ascii_case("/robots.txt") {
        f |= flag::ROBOTS_TXT;
    }
    match method {
        Some("HEAD") => f |= flag::HEAD,
        Some("POST") if rules.is_login_path(path) => f |= flag::LOGIN_POST,
        _ => {}
    }
    f
}

impl Default for Interner {
    fn default() -> Self {
        Interner::new()
    }
}

type Field = fn(&mut Rows) -> &mut Vec<u32>;

/// The string columns interned into codes, in the order codes are given, with
/// the field of [`Rows`] each goes to.
const CODED: [(&str, Field); 21] = [
    ("site", |r| &mut r.site),
    ("visitor_id", |r| &mut r.visitor),
    ("host", |r| &mut r.host),
    ("method", |r| &mut r.method),
    ("route", |r| &mut r.route),
    ("upstream", |r| &mut r.upstream),
    ("referrer_host", |r| &mut r.ref_host),
    ("referrer_medium", |r| &mut r.medium),
    ("referrer_source", |r| &mut r.source),
    ("search_terms", |r| &mut r.search_terms),
    ("site_search", |r| &mut r.site_search),
    ("utm_source", |r| &mut r.utm[0]),
    ("utm_medium", |r| &mut r.utm[1]),
    ("utm_campaign", |r| &mut r.utm[2]),
    ("utm_term", |r| &mut r.utm[3]),
    ("utm_content", |r| &mut r.utm[4]),
    ("browser", |r| &mut r.browser),
    ("browser_version", |r| &mut r.browser_version),
    ("os", |r| &mut r.os),
    ("device", |r| &mut r.device),
    ("bot_name", |r| &mut r.bot_name),
];

impl Rows {
    /// The in-scope rows of `batches`, read one batch at a time: a batch is
    /// dropped once its rows are codes and values.
    pub(super) fn load(
        batches: impl IntoIterator<Item = Result<RecordBatch, AggregateError>>,
        date: NaiveDate,
        opts: &SummaryOptions,
    ) -> Result<Self, AggregateError> {
        let mut rows = Rows::default();
        for batch in batches {
            rows.append(&batch?, date, opts)?;
        }
        Ok(rows)
    }

    /// Adds the in-scope rows of one batch.
    pub(super) fn append(
        &mut self,
        batch: &RecordBatch,
        date: NaiveDate,
        opts: &SummaryOptions,
    ) -> Result<(), AggregateError> {
        let c = Cols::new(batch);
        let (scope, in_day) = scope(&c, batch.num_rows(), date, opts)?;
        self.in_day.extend(in_day);
        for (name, field) in CODED {
            let arr = c.str(name)?;
            let mut out = std::mem::take(field(self));
            self.strings.column(arr, &scope, &mut out);
            *field(self) = out;
        }
        self.load_values(&c, &scope, &opts.bots)
    }

    /// The columns kept as values rather than codes.
    fn load_values(
        &mut self,
        c: &Cols<'_>,
        scope: &[u32],
        rules: &BotRules,
    ) -> Result<(), AggregateError> {
        let (ts, tz) = (c.ts("ts")?, c.i32("tz_offset_s")?);
        let (status, bytes, dur) = (c.u16("status")?, c.u64("bytes")?, c.f64("duration_ms")?);
        let (bot, pv, kind) = (c.bool("is_bot")?, c.bool("is_pageview")?, c.str("kind")?);
        let (method, path) = (c.str("method")?, c.str("path")?);
        let (kp, ko) = (c.i32("kafka_partition")?, c.i64("kafka_offset")?);
        for &r in scope {
            let r = r as usize;
            let t = ts.value(r);
            self.ts.push(t);
            self.hour
                .push((local_time_of_day(t, tz.value(r)) / 3_600_000_000) as u8);
            self.status.push(status.value(r));
            self.bytes.push(match bytes.is_null(r) {
                true => 0,
                false => bytes.value(r).min(i64::MAX as u64) as i64,
            });
            self.latency
                .push(latency_bucket((!dur.is_null(r)).then(|| dur.value(r))) as u8);
            self.is_bot.push(bot.value(r));
            self.is_pageview.push(pv.value(r));
            self.kind.push(kind_code(opt_str(kind, r)));
            self.flags
                .push(flags(opt_str(method, r), opt_str(path, r), rules));
            self.message.push((kp.value(r), ko.value(r)));
        }
        Ok(())
    }

    #[inline]
    pub(super) fn campaign(&self, i: usize) -> u64 {
        campaign(self.utm[0][i], self.utm[2][i])
    }

    /// The visitor-day of row `i` ([`visitor_day`]).
    #[inline]
    pub(super) fn visitor_day(&self, i: usize) -> u64 {
        visitor_day(self.site[i], self.visitor[i])
    }

    #[inline]
    pub(super) fn visitor_request(&self, i: usize) -> bool {
        !(400..500).contains(&self.status[i])
    }

    /// The row positions ordered by (site, visitor, time, Kafka partition and
    /// offset): total and deterministic, whatever partitions a visitor's
    /// events came from.
    pub(super) fn order(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.ts.len() as u32).collect();
        order.sort_unstable_by_key(|&i| self.key(i));
        order
    }

    /// The visitor-days of `order` ([`Rows::order`]), each its rows.
    pub(super) fn visitor_days<'a>(&'a self, order: &'a [u32]) -> impl Iterator<Item = &'a [u32]> {
        order.chunk_by(|&a, &b| self.visitor_day(a as usize) == self.visitor_day(b as usize))
    }

    /// The range of `order` ([`Rows::order`]) that holds the visitor-day
    /// of the row at `p`, found by binary search.
    pub(super) fn visitor_day_range(&self, order: &[u32], p: u32) -> std::ops::Range<usize> {
        let of = |q: u32| (self.site[q as usize], self.visitor[q as usize]);
        let day = of(p);
        order.partition_point(|&q| of(q) < day)..order.partition_point(|&q| of(q) <= day)
    }

    /// How far the rows have grown.
    pub(super) fn extent(&self) -> super::codec::Extent {
        super::codec::Extent {
            rows: self.ts.len(),
            strings: self.strings.values().len(),
        }
    }

    /// The length of every column (all equal in a whole set of rows).
    pub(super) fn lengths(&self) -> Vec<usize> {
        let mut coded: Vec<usize> = [
            &self.site,
            &self.visitor,
            &self.host,
            &self.method,
            &self.route,
            &self.upstream,
            &self.ref_host,
            &self.medium,
            &self.source,
            &self.search_terms,
            &self.site_search,
            &self.browser,
            &self.browser_version,
            &self.os,
            &self.device,
            &self.bot_name,
        ]
        .iter()
        .chain(self.utm.iter().collect::<Vec<_>>().iter())
        .map(|c| c.len())
        .collect();
        coded.extend([
            self.in_day.len(),
            self.ts.len(),
            self.hour.len(),
            self.status.len(),
            self.bytes.len(),
            self.latency.len(),
            self.is_bot.len(),
            self.is_pageview.len(),
            self.kind.len(),
            self.flags.len(),
            self.message.len(),
        ]);
        coded
    }

    /// The key of [`Rows::order`] of the row at `i`.
    #[inline]
    pub(super) fn key(&self, i: u32) -> (u32, u32, i64, (i32, i64), u32) {
        let p = i as usize;
        (
            self.site[p],
            self.visitor[p],
            self.ts[p],
            self.message[p],
            i,
        )
    }
}
