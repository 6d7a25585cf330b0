//! Traefik's JSON access log (`traefik-json`): the fields read are listed
//! at [`JsonFormat::traefik`](super::JsonFormat::traefik).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use footfall_event::RejectKind;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::{bad_json, bad_number, status_from_jval, time_from_jval, JStr, JVal};
use crate::formats::aws::strip_port;
use crate::record::{dash_none, LineError, LineResult, RawRecord};

#[derive(Deserialize)]
struct TraefikLine<'a> {
    #[serde(rename = "ClientHost", borrow, default)]
    client_host: Option<JVal<'a>>,
    #[serde(rename = "ClientAddr", borrow, default)]
    client_addr: Option<JVal<'a>>,
    #[serde(rename = "ClientUsername", borrow, default)]
    client_username: Option<JVal<'a>>,
    #[serde(rename = "StartUTC", borrow, default)]
    start_utc: Option<JVal<'a>>,
    #[serde(rename = "StartLocal", borrow, default)]
    start_local: Option<JVal<'a>>,
    #[serde(rename = "time", borrow, default)]
    time: Option<JVal<'a>>,
    #[serde(rename = "RequestMethod", borrow, default)]
    method: Option<JVal<'a>>,
    #[serde(rename = "RequestPath", borrow, default)]
    path: Option<JVal<'a>>,
    #[serde(rename = "RequestProtocol", borrow, default)]
    protocol: Option<JVal<'a>>,
    #[serde(rename = "RequestHost", borrow, default)]
    host: Option<JVal<'a>>,
    #[serde(rename = "RequestAddr", borrow, default)]
    addr: Option<JVal<'a>>,
    #[serde(rename = "DownstreamStatus", borrow, default)]
    downstream_status: Option<JVal<'a>>,
    #[serde(rename = "OriginStatus", borrow, default)]
    origin_status: Option<JVal<'a>>,
    #[serde(rename = "DownstreamContentSize", borrow, default)]
    size: Option<JVal<'a>>,
    #[serde(rename = "Duration", borrow, default)]
    duration: Option<JVal<'a>>,
    #[serde(rename = "request_Referer", borrow, default)]
    referer: Option<JVal<'a>>,
    #[serde(rename = "request_User-Agent", borrow, default)]
    user_agent: Option<JVal<'a>>,
    #[serde(rename = "request_Cookie", borrow, default)]
    cookie: Option<JVal<'a>>,
    #[serde(rename = "ServiceAddr", borrow, default)]
    service_addr: Option<JVal<'a>>,
    #[serde(rename = "ServiceURL", borrow, default)]
    service_url: Option<ServiceUrl<'a>>,
    #[serde(rename = "ServiceName", borrow, default)]
    service_name: Option<JVal<'a>>,
}

/// Traefik's `ServiceURL`: a Go `url.URL` object (its `Host`) or a plain string.
struct ServiceUrl<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for ServiceUrl<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ServiceUrl<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a URL object or string")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut host = None;
                while let Some(k) = map.next_key::<JStr<'a>>()? {
                    if &*k.0 == "Host" {
                        host = map.next_value::<JVal<'a>>()?.into_text();
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(ServiceUrl(host))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ServiceUrl(dash_none(v).map(Cow::Borrowed)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ServiceUrl(dash_none(v).map(|s| Cow::Owned(s.to_owned()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ServiceUrl(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

pub(super) fn parse_traefik(json: &str) -> LineResult<'_> {
    let line: TraefikLine<'_> = serde_json::from_str(json).map_err(bad_json)?;
    if line.method.is_none()
        && line.path.is_none()
        && line.downstream_status.is_none()
        && line.origin_status.is_none()
    {
        return Err(LineError::new(
            RejectKind::Header,
            "not an access log entry",
        ));
    }
    let time = line
        .start_utc
        .as_ref()
        .or(line.start_local.as_ref())
        .or(line.time.as_ref());
    let ts = match time {
        Some(v) => time_from_jval(v)?,
        None => {
            return Err(LineError::new(
                RejectKind::BadTimestamp,
                "no StartUTC, StartLocal or time",
            ))
        }
    };
    let status = match line
        .downstream_status
        .as_ref()
        .or(line.origin_status.as_ref())
    {
        Some(v) => status_from_jval(v)?,
        None => {
            return Err(LineError::new(
                RejectKind::BadStatus,
                "no DownstreamStatus or OriginStatus",
            ))
        }
    };
    let bytes = match line.size {
        Some(v) => v
            .to_u64()
            .map_err(|()| bad_number("DownstreamContentSize"))?,
        None => None,
    };
    let duration_ms = match line.duration {
        Some(v) => v
            .to_f64()
            .map_err(|()| bad_number("Duration"))?
            .map(|ns| ns / 1e6),
        None => None,
    };
    let client = line.client_host.and_then(JVal::into_text).or_else(|| {
        line.client_addr.and_then(JVal::into_text).map(|a| match a {
            Cow::Borrowed(a) => Cow::Borrowed(strip_port(a)),
            Cow::Owned(a) => Cow::Owned(strip_port(&a).to_owned()),
        })
    });
    let upstream = line
        .service_addr
        .and_then(JVal::into_text)
        .or_else(|| line.service_url.and_then(|u| u.0))
        .or_else(|| line.service_name.and_then(JVal::into_text));
    Ok(RawRecord {
        client,
        ts: Some(ts),
        method: line.method.and_then(JVal::into_text),
        target: line.path.and_then(JVal::into_text),
        protocol: line.protocol.and_then(JVal::into_text),
        status: Some(status),
        bytes,
        duration_ms,
        referrer: line.referer.and_then(JVal::into_text),
        user_agent: line.user_agent.and_then(JVal::into_text),
        host: line
            .host
            .and_then(JVal::into_text)
            .or_else(|| line.addr.and_then(JVal::into_text)),
        upstream,
        cookies: line.cookie.and_then(JVal::into_text),
        session: None,
        user: line.client_username.and_then(JVal::into_text),
    })
}
