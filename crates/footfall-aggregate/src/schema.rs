//! The events table: Arrow schema and conversions between [`VisitEvent`] and
//! [`RecordBatch`].
//!
//! Every [`VisitEvent`] field is a column of the same name, with `ts` stored as
//! `timestamp(us, UTC)` and the offset the log used kept in `tz_offset_s`
//! (seconds east of UTC), so the event's local date and hour can be rebuilt.
//! Two more columns say where the event came from: `kafka_partition` and
//! `kafka_offset`. The Hive partition column `date` is not stored in the file:
//! it comes from the directory name (`date=YYYY-MM-DD`).

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt16Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, FixedOffset, NaiveDate};
use footfall_event::VisitEvent;

use crate::error::AggregateError;

/// A decoded message: the event and where it sits in the topic.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaEvent {
    /// The Kafka partition the event was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// The event itself.
    pub event: VisitEvent,
}

/// Microseconds in a day.
pub(crate) const DAY_US: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a local timestamp (microseconds since the epoch, shifted by the offset).
#[inline]
pub(crate) fn local_day(ts_us: i64, offset_s: i32) -> i64 {
    (ts_us + offset_s as i64 * 1_000_000).div_euclid(DAY_US)
}

/// Microseconds since local midnight.
#[inline]
pub(crate) fn local_time_of_day(ts_us: i64, offset_s: i32) -> i64 {
    (ts_us + offset_s as i64 * 1_000_000).rem_euclid(DAY_US)
}

/// Days since 1970-01-01 of a calendar date.
pub(crate) fn day_number(date: NaiveDate) -> i64 {
    date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch"))
        .num_days()
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow schema of the events table (column order is stable).
pub fn events_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use DataType::*;
            let f = |name: &str, dt: DataType, nullable: bool| Field::new(name, dt, nullable);
            Arc::new(Schema::new(vec![
                f("v", UInt16, false),
                f("event_id", Utf8, false),
                f("ts", ts_type(), false),
                f("tz_offset_s", Int32, false),
                f("site", Utf8, false),
                f("host", Utf8, true),
                f("visitor_id", Utf8, false),
                f("client_net", Utf8, true),
                f("client_ip", Utf8, true),
                f("method", Utf8, true),
                f("path", Utf8, false),
                f("query", Utf8, true),
                f("route", Utf8, false),
                f("protocol", Utf8, true),
                f("status", UInt16, false),
                f("bytes", UInt64, true),
                f("duration_ms", Float64, true),
                f("upstream", Utf8, true),
                f("referrer", Utf8, true),
                f("referrer_host", Utf8, true),
                f("referrer_medium", Utf8, false),
                f("referrer_source", Utf8, true),
                f("search_terms", Utf8, true),
                f("site_search", Utf8, true),
                f("utm_source", Utf8, true),
                f("utm_medium", Utf8, true),
                f("utm_campaign", Utf8, true),
                f("utm_term", Utf8, true),
                f("utm_content", Utf8, true),
                f("browser", Utf8, true),
                f("browser_version", Utf8, true),
                f("os", Utf8, true),
                f("device", Utf8, false),
                f("is_bot", Boolean, false),
                f("bot_name", Utf8, true),
                f("kind", Utf8, false),
                f("is_pageview", Boolean, false),
                f("source", Utf8, false),
                f("offset", UInt64, false),
                f("kafka_partition", Int32, false),
                f("kafka_offset", Int64, false),
            ]))
        })
        .clone()
}

/// Encodes events (in the given order) as one batch of the events schema.
pub fn events_to_batch(events: &[KafkaEvent]) -> Result<RecordBatch, AggregateError> {
    fn s<'a>(events: &'a [KafkaEvent], f: impl Fn(&'a VisitEvent) -> &'a str) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            events.iter().map(|e| f(&e.event)),
        ))
    }
    fn o<'a>(events: &'a [KafkaEvent], f: impl Fn(&'a VisitEvent) -> Option<&'a str>) -> ArrayRef {
        Arc::new(events.iter().map(|e| f(&e.event)).collect::<StringArray>())
    }
    let e = events;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt16Array::from_iter_values(e.iter().map(|k| k.event.v))),
        s(e, |v| &v.event_id),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                e.iter().map(|k| k.event.ts.timestamp_micros()),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Int32Array::from_iter_values(
            e.iter().map(|k| k.event.ts.offset().local_minus_utc()),
        )),
        s(e, |v| &v.site),
        o(e, |v| v.host.as_deref()),
        s(e, |v| &v.visitor_id),
        o(e, |v| v.client_net.as_deref()),
        o(e, |v| v.client_ip.as_deref()),
        o(e, |v| v.method.as_deref()),
        s(e, |v| &v.path),
        o(e, |v| v.query.as_deref()),
        s(e, |v| &v.route),
        o(e, |v| v.protocol.as_deref()),
        Arc::new(UInt16Array::from_iter_values(
            e.iter().map(|k| k.event.status),
        )),
        Arc::new(e.iter().map(|k| k.event.bytes).collect::<UInt64Array>()),
        Arc::new(
            e.iter()
                .map(|k| k.event.duration_ms)
                .collect::<Float64Array>(),
        ),
        o(e, |v| v.upstream.as_deref()),
        o(e, |v| v.referrer.as_deref()),
        o(e, |v| v.referrer_host.as_deref()),
        s(e, |v| &v.referrer_medium),
        o(e, |v| v.referrer_source.as_deref()),
        o(e, |v| v.search_terms.as_deref()),
        o(e, |v| v.site_search.as_deref()),
        o(e, |v| v.utm_source.as_deref()),
        o(e, |v| v.utm_medium.as_deref()),
        o(e, |v| v.utm_campaign.as_deref()),
        o(e, |v| v.utm_term.as_deref()),
        o(e, |v| v.utm_content.as_deref()),
        o(e, |v| v.browser.as_deref()),
        o(e, |v| v.browser_version.as_deref()),
        o(e, |v| v.os.as_deref()),
        s(e, |v| &v.device),
        Arc::new(
            e.iter()
                .map(|k| Some(k.event.is_bot))
                .collect::<BooleanArray>(),
        ),
        o(e, |v| v.bot_name.as_deref()),
        s(e, |v| &v.kind),
        Arc::new(
            e.iter()
                .map(|k| Some(k.event.is_pageview))
                .collect::<BooleanArray>(),
        ),
        s(e, |v| &v.source),
        Arc::new(UInt64Array::from_iter_values(
            e.iter().map(|k| k.event.offset),
        )),
        Arc::new(Int32Array::from_iter_values(e.iter().map(|k| k.partition))),
        Arc::new(Int64Array::from_iter_values(e.iter().map(|k| k.offset))),
    ];
    Ok(RecordBatch::try_new(events_schema(), columns)?)
}

/// Typed access to the columns of an events batch (full or projected), by name.
pub(crate) struct Cols<'a> {
    batch: &'a RecordBatch,
}

impl<'a> Cols<'a> {
    pub(crate) fn new(batch: &'a RecordBatch) -> Self {
        Cols { batch }
    }

    fn col<T: 'static>(&self, name: &str) -> Result<&'a T, AggregateError> {
        let batch: &'a RecordBatch = self.batch;
        let col = batch.column_by_name(name).ok_or_else(|| {
            AggregateError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                "events batch has no column {name}"
            )))
        })?;
        col.as_any().downcast_ref::<T>().ok_or_else(|| {
            AggregateError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                "events column {name} has type {}",
                col.data_type()
            )))
        })
    }

    pub(crate) fn str(&self, name: &str) -> Result<&'a StringArray, AggregateError> {
        self.col(name)
    }
    pub(crate) fn u16(&self, name: &str) -> Result<&'a UInt16Array, AggregateError> {
        self.col(name)
    }
    pub(crate) fn u64(&self, name: &str) -> Result<&'a UInt64Array, AggregateError> {
        self.col(name)
    }
    pub(crate) fn i32(&self, name: &str) -> Result<&'a Int32Array, AggregateError> {
        self.col(name)
    }
    pub(crate) fn i64(&self, name: &str) -> Result<&'a Int64Array, AggregateError> {
        self.col(name)
    }
    pub(crate) fn f64(&self, name: &str) -> Result<&'a Float64Array, AggregateError> {
        self.col(name)
    }
    pub(crate) fn bool(&self, name: &str) -> Result<&'a BooleanArray, AggregateError> {
        self.col(name)
    }
    pub(crate) fn ts(&self, name: &str) -> Result<&'a TimestampMicrosecondArray, AggregateError> {
        self.col(name)
    }
}

#[inline]
pub(crate) fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    if a.is_null(i) {
        None
    } else {
        Some(a.value(i))
    }
}

/// Decodes an events batch (all columns) back into events.
pub fn batch_to_events(batch: &RecordBatch) -> Result<Vec<KafkaEvent>, AggregateError> {
    let c = Cols::new(batch);
    let v = c.u16("v")?;
    let event_id = c.str("event_id")?;
    let ts = c.ts("ts")?;
    let tz = c.i32("tz_offset_s")?;
    let site = c.str("site")?;
    let host = c.str("host")?;
    let visitor_id = c.str("visitor_id")?;
    let client_net = c.str("client_net")?;
    let client_ip = c.str("client_ip")?;
    let method = c.str("method")?;
    let path = c.str("path")?;
    let query = c.str("query")?;
    let route = c.str("route")?;
    let protocol = c.str("protocol")?;
    let status = c.u16("status")?;
    let bytes = c.u64("bytes")?;
    let duration_ms = c.f64("duration_ms")?;
    let upstream = c.str("upstream")?;
    let referrer = c.str("referrer")?;
    let referrer_host = c.str("referrer_host")?;
    let referrer_medium = c.str("referrer_medium")?;
    let referrer_source = c.str("referrer_source")?;
    let search_terms = c.str("search_terms")?;
    let site_search = c.str("site_search")?;
    let utm_source = c.str("utm_source")?;
    let utm_medium = c.str("utm_medium")?;
    let utm_campaign = c.str("utm_campaign")?;
    let utm_term = c.str("utm_term")?;
    let utm_content = c.str("utm_content")?;
    let browser = c.str("browser")?;
    let browser_version = c.str("browser_version")?;
    let os = c.str("os")?;
    let device = c.str("device")?;
    let is_bot = c.bool("is_bot")?;
    let bot_name = c.str("bot_name")?;
    let kind = c.str("kind")?;
    let is_pageview = c.bool("is_pageview")?;
    let source = c.str("source")?;
    let offset = c.u64("offset")?;
    let kafka_partition = c.i32("kafka_partition")?;
    let kafka_offset = c.i64("kafka_offset")?;

    let owned = |a: &StringArray, i| opt_str(a, i).map(str::to_string);
    let shared = |a: &StringArray, i| opt_str(a, i).map(Arc::<str>::from);
    let label = |a: &StringArray, i| -> Cow<'static, str> { Cow::Owned(a.value(i).to_string()) };

    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let offset_s = tz.value(i);
        let tz = FixedOffset::east_opt(offset_s).ok_or_else(|| {
            AggregateError::Arrow(arrow::error::ArrowError::InvalidArgumentError(format!(
                "tz_offset_s {offset_s} out of range"
            )))
        })?;
        let utc = DateTime::from_timestamp_micros(ts.value(i)).ok_or_else(|| {
            AggregateError::Arrow(arrow::error::ArrowError::InvalidArgumentError(format!(
                "ts {} out of range",
                ts.value(i)
            )))
        })?;
        out.push(KafkaEvent {
            partition: kafka_partition.value(i),
            offset: kafka_offset.value(i),
            event: VisitEvent {
                v: v.value(i),
                event_id: event_id.value(i).to_string(),
                ts: utc.with_timezone(&tz),
                site: site.value(i).to_string(),
                host: owned(host, i),
                visitor_id: visitor_id.value(i).to_string(),
                client_net: owned(client_net, i),
                client_ip: owned(client_ip, i),
                method: owned(method, i),
                path: path.value(i).to_string(),
                query: owned(query, i),
                route: route.value(i).to_string(),
                protocol: owned(protocol, i),
                status: status.value(i),
                bytes: (!bytes.is_null(i)).then(|| bytes.value(i)),
                duration_ms: (!duration_ms.is_null(i)).then(|| duration_ms.value(i)),
                upstream: owned(upstream, i),
                referrer: owned(referrer, i),
                referrer_host: owned(referrer_host, i),
                referrer_medium: label(referrer_medium, i),
                referrer_source: opt_str(referrer_source, i).map(|s| Cow::Owned(s.to_string())),
                search_terms: owned(search_terms, i),
                site_search: owned(site_search, i),
                utm_source: owned(utm_source, i),
                utm_medium: owned(utm_medium, i),
                utm_campaign: owned(utm_campaign, i),
                utm_term: owned(utm_term, i),
                utm_content: owned(utm_content, i),
                browser: shared(browser, i),
                browser_version: shared(browser_version, i),
                os: shared(os, i),
                device: label(device, i),
                is_bot: is_bot.value(i),
                bot_name: shared(bot_name, i),
                kind: label(kind, i),
                is_pageview: is_pageview.value(i),
                source: source.value(i).to_string(),
                offset: offset.value(i),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> VisitEvent {
        VisitEvent {
            v: 1,
            event_id: "e1".into(),
            ts: DateTime::parse_from_rfc3339("2015-05-17T23:59:59.123456+02:00").unwrap(),
            site: "example.org".into(),
            host: Some("www.example.org".into()),
            visitor_id: "00aa".into(),
            client_net: Some("203.0.113.0/24".into()),
            method: Some("GET".into()),
            path: "/a?b".into(),
            query: Some("q=1".into()),
            route: "/a".into(),
            protocol: Some("HTTP/1.1".into()),
            status: 200,
            bytes: Some(1234),
            duration_ms: Some(12.5),
            upstream: Some("app:8080".into()),
            referrer: Some("https://www.google.com/search?q=x".into()),
            referrer_host: Some("www.google.com".into()),
            referrer_medium: "search".into(),
            referrer_source: Some("Google".into()),
            search_terms: Some("x".into()),
            site_search: None,
            utm_source: Some("news".into()),
            utm_campaign: Some("spring".into()),
            browser: Some("Firefox".into()),
            browser_version: Some("38".into()),
            os: Some("Linux".into()),
            device: "desktop".into(),
            kind: "page".into(),
            is_pageview: true,
            source: "/var/log/access.log".into(),
            offset: 99,
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_every_field() {
        let mut bare = sample();
        bare.event_id = "e2".into();
        bare.host = None;
        bare.bytes = None;
        bare.duration_ms = None;
        bare.method = None;
        bare.ts = DateTime::parse_from_rfc3339("2015-05-17T10:00:00-05:00").unwrap();
        let events = vec![
            KafkaEvent {
                partition: 3,
                offset: 17,
                event: sample(),
            },
            KafkaEvent {
                partition: 3,
                offset: 18,
                event: bare,
            },
        ];
        let batch = events_to_batch(&events).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), events_schema());
        let back = batch_to_events(&batch).unwrap();
        assert_eq!(back, events);
        // The offset survives: local date is the event's own.
        assert_eq!(
            back[0].event.local_date(),
            NaiveDate::from_ymd_opt(2015, 5, 17).unwrap()
        );
    }

    #[test]
    fn local_day_and_time_use_the_offset() {
        let ev = sample(); // 23:59:59 +02:00 = 21:59:59Z
        let us = ev.ts.timestamp_micros();
        let off = ev.ts.offset().local_minus_utc();
        assert_eq!(
            local_day(us, off),
            day_number(NaiveDate::from_ymd_opt(2015, 5, 17).unwrap())
        );
        assert_eq!(local_time_of_day(us, off), DAY_US - 1_000_000 + 123_456);
        // Before the epoch still floors.
        assert_eq!(local_day(-1, 0), -1);
    }
}
