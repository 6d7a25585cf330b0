//! Caddy's structured access log (`caddy`): the fields read are listed at
//! [`JsonFormat::caddy`](super::JsonFormat::caddy).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use footfall_event::RejectKind;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{bad_json, bad_number, status_from_jval, time_from_jval, JStr, JVal};
use crate::formats::aws::strip_port;
use crate::record::{dash_none, LineError, LineResult, RawRecord};

#[derive(Deserialize)]
struct CaddyLine<'a> {
    #[serde(borrow, default)]
    ts: Option<JVal<'a>>,
    #[serde(borrow, default)]
    request: Option<CaddyRequest<'a>>,
    #[serde(borrow, default)]
    status: Option<JVal<'a>>,
    #[serde(borrow, default)]
    size: Option<JVal<'a>>,
    #[serde(borrow, default)]
    duration: Option<JVal<'a>>,
    #[serde(borrow, default)]
    user_id: Option<JVal<'a>>,
}

#[derive(Deserialize)]
struct CaddyRequest<'a> {
    #[serde(borrow, default)]
    client_ip: Option<JVal<'a>>,
    #[serde(borrow, default)]
    remote_ip: Option<JVal<'a>>,
    #[serde(borrow, default)]
    remote_addr: Option<JVal<'a>>,
    #[serde(borrow, default)]
    proto: Option<JVal<'a>>,
    #[serde(borrow, default)]
    method: Option<JVal<'a>>,
    #[serde(borrow, default)]
    host: Option<JVal<'a>>,
    #[serde(borrow, default)]
    uri: Option<JVal<'a>>,
    #[serde(borrow, default)]
    headers: Option<CaddyHeaders<'a>>,
}

/// The three request headers footfall reads, out of Caddy's header map.
#[derive(Default)]
struct CaddyHeaders<'a> {
    user_agent: Option<Cow<'a, str>>,
    referer: Option<Cow<'a, str>>,
    cookie: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for CaddyHeaders<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CaddyHeaders<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of header names to value lists")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut h = CaddyHeaders::default();
                while let Some(name) = map.next_key::<JStr<'a>>()? {
                    let name = &*name.0;
                    if name.eq_ignore_ascii_case("user-agent") {
                        h.user_agent = first_value(map.next_value::<HeaderValues<'a>>()?);
                    } else if name.eq_ignore_ascii_case("referer") {
                        h.referer = first_value(map.next_value::<HeaderValues<'a>>()?);
                    } else if name.eq_ignore_ascii_case("cookie") {
                        let values = map.next_value::<HeaderValues<'a>>()?.0;
                        h.cookie = match values.len() {
                            0 => None,
                            1 => values.into_iter().next(),
                            _ => Some(Cow::Owned(values.join("; "))),
                        };
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

fn first_value(v: HeaderValues<'_>) -> Option<Cow<'_, str>> {
    v.0.into_iter().next()
}

/// A header's values: a list of strings (Caddy) or a single string.
struct HeaderValues<'a>(Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for HeaderValues<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = HeaderValues<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<JVal<'a>>()? {
                    if let Some(t) = s.into_text() {
                        out.push(t);
                    }
                }
                Ok(HeaderValues(out))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(HeaderValues(
                    dash_none(v).map(Cow::Borrowed).into_iter().collect(),
                ))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(HeaderValues(
                    dash_none(v)
                        .map(|s| Cow::Owned(s.to_owned()))
                        .into_iter()
                        .collect(),
                ))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(HeaderValues(Vec::new()))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

pub(super) fn parse_caddy(json: &str) -> LineResult<'_> {
    let line: CaddyLine<'_> = serde_json::from_str(json).map_err(bad_json)?;
    let Some(req) = line.request else {
        return Err(LineError::new(
            RejectKind::Header,
            "not an access log entry (no request)",
        ));
    };
    let ts = match &line.ts {
        Some(v) => time_from_jval(v)?,
        None => return Err(LineError::new(RejectKind::BadTimestamp, "no ts")),
    };
    let status = match &line.status {
        Some(v) => status_from_jval(v)?,
        None => return Err(LineError::new(RejectKind::BadStatus, "no status")),
    };
    let bytes = match line.size {
        Some(v) => v.to_u64().map_err(|()| bad_number("size"))?,
        None => None,
    };
    let duration_ms = match line.duration {
        None => None,
        Some(JVal::U(ns)) => Some(ns as f64 / 1e6),
        Some(JVal::I(ns)) if ns >= 0 => Some(ns as f64 / 1e6),
        Some(JVal::F(s)) if s.is_finite() && s >= 0.0 => Some(s * 1000.0),
        Some(JVal::Str(s)) => match dash_none(&s) {
            None => None,
            Some(s) => Some(go_duration_ms(s).ok_or_else(|| bad_number("duration"))?),
        },
        Some(JVal::Null) => None,
        Some(_) => return Err(bad_number("duration")),
    };
    let client = req
        .client_ip
        .and_then(JVal::into_text)
        .or_else(|| req.remote_ip.and_then(JVal::into_text))
        .or_else(|| {
            req.remote_addr.and_then(JVal::into_text).map(|a| match a {
                Cow::Borrowed(a) => Cow::Borrowed(strip_port(a)),
                Cow::Owned(a) => Cow::Owned(strip_port(&a).to_owned()),
            })
        });
    let headers = req.headers.unwrap_or_default();
    Ok(RawRecord {
        client,
        ts: Some(ts),
        method: req.method.and_then(JVal::into_text),
        target: req.uri.and_then(JVal::into_text),
        protocol: req.proto.and_then(JVal::into_text),
        status: Some(status),
        bytes,
        duration_ms,
        referrer: headers.referer,
        user_agent: headers.user_agent,
        host: req.host.and_then(JVal::into_text),
        upstream: None,
        cookies: headers.cookie,
        session: None,
        user: line.user_id.and_then(JVal::into_text),
    })
}

/// Parse a Go duration string (`1.5ms`, `2m3.5s`, `350µs`) into milliseconds.
pub(super) fn go_duration_ms(s: &str) -> Option<f64> {
    let mut rest = s.trim();
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        total += match &rest[..unit_end] {
            "ns" => n / 1e6,
            "us" | "µs" | "μs" => n / 1e3,
            "ms" => n,
            "s" => n * 1e3,
            "m" => n * 60e3,
            "h" => n * 3600e3,
            _ => return None,
        };
        rest = &rest[unit_end..];
    }
    total.is_finite().then_some(total)
}
