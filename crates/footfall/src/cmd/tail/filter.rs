//! Which messages `footfall tail` shows: a message value is decoded as a
//! visit event (or, with `--dlq`, a dead letter) and kept when every
//! criterion holds. A value that does not decode is reported, never shown
//! and never fatal.

use footfall_event::{json_error, Reject, RejectKind, VisitEvent, SCHEMA_HEADER, SCHEMA_VERSION};

use super::args::{Args, StatusMatch};

/// Which bots to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BotFilter {
    /// Bots and people.
    #[default]
    Any,
    /// Bots only (`--bots`).
    Only,
    /// People only (`--no-bots`).
    Exclude,
}

/// Criteria on visit events: all must hold; an empty list holds for every event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisitFilter {
    pub sites: Vec<String>,
    pub statuses: Vec<StatusMatch>,
    pub path_prefixes: Vec<String>,
    pub media: Vec<String>,
    pub bots: BotFilter,
}

impl VisitFilter {
    /// Whether `ev` is shown.
    pub fn matches(&self, ev: &VisitEvent) -> bool {
        let any = |list: &[String], hit: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|x| hit(x))
        };
        any(&self.sites, &|s| s.eq_ignore_ascii_case(&ev.site))
            && (self.statuses.is_empty() || self.statuses.iter().any(|m| m.matches(ev.status)))
            && any(&self.path_prefixes, &|p| ev.path.starts_with(p))
            && any(&self.media, &|m| {
                m.eq_ignore_ascii_case(&ev.referrer_medium)
            })
            && match self.bots {
                BotFilter::Any => true,
                BotFilter::Only => ev.is_bot,
                BotFilter::Exclude => !ev.is_bot,
            }
    }
}

/// Criteria on dead letters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RejectFilter {
    pub kinds: Vec<RejectKind>,
}

impl RejectFilter {
    /// Whether `r` is shown.
    pub fn matches(&self, r: &Reject) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&r.kind)
    }
}

/// What is tailed, and which of it is shown.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Visits(VisitFilter),
    DeadLetters(RejectFilter),
}

impl Filter {
    /// The filter the command line asks for.
    pub fn from_args(args: &Args) -> Filter {
        if args.dlq {
            return Filter::DeadLetters(RejectFilter {
                kinds: args.kind.clone(),
            });
        }
        Filter::Visits(VisitFilter {
            sites: args
                .site
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            statuses: args.status.clone(),
            path_prefixes: args.path_prefix.clone(),
            media: args.medium.clone(),
            bots: match (args.bots, args.no_bots) {
                (true, _) => BotFilter::Only,
                (_, true) => BotFilter::Exclude,
                _ => BotFilter::Any,
            },
        })
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Visit(Box<VisitEvent>),
    Reject(Box<Reject>),
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Show(Record),
    Hide,
    /// The message does not decode; the reason is for a warning.
    Malformed(String),
}

/// Decodes a message value and applies the filter. `schema` is the value of the
/// [`SCHEMA_HEADER`] header, when present.
pub fn classify(filter: &Filter, payload: Option<&[u8]>, schema: Option<&[u8]>) -> Verdict {
    let payload = match payload {
        Some(p) if !p.iter().all(u8::is_ascii_whitespace) => p,
        _ => return Verdict::Malformed("empty message".into()),
    };
    // Every older version is read; a newer or unreadable one is named.
    let newer = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.trim().parse::<u16>().ok())
            .is_none_or(|v| v > SCHEMA_VERSION)
    };
    let schema_note = || match schema {
        Some(v) if newer(v) => {
            format!(
                " (header {SCHEMA_HEADER} is {}; this footfall reads {SCHEMA_VERSION})",
                String::from_utf8_lossy(v)
            )
        }
        _ => String::new(),
    };
    match filter {
        Filter::Visits(f) => match serde_json::from_slice::<VisitEvent>(payload) {
            Ok(ev) if f.matches(&ev) => Verdict::Show(Record::Visit(Box::new(ev))),
            Ok(_) => Verdict::Hide,
            Err(e) => Verdict::Malformed(format!(
                "{}{}",
                json_error(&e, "a visit event"),
                schema_note()
            )),
        },
        Filter::DeadLetters(f) => match serde_json::from_slice::<Reject>(payload) {
            Ok(r) if f.matches(&r) => Verdict::Show(Record::Reject(Box::new(r))),
            Ok(_) => Verdict::Hide,
            Err(e) => Verdict::Malformed(format!(
                "{}{}",
                json_error(&e, "a dead letter"),
                schema_note()
            )),
        },
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::args::tests::args;
    use super::*;
    use serde_json::json;

    /// A visit event with the fields of `patch` changed.
    pub(in crate::cmd::tail) fn event(patch: serde_json::Value) -> VisitEvent {
        let mut base = json!({
            "v": 1, "event_id": "00112233445566778899aabbccddeeff", "ts": "2025-05-17T10:05:03+02:00",
            "site": "example.org", "visitor_id": "0011223344556677", "status": 200, "method": "GET",
            "path": "/api/v1/users/42", "route": "/api/v1/users/:id", "referrer_medium": "search",
            "referrer_source": "Google", "browser": "Firefox", "os": "Linux", "device": "desktop",
            "is_bot": false, "kind": "page", "is_pageview": true, "source": "access.log", "offset": 0
        });
        for (k, v) in patch.as_object().expect("patch is an object") {
            base[k] = v.clone();
        }
        serde_json::from_value(base).expect("test event deserialises")
    }

    /// A dead letter of `kind`.
    pub(in crate::cmd::tail) fn reject(kind: RejectKind) -> Reject {
        Reject {
            v: 1,
            event_id: "ff".repeat(16),
            source: "/var/log/nginx/access.log".into(),
            offset: 1234,
            kind,
            reason: "no status".into(),
            line: "1.2.3.0 - - [17/May/2025:10:05:03 +0000] \"GET / HTTP/1.1\" x -".into(),
            truncated: false,
        }
    }

    #[test]
    fn visit_filter_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, serde_json::Value, bool)] = &[
            ("no filter shows everything", "", json!({}), true),
            ("status class matches its members", "--status 5xx", json!({"status": 503}), true),
            ("status class is case-insensitive", "--status 5XX", json!({"status": 500}), true),
            ("status class excludes other classes", "--status 5xx", json!({"status": 404}), false),
            ("status class excludes a missing status", "--status 5xx", json!({"status": 0}), false),
            ("exact status matches", "--status 404", json!({"status": 404}), true),
            ("exact status excludes its neighbour", "--status 404", json!({"status": 403}), false),
            ("status 0 selects events without one", "--status 0", json!({"status": 0}), true),
            ("comma list is any-of", "--status 4xx,5xx", json!({"status": 418}), true),
            ("comma list excludes the rest", "--status 4xx,5xx", json!({"status": 200}), false),
            ("repeated --status is any-of", "--status 404 --status 5xx", json!({"status": 502}), true),
            ("range includes its upper bound", "--status 500-503", json!({"status": 503}), true),
            ("range excludes past its bound", "--status 500-503", json!({"status": 504}), false),
            ("site matches exactly", "--site example.org", json!({}), true),
            ("site ignores ASCII case", "--site Example.ORG", json!({}), true),
            ("site is not a substring match", "--site example", json!({}), false),
            ("another site is excluded", "--site shop.example", json!({}), false),
            ("several sites are any-of", "--site a.example,example.org", json!({}), true),
            ("path prefix matches", "--path-prefix /api", json!({"path": "/api/v1/x"}), true),
            ("path prefix is literal", "--path-prefix /api", json!({"path": "/apiary"}), true),
            ("path prefix is case-sensitive", "--path-prefix /API", json!({"path": "/api/v1"}), false),
            ("path prefix excludes other paths", "--path-prefix /api", json!({"path": "/static/a.css"}), false),
            ("several path prefixes are any-of", "--path-prefix /static --path-prefix /api", json!({}), true),
            ("medium matches", "--medium search", json!({}), true),
            ("medium ignores case", "--medium SEARCH", json!({}), true),
            ("another medium is excluded", "--medium social", json!({}), false),
            ("medium list is any-of", "--medium social,direct", json!({"referrer_medium": "direct"}), true),
            ("--bots shows bots", "--bots", json!({"is_bot": true, "device": "bot"}), true),
            ("--bots hides people", "--bots", json!({}), false),
            ("--no-bots hides bots", "--no-bots", json!({"is_bot": true}), false),
            ("--no-bots shows people", "--no-bots", json!({}), true),
            ("criteria combine with AND: all hold", "--status 5xx --site example.org --path-prefix /api --no-bots",
                json!({"status": 500}), true),
            ("criteria combine with AND: one fails", "--status 5xx --site example.org --path-prefix /api --no-bots",
                json!({"status": 500, "is_bot": true}), false),
        ];
        for (name, line, patch, expected) in cases {
            let a = args(line).unwrap_or_else(|e| panic!("{name}: {line}: {e}"));
            let Filter::Visits(f) = Filter::from_args(&a) else {
                panic!("{name}: not a visits filter")
            };
            assert_eq!(
                f.matches(&event(patch.clone())),
                *expected,
                "{name}: `{line}` on {patch}"
            );
        }
        assert_eq!(
            Filter::from_args(&args("").unwrap()),
            Filter::Visits(VisitFilter::default())
        );
    }

    #[test]
    fn reject_filter_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, RejectKind, bool)] = &[
            ("no kind shows every dead letter", "--dlq", RejectKind::Malformed, true),
            ("kind matches", "--dlq --kind bad_status", RejectKind::BadStatus, true),
            ("kind ignores case", "--dlq --kind BAD_STATUS", RejectKind::BadStatus, true),
            ("other kinds are excluded", "--dlq --kind bad_status", RejectKind::Malformed, false),
            ("kind list is any-of", "--dlq --kind malformed,too_long", RejectKind::TooLong, true),
        ];
        for (name, line, kind, expected) in cases {
            let a = args(line).unwrap_or_else(|e| panic!("{name}: {line}: {e}"));
            let Filter::DeadLetters(f) = Filter::from_args(&a) else {
                panic!("{name}: not a dead-letter filter")
            };
            assert_eq!(f.matches(&reject(*kind)), *expected, "{name}");
        }
    }

    /// The vocabularies tail validates its filters against are the values
    /// the parser emits.
    #[test]
    fn the_vocabularies_are_those_the_parser_emits() {
        use footfall_event::{DEVICES, KINDS, REFERRER_MEDIA};
        use footfall_parse::{classify::Kind, referrer::Medium, ua};
        let media: Vec<&str> = Medium::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(media, REFERRER_MEDIA);
        let mut devices = [
            ua::DEVICE_DESKTOP,
            ua::DEVICE_MOBILE,
            ua::DEVICE_TABLET,
            ua::DEVICE_BOT,
            ua::DEVICE_OTHER,
        ];
        let mut listed = DEVICES;
        devices.sort_unstable();
        listed.sort_unstable();
        assert_eq!(devices, listed);
        let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, KINDS);
    }

    #[test]
    fn classify_decodes_filters_and_reports_malformed_messages() {
        let five = Filter::Visits(VisitFilter {
            statuses: vec![StatusMatch::Class(5)],
            ..Default::default()
        });
        let ok = serde_json::to_vec(&event(json!({"status": 502}))).unwrap();
        let other = serde_json::to_vec(&event(json!({"status": 200}))).unwrap();
        assert!(
            matches!(classify(&five, Some(&ok), Some(b"1")), Verdict::Show(Record::Visit(e)) if e.status == 502)
        );
        assert_eq!(classify(&five, Some(&other), None), Verdict::Hide);

        let Verdict::Malformed(why) = classify(&five, Some(b"{\"status\": 500"), None) else {
            panic!("truncated JSON passed")
        };
        assert!(why.starts_with("truncated JSON (line 1"), "{why}");
        // What is wrong and where, never a value of the payload.
        let Verdict::Malformed(why) = classify(&five, Some(br#"{"v":"alice@example.com"}"#), None)
        else {
            panic!("a string version passed")
        };
        assert!(
            why.starts_with("JSON that is not a visit event (line 1, column "),
            "{why}"
        );
        assert!(!why.contains("alice"), "{why}");
        assert_eq!(
            classify(&five, None, None),
            Verdict::Malformed("empty message".into())
        );
        assert_eq!(
            classify(&five, Some(b" \n"), None),
            Verdict::Malformed("empty message".into())
        );
        let newer = (SCHEMA_VERSION + 1).to_string();
        let payload = format!("{{\"v\":{newer}}}");
        let Verdict::Malformed(why) =
            classify(&five, Some(payload.as_bytes()), Some(newer.as_bytes()))
        else {
            panic!("a newer schema passed")
        };
        assert!(
            why.contains(&format!(
                "header footfall-schema is {newer}; this footfall reads {SCHEMA_VERSION}"
            )),
            "{why}"
        );
        // An older version is read: a message that does not decode is not blamed on it.
        let Verdict::Malformed(why) = classify(&five, Some(b"{\"v\":1}"), Some(b"1")) else {
            panic!("an incomplete event passed")
        };
        assert!(!why.contains("footfall-schema"), "{why}");

        // A dead letter on the visits topic, and a visit on the dead-letter topic, are malformed.
        let dead = serde_json::to_vec(&reject(RejectKind::Malformed)).unwrap();
        assert!(matches!(
            classify(&five, Some(&dead), None),
            Verdict::Malformed(_)
        ));
        let dlq = Filter::DeadLetters(RejectFilter::default());
        assert!(
            matches!(classify(&dlq, Some(&ok), None), Verdict::Malformed(w) if w.starts_with("JSON that is not a dead letter"))
        );
        assert!(matches!(
            classify(&dlq, Some(&dead), None),
            Verdict::Show(_)
        ));
    }
}
