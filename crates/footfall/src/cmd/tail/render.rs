//! How `footfall tail` shows what it reads: JSON lines passed through as
//! received, or, on a terminal, aligned and coloured columns sized to its
//! width. Text from the stream is sanitised first, so a log line cannot
//! drive the terminal.

use std::fmt::Write as _;

use chrono::{DateTime, Local};
use console::{Alignment, Style};
use footfall_event::{Reject, VisitEvent};

/// Appends a message value as one JSON line: as received, unless the producer
/// spread it over several lines, in which case it is compacted.
pub fn push_json_line(out: &mut Vec<u8>, payload: &[u8]) {
    let trimmed = payload.trim_ascii_end();
    if memchr::memchr(b'\n', trimmed).is_some() {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(trimmed) {
            serde_json::to_writer(&mut *out, &v).expect("a JSON value serialises");
            out.push(b'\n');
            return;
        }
    }
    out.extend_from_slice(trimmed);
    out.push(b'\n');
}

/// Makes text safe to put on a terminal: control characters and bidirectional
/// overrides are shown escaped instead of being interpreted.
pub fn sanitize(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            if (c as u32) < 0x100 {
                let _ = write!(out, "\\x{:02x}", c as u32);
            } else {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Column widths for the terminal view of visit events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub site: usize,
    pub path: usize,
    /// `medium/source`, when there is room.
    pub medium: Option<usize>,
    /// `device/browser`, when there is room.
    pub device: Option<usize>,
}

const TIME_W: usize = 14; // 05-17 10:05:03
const STATUS_W: usize = 3;
const METHOD_W: usize = 7;
const BOT_W: usize = 3;
const MIN_PATH_W: usize = 12;
const KIND_W: usize = 13; // bad_timestamp
const SOURCE_W: usize = 28;
const OFFSET_W: usize = 10;
const REASON_W: usize = 20;

impl Layout {
    /// The columns that fit `width` terminal cells; the path takes what is left.
    pub fn for_width(width: usize) -> Layout {
        let site = if width >= 90 { 16 } else { 12 };
        let (medium, device) = match width {
            w if w >= 120 => (Some(16), Some(20)),
            w if w >= 100 => (Some(16), None),
            _ => (None, None),
        };
        let fixed =
            TIME_W + site + STATUS_W + METHOD_W + BOT_W + medium.unwrap_or(0) + device.unwrap_or(0);
        let gaps = 5 + usize::from(medium.is_some()) + usize::from(device.is_some());
        let path = width.saturating_sub(fixed + gaps).max(MIN_PATH_W);
        Layout {
            site,
            path,
            medium,
            device,
        }
    }

    /// The header row.
    pub fn header(&self, color: bool) -> String {
        let mut cols = vec![
            pad("TIME", TIME_W),
            pad("SITE", self.site),
            pad("ST", STATUS_W),
            pad("METHOD", METHOD_W),
            pad("PATH", self.path),
        ];
        if let Some(w) = self.medium {
            cols.push(pad("MEDIUM/SOURCE", w));
        }
        if let Some(w) = self.device {
            cols.push(pad("DEVICE/BROWSER", w));
        }
        cols.push("BOT".into());
        let line = cols.join(" ");
        Style::new()
            .bold()
            .force_styling(color)
            .apply_to(line.trim_end())
            .to_string()
    }
}

/// `s` truncated (with `…`) or padded to exactly `w` cells.
fn pad(s: &str, w: usize) -> String {
    console::pad_str(&sanitize(s), w, Alignment::Left, Some("…")).into_owned()
}

fn status_style(status: u16) -> Style {
    match status {
        200..=299 => Style::new().green(),
        300..=399 => Style::new().cyan(),
        400..=499 => Style::new().yellow(),
        500..=599 => Style::new().red().bold(),
        _ => Style::new(),
    }
}

/// One visit event as a terminal line (no newline).
pub fn render_visit(ev: &VisitEvent, layout: &Layout, color: bool) -> String {
    let styled = |s: String, style: Style| style.force_styling(color).apply_to(s).to_string();
    let mut line = String::with_capacity(160);
    line.push_str(&styled(
        ev.ts.format("%m-%d %H:%M:%S").to_string(),
        Style::new().dim(),
    ));
    line.push(' ');
    line.push_str(&pad(&ev.site, layout.site));
    line.push(' ');
    let status = if ev.status == 0 {
        "-".to_string()
    } else {
        ev.status.to_string()
    };
    line.push_str(&styled(pad(&status, STATUS_W), status_style(ev.status)));
    line.push(' ');
    line.push_str(&pad(ev.method.as_deref().unwrap_or("-"), METHOD_W));
    line.push(' ');
    // The path, and the route template after it when it differs and fits.
    let path = sanitize(if ev.path.is_empty() { "-" } else { &ev.path });
    let route = sanitize(&ev.route);
    let path_w = console::measure_text_width(&path);
    let suffix = format!(" → {route}");
    if route != path
        && !ev.route.is_empty()
        && path_w + console::measure_text_width(&suffix) <= layout.path
    {
        line.push_str(&path);
        line.push_str(&styled(suffix.clone(), Style::new().dim()));
        line.push_str(&" ".repeat(layout.path - path_w - console::measure_text_width(&suffix)));
    } else {
        line.push_str(&pad(&path, layout.path));
    }
    if let Some(w) = layout.medium {
        let medium = match &ev.referrer_source {
            Some(src) => format!("{}/{}", ev.referrer_medium, src),
            None => ev.referrer_medium.to_string(),
        };
        line.push(' ');
        line.push_str(&pad(&medium, w));
    }
    if let Some(w) = layout.device {
        let agent = if ev.is_bot {
            ev.bot_name.as_deref().or(ev.browser.as_deref())
        } else {
            ev.browser.as_deref()
        };
        let device = match agent {
            Some(a) => format!("{}/{}", ev.device, a),
            None => ev.device.to_string(),
        };
        line.push(' ');
        line.push_str(&pad(&device, w));
    }
    if ev.is_bot {
        line.push(' ');
        line.push_str(&styled("bot".into(), Style::new().magenta()));
    }
    let end = line.trim_end().len();
    line.truncate(end);
    line
}

/// The header row of the dead-letter view.
pub fn reject_header(width: usize, color: bool) -> String {
    let used = TIME_W + KIND_W + SOURCE_W + OFFSET_W + REASON_W + 5;
    let line = [
        pad("TIME", TIME_W),
        pad("KIND", KIND_W),
        pad("SOURCE", SOURCE_W),
        format!("{:>OFFSET_W$}", "OFFSET"),
        pad("REASON", REASON_W),
        pad("LINE", width.saturating_sub(used).max(MIN_PATH_W)),
    ]
    .join(" ");
    Style::new()
        .bold()
        .force_styling(color)
        .apply_to(line.trim_end())
        .to_string()
}

/// One dead letter as a terminal line (no newline): time of the Kafka message,
/// kind, source, offset, reason and the (already scrubbed) line.
pub fn render_reject(r: &Reject, at: Option<DateTime<Local>>, width: usize, color: bool) -> String {
    let styled = |s: String, style: Style| style.force_styling(color).apply_to(s).to_string();
    let time = at.map_or_else(
        || "-".to_string(),
        |t| t.format("%m-%d %H:%M:%S").to_string(),
    );
    // Keep the end of a long source: the file name says more than the directory.
    let source: Vec<char> = sanitize(&r.source).chars().collect();
    let source: String = if source.len() > SOURCE_W {
        std::iter::once('…')
            .chain(source[source.len() - (SOURCE_W - 1)..].iter().copied())
            .collect()
    } else {
        source.into_iter().collect()
    };
    let mut line = String::with_capacity(200);
    line.push_str(&styled(pad(&time, TIME_W), Style::new().dim()));
    line.push(' ');
    line.push_str(&styled(pad(r.kind.as_str(), KIND_W), Style::new().yellow()));
    line.push(' ');
    line.push_str(&pad(&source, SOURCE_W));
    line.push(' ');
    let _ = write!(line, "{:>OFFSET_W$}", r.offset);
    line.push(' ');
    line.push_str(&styled(pad(&r.reason, REASON_W), Style::new().dim()));
    line.push(' ');
    let used = TIME_W + KIND_W + SOURCE_W + OFFSET_W + REASON_W + 5;
    let text = if r.truncated {
        format!("{}…", r.line)
    } else {
        r.line.clone()
    };
    line.push_str(&pad(&text, width.saturating_sub(used).max(MIN_PATH_W)));
    let end = line.trim_end().len();
    line.truncate(end);
    line
}

#[cfg(test)]
mod tests {
    use super::super::filter::tests::{event, reject};
    use super::*;
    use chrono::TimeZone;
    use footfall_event::RejectKind;
    use serde_json::json;

    #[test]
    fn json_lines_are_passed_through() {
        let mut out = Vec::new();
        push_json_line(&mut out, br#"{"a": 1,  "b":[2]}"#);
        push_json_line(&mut out, b"{\"c\":3}\r\n");
        push_json_line(&mut out, b"{\n  \"d\": 4\n}\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\": 1,  \"b\":[2]}\n{\"c\":3}\n{\"d\":4}\n"
        );
    }

    #[test]
    fn terminal_text_is_sanitized() {
        assert_eq!(sanitize("/plain/ü"), "/plain/ü");
        assert_eq!(sanitize("/a\x1b[2Jb\u{7}"), "/a\\x1b[2Jb\\x07");
        assert_eq!(sanitize("x\u{202e}y"), "x\\u{202e}y");
        let line = render_visit(
            &event(json!({"path": "/\x1b]0;owned\x07"})),
            &Layout::for_width(120),
            false,
        );
        assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
    }

    #[test]
    fn layouts_fit_their_width() {
        for width in [60, 80, 99, 100, 119, 120, 160, 250] {
            let layout = Layout::for_width(width);
            assert_eq!(layout.medium.is_some(), width >= 100, "{width}");
            assert_eq!(layout.device.is_some(), width >= 120, "{width}");
            let header = layout.header(false);
            assert!(
                console::measure_text_width(&header) <= width.max(60),
                "{width}: header {header:?}"
            );
            let long = event(json!({
                "path": format!("/{}", "segment/".repeat(40)), "route": "/segment/*", "site": "a-very-long-site-name.example.org",
                "is_bot": true, "device": "bot", "bot_name": "Googlebot", "referrer_source": "A Very Long Search Engine Name"
            }));
            for color in [false, true] {
                let line = render_visit(&long, &layout, color);
                let shown = console::measure_text_width(&line);
                assert!(
                    shown <= width.max(60),
                    "{width} color={color}: {shown} cells: {line:?}"
                );
            }
        }
    }

    #[test]
    fn visit_rows_show_the_columns() {
        let layout = Layout::for_width(140);
        let plain = render_visit(&event(json!({"status": 503})), &layout, false);
        assert!(
            plain.starts_with("05-17 10:05:03 example.org "),
            "{plain:?}"
        );
        for part in [
            " 503 ",
            " GET ",
            "/api/v1/users/42 → /api/v1/users/:id",
            "search/Google",
            "desktop/Firefox",
        ] {
            assert!(plain.contains(part), "{part:?} missing from {plain:?}");
        }
        assert!(
            !plain.contains('\x1b') && !plain.ends_with("bot"),
            "{plain:?}"
        );
        let columns = |l: &str| l.find("GET").unwrap();
        let other = render_visit(
            &event(
                json!({"site": "x", "status": 0, "method": "DELETE", "path": "/", "route": "/"}),
            ),
            &layout,
            false,
        );
        assert_eq!(
            columns(&plain),
            other.find("DELETE").unwrap(),
            "columns align: {plain:?} / {other:?}"
        );
        assert!(
            other.contains(" -   DELETE "),
            "missing status shows as -: {other:?}"
        );

        let colored = render_visit(&event(json!({"status": 503})), &layout, true);
        assert!(colored.contains("31m"), "5xx is red: {colored:?}");
        assert_eq!(console::strip_ansi_codes(&colored), plain);

        let bot = render_visit(
            &event(json!({"is_bot": true, "device": "bot", "bot_name": "Googlebot"})),
            &layout,
            false,
        );
        assert!(
            bot.ends_with(" bot") && bot.contains("bot/Googlebot"),
            "{bot:?}"
        );
    }

    #[test]
    fn dead_letter_rows_show_kind_source_offset_and_line() {
        let at = Local.timestamp_millis_opt(1_747_476_303_000).single();
        let line = render_reject(&reject(RejectKind::BadStatus), at, 160, false);
        for part in [
            "bad_status",
            "/var/log/nginx/access.log",
            " 1234 ",
            "no status",
            "\"GET / HTTP/1.1\" x -",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
        let mut long = reject(RejectKind::TooLong);
        long.source = "/srv/www/a-very-long-directory-name/logs/access.log".into();
        long.line = "x".repeat(500);
        long.truncated = true;
        let line = render_reject(&long, None, 120, false);
        let header = reject_header(120, false);
        let column = |text: &str, part: &str| {
            text.find(part)
                .map(|i| console::measure_text_width(&text[..i]))
        };
        assert_eq!(
            column(&line, " 1234 "),
            column(&header, " OFFSET ").map(|c| c + 2),
            "{header:?} / {line:?}"
        );
        assert!(
            line.contains("…")
                && line.contains("name/logs/access.log")
                && !line.contains("/srv/www"),
            "{line:?}"
        );
        assert!(console::measure_text_width(&line) <= 120, "{line:?}");
    }
}
