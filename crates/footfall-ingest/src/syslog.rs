//! Syslog listeners: access-log lines as the MSG of syslog messages.
//!
//! nginx (`access_log syslog:server=127.0.0.1:5514,tag=nginx combined;`) and
//! Apache (through `logger` or rsyslog forwarding) can send each access-log
//! line as a syslog message. The listeners accept:
//!
//! * **UDP**: one message per datagram (RFC 5426);
//! * **TCP**: octet-counting framing (`LEN SP MSG`, RFC 6587 §3.4.1) and
//!   newline framing (RFC 6587 §3.4.2), detected per message;
//!
//! with an RFC 5424 header (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`)
//! or an RFC 3164 one (`<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`, the host being
//! optional as with nginx's `nohostname`). Only MSG goes on to the parser.
//!
//! Syslog cannot be replayed, so these sources have no checkpoints; each
//! listener (UDP) or connection (TCP) is one stream whose offsets count the
//! bytes of the messages received, and whose source key is unique to it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use footfall_parse::SourceRef;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::lines::LineBuf;
use crate::source::RawBatch;
use crate::track::Track;

/// Which header a message carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`.
    Rfc5424,
    /// RFC 3164 (BSD): `<PRI>TIMESTAMP HOSTNAME TAG: MSG`.
    Rfc3164,
    /// No `<PRI>`: the whole frame is the message.
    None,
}

/// A syslog message, borrowed from its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Which header the message carried.
    pub header: Header,
    /// Priority (facility * 8 + severity), when present.
    pub pri: Option<u8>,
    /// HOSTNAME, when present (`-` in 5424 is absent).
    pub hostname: Option<&'a [u8]>,
    /// APP-NAME (5424) or TAG without `[pid]:` (3164).
    pub app: Option<&'a [u8]>,
    /// The MSG part: the access-log line.
    pub msg: &'a [u8],
}

/// Split one syslog frame into header fields and MSG. Never fails: what
/// cannot be read as a header is part of the message.
pub fn parse_message(frame: &[u8]) -> Message<'_> {
    let frame = trim_end(frame);
    let Some((pri, rest)) = parse_pri(frame) else {
        return Message {
            header: Header::None,
            pri: None,
            hostname: None,
            app: None,
            msg: frame,
        };
    };
    if let Some(m) = parse_5424(pri, rest) {
        return m;
    }
    parse_3164(pri, rest)
}

fn trim_end(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | b'\0'] = b {
        b = rest;
    }
    b
}

fn parse_pri(b: &[u8]) -> Option<(u8, &[u8])> {
    let rest = b.strip_prefix(b"<")?;
    let end = rest.iter().take(4).position(|&c| c == b'>')?;
    if end == 0 || !rest[..end].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pri: u16 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    if pri > 191 {
        return None;
    }
    Some((pri as u8, &rest[end + 1..]))
}

fn token(b: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', b) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

fn nil(t: &[u8]) -> Option<&[u8]> {
    (t != b"-" && !t.is_empty()).then_some(t)
}

fn parse_5424(pri: u8, b: &[u8]) -> Option<Message<'_>> {
    let (version, rest) = token(b);
    if version.is_empty()
        || version.len() > 2
        || !version.iter().all(u8::is_ascii_digit)
        || version == b"0"
    {
        return None;
    }
    let (_ts, rest) = token(rest);
    let (host, rest) = token(rest);
    let (app, rest) = token(rest);
    let (_procid, rest) = token(rest);
    let (_msgid, rest) = token(rest);
    let rest = skip_structured_data(rest)?;
    let msg = rest.strip_prefix(b" ").unwrap_or(rest);
    let msg = msg.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(msg);
    Some(Message {
        header: Header::Rfc5424,
        pri: Some(pri),
        hostname: nil(host),
        app: nil(app),
        msg,
    })
}

/// Skip `-` or a sequence of `[id param="value" ...]` elements.
fn skip_structured_data(b: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = b.strip_prefix(b"-") {
        return Some(rest);
    }
    if b.first() != Some(&b'[') {
        return if b.is_empty() { Some(b) } else { None };
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        let mut in_quotes = false;
        loop {
            match *b.get(i)? {
                b'\\' if in_quotes => i += 2,
                b'"' => {
                    in_quotes = !in_quotes;
                    i += 1;
                }
                b']' if !in_quotes => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
    }
    Some(&b[i..])
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Length of an RFC 3164 timestamp at the start of `b` (`Mmm dd hh:mm:ss`,
/// optionally with fractional seconds and a year), or of an RFC 3339 one.
fn timestamp_len(b: &[u8]) -> Option<usize> {
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    if b.len() >= 15
        && MONTHS.iter().any(|m| &b[..3] == *m)
        && b[3] == b' '
        && (b[4] == b' ' || d(4))
        && d(5)
        && b[6] == b' '
        && d(7)
        && d(8)
        && b[9] == b':'
        && d(10)
        && d(11)
        && b[12] == b':'
        && d(13)
        && d(14)
    {
        let mut n = 15;
        if b.get(n) == Some(&b'.') {
            n += 1;
            while d(n) {
                n += 1;
            }
        }
        // "Mmm dd yyyy hh:mm:ss" is not standard; "Mmm dd hh:mm:ss yyyy" is seen.
        if b.get(n) == Some(&b' ')
            && d(n + 1)
            && d(n + 2)
            && d(n + 3)
            && d(n + 4)
            && b.get(n + 5) == Some(&b' ')
        {
            n += 5;
        }
        return Some(n);
    }
    if b.len() >= 19
        && d(0)
        && d(1)
        && d(2)
        && d(3)
        && b[4] == b'-'
        && d(5)
        && d(6)
        && b[7] == b'-'
        && d(8)
        && d(9)
        && b[10] == b'T'
    {
        return Some(memchr::memchr(b' ', b).unwrap_or(b.len()));
    }
    None
}

/// `TAG:` or `TAG[pid]:` → the tag name.
fn tag(t: &[u8]) -> Option<&[u8]> {
    let t = t.strip_suffix(b":")?;
    let name = match memchr::memchr(b'[', t) {
        Some(i) if t.ends_with(b"]") => &t[..i],
        Some(_) => return None,
        None => t,
    };
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/'));
    ok.then_some(name)
}

fn parse_3164(pri: u8, b: &[u8]) -> Message<'_> {
    let rest = match timestamp_len(b) {
        Some(n) => b[n..].strip_prefix(b" ").unwrap_or(&b[n..]),
        None => b,
    };
    let (t1, after1) = token(rest);
    if let Some(app) = tag(t1) {
        return Message {
            header: Header::Rfc3164,
            pri: Some(pri),
            hostname: None,
            app: Some(app),
            msg: after1,
        };
    }
    let (t2, after2) = token(after1);
    if let Some(app) = tag(t2) {
        return Message {
            header: Header::Rfc3164,
            pri: Some(pri),
            hostname: nil(t1),
            app: Some(app),
            msg: after2,
        };
    }
    // No tag: HOSTNAME then the message.
    if !after1.is_empty() {
        return Message {
            header: Header::Rfc3164,
            pri: Some(pri),
            hostname: nil(t1),
            app: None,
            msg: after1,
        };
    }
    Message {
        header: Header::Rfc3164,
        pri: Some(pri),
        hostname: None,
        app: None,
        msg: rest,
    }
}

/// Splits a TCP byte stream into syslog frames (octet counting or newline).
#[derive(Debug)]
pub struct TcpFramer {
    buf: Vec<u8>,
    /// Bytes still to skip of an over-long octet-counted frame.
    skip: usize,
    /// Discarding the rest of an over-long newline-framed message.
    skip_line: bool,
    cap: usize,
}

impl TcpFramer {
    /// Frames longer than `cap` bytes are cut to `cap + 1` bytes (the parser
    /// then rejects them as too long).
    pub fn new(cap: usize) -> Self {
        TcpFramer {
            buf: Vec::new(),
            skip: 0,
            skip_line: false,
            cap: cap.max(16),
        }
    }

    /// Feed received bytes; complete frames are appended to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Vec<u8>>) {
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        if self.skip_line {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    self.skip_line = false;
                    data = &data[i + 1..];
                }
                None => return,
            }
        }
        self.buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            // Blank separators between frames.
            while start < self.buf.len() && matches!(self.buf[start], b'\n' | b'\r' | b'\0') {
                start += 1;
            }
            let b = &self.buf[start..];
            if b.is_empty() {
                break;
            }
            let digits = b.iter().take(10).take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 && b[0] != b'0' && digits < 10 && b.get(digits) == Some(&b' ') {
                // Octet counting.
                let len: usize = std::str::from_utf8(&b[..digits])
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0);
                let body = digits + 1;
                if len > self.cap {
                    if b.len() > body + self.cap {
                        out.push(b[body..body + self.cap + 1].to_vec());
                        let have = b.len() - body;
                        if have >= len {
                            start += body + len;
                        } else {
                            self.skip = len - have;
                            start = self.buf.len();
                        }
                        continue;
                    }
                    break;
                }
                if b.len() < body + len {
                    break;
                }
                out.push(b[body..body + len].to_vec());
                start += body + len;
                continue;
            }
            if digits > 0 && digits == b.len().min(10) && digits < 10 {
                break; // maybe a length still arriving
            }
            // Newline framing.
            match memchr::memchr(b'\n', b) {
                Some(i) => {
                    out.push(clip(&b[..i], self.cap).to_vec());
                    start += i + 1;
                }
                None => {
                    if b.len() > self.cap {
                        out.push(b[..self.cap + 1].to_vec());
                        self.skip_line = true;
                        start = self.buf.len();
                    }
                    break;
                }
            }
        }
        self.buf.drain(..start);
    }

    /// The connection closed: an unterminated last message is still a message.
    pub fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        let rest = trim_end(&self.buf);
        let rest_start = rest
            .iter()
            .position(|c| !matches!(c, b'\n' | b'\r' | b'\0'))
            .unwrap_or(rest.len());
        if rest_start < rest.len() && !self.skip_line && self.skip == 0 {
            let mut frame = &rest[rest_start..];
            // An octet-counted frame cut short: keep its body.
            let digits = frame
                .iter()
                .take(10)
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits > 0 && digits < 10 && frame[0] != b'0' && frame.get(digits) == Some(&b' ') {
                frame = &frame[digits + 1..];
            }
            if !frame.is_empty() {
                out.push(clip(frame, self.cap).to_vec());
            }
        }
        self.buf.clear();
    }
}

fn clip(b: &[u8], cap: usize) -> &[u8] {
    &b[..b.len().min(cap + 1)]
}

static STREAMS: AtomicU64 = AtomicU64::new(0);

/// A source key unique to this stream (syslog is never replayed, so ids need
/// only be unique, not reproducible).
fn stream_ref(name: &str, first: &[u8]) -> SourceRef {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seq = STREAMS.fetch_add(1, Ordering::Relaxed);
    let mut seed = Vec::with_capacity(name.len() + first.len().min(1024) + 32);
    seed.extend_from_slice(name.as_bytes());
    seed.extend_from_slice(&nanos.to_le_bytes());
    seed.extend_from_slice(&seq.to_le_bytes());
    seed.extend_from_slice(&std::process::id().to_le_bytes());
    seed.extend_from_slice(&first[..first.len().min(1024)]);
    SourceRef {
        name: name.into(),
        key: xxhash_rust::xxh3::xxh3_128(&seed).to_le_bytes(),
    }
}

/// Assigns offsets to the messages of one stream and batches them.
struct StreamState {
    name: String,
    src: Option<SourceRef>,
    track: Arc<Track>,
    offset: u64,
}

impl StreamState {
    fn new(name: String, track: Arc<Track>) -> Self {
        StreamState {
            name,
            src: None,
            track,
            offset: 0,
        }
    }

    fn batch<'a>(&mut self, frames: impl IntoIterator<Item = &'a [u8]>) -> Option<RawBatch> {
        let mut lines = LineBuf::new();
        for frame in frames {
            let msg = parse_message(frame).msg;
            if self.src.is_none() {
                self.src = Some(stream_ref(&self.name, msg));
            }
            lines.push(self.offset, msg);
            self.offset += msg.len() as u64 + 1;
        }
        if lines.is_empty() {
            return None;
        }
        self.track.lock().size = self.offset;
        Some(RawBatch {
            track: self.track.clone(),
            src: self.src.clone()?,
            prime: LineBuf::new(),
            lines,
            end: self.offset,
        })
    }
}

/// Most messages taken from a UDP socket into one batch.
const UDP_BATCH: usize = 1024;

/// Receive syslog datagrams on `socket` until `stop`.
pub async fn run_udp(
    socket: UdpSocket,
    source: Arc<str>,
    tx: mpsc::Sender<RawBatch>,
    stop: CancellationToken,
    cap: usize,
) {
    let local = socket
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let track = Track::new(source.clone(), None, 0);
    let mut stream = StreamState::new(format!("syslog:udp:{local}"), track);
    let mut buf = vec![0u8; 65536];
    let mut frames: Vec<Vec<u8>> = Vec::new();
    loop {
        let got = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.cancelled() => return,
        };
        match got {
            Ok((n, _)) => frames.push(clip(&buf[..n], cap).to_vec()),
            Err(e) => {
                tracing::warn!(source = %source, "syslog udp receive error: {e}");
                continue;
            }
        }
        while frames.len() < UDP_BATCH {
            match socket.try_recv_from(&mut buf) {
                Ok((n, _)) => frames.push(clip(&buf[..n], cap).to_vec()),
                Err(_) => break,
            }
        }
        if let Some(batch) = stream.batch(frames.iter().map(Vec::as_slice)) {
            tokio::select! {
                sent = tx.send(batch) => if sent.is_err() { return },
                _ = stop.cancelled() => return,
            }
        }
        frames.clear();
    }
}

/// Accept syslog TCP connections on `listener` until `stop`.
pub async fn run_tcp(
    listener: TcpListener,
    source: Arc<str>,
    tx: mpsc::Sender<RawBatch>,
    stop: CancellationToken,
    cap: usize,
    max_connections: usize,
) {
    let local = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(source = %source, "syslog tcp accept error: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(source = %source, "syslog tcp: {max_connections} connections open; refusing another");
            drop(stream);
            continue;
        };
        let name = format!("syslog:tcp:{local}");
        let (source, tx, stop) = (source.clone(), tx.clone(), stop.clone());
        conns.spawn(async move {
            read_connection(stream, peer, name, source, tx, stop, cap).await;
            drop(permit);
        });
        while conns.try_join_next().is_some() {}
    }
    conns.shutdown().await;
}

async fn read_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    name: String,
    source: Arc<str>,
    tx: mpsc::Sender<RawBatch>,
    stop: CancellationToken,
    cap: usize,
) {
    tracing::debug!(source = %source, %peer, "syslog tcp connection");
    let track = Track::new(source.clone(), None, 0);
    let mut state = StreamState::new(name, track);
    let mut framer = TcpFramer::new(cap);
    let mut buf = vec![0u8; 65536];
    let mut frames = Vec::new();
    loop {
        let n = tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(source = %source, "syslog tcp read error: {e}");
                    0
                }
            },
            _ = stop.cancelled() => return,
        };
        if n == 0 {
            framer.finish(&mut frames);
        } else {
            framer.push(&buf[..n], &mut frames);
        }
        if let Some(batch) = state.batch(frames.iter().map(Vec::as_slice)) {
            tokio::select! {
                sent = tx.send(batch) => if sent.is_err() { return },
                _ = stop.cancelled() => return,
            }
        }
        frames.clear();
        if n == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"203.0.113.9 - - [10/Oct/2024:13:55:36 +0000] "GET /a?b=1 HTTP/1.1" 200 612 "-" "curl/8.5.0""#;

    #[test]
    fn headers() {
        struct Case {
            name: &'static str,
            frame: String,
            header: Header,
            host: Option<&'static str>,
            app: Option<&'static str>,
            msg: String,
        }
        let l = LINE.to_string();
        let cases = [
            Case {
                name: "nginx 3164 with hostname",
                frame: format!("<190>Oct 10 13:55:36 web-1 nginx: {l}"),
                header: Header::Rfc3164,
                host: Some("web-1"),
                app: Some("nginx"),
                msg: l.clone(),
            },
            Case {
                name: "nginx 3164 nohostname",
                frame: format!("<190>Oct 10 13:55:36 nginx: {l}"),
                header: Header::Rfc3164,
                host: None,
                app: Some("nginx"),
                msg: l.clone(),
            },
            Case {
                name: "3164 space-padded day",
                frame: format!("<13>Oct  5 03:04:05 host app: {l}"),
                header: Header::Rfc3164,
                host: Some("host"),
                app: Some("app"),
                msg: l.clone(),
            },
            Case {
                name: "3164 tag with pid",
                frame: format!("<13>Oct 10 13:55:36 host httpd[4711]: {l}"),
                header: Header::Rfc3164,
                host: Some("host"),
                app: Some("httpd"),
                msg: l.clone(),
            },
            Case {
                name: "3164 rfc3339 timestamp",
                frame: format!("<13>2024-10-10T13:55:36.123+02:00 host apache: {l}"),
                header: Header::Rfc3164,
                host: Some("host"),
                app: Some("apache"),
                msg: l.clone(),
            },
            Case {
                name: "3164 fractional seconds",
                frame: format!("<13>Oct 10 13:55:36.250 host a_b.c-d/e: {l}"),
                header: Header::Rfc3164,
                host: Some("host"),
                app: Some("a_b.c-d/e"),
                msg: l.clone(),
            },
            Case {
                name: "3164 no tag",
                frame: format!("<13>Oct 10 13:55:36 host {l}"),
                header: Header::Rfc3164,
                host: Some("host"),
                app: None,
                msg: l.clone(),
            },
            Case {
                name: "3164 trailing newline",
                frame: format!("<190>Oct 10 13:55:36 nginx: {l}\r\n"),
                header: Header::Rfc3164,
                host: None,
                app: Some("nginx"),
                msg: l.clone(),
            },
            Case {
                name: "5424 nil SD",
                frame: format!("<165>1 2024-10-10T13:55:36.003Z web-1 nginx 1234 ACCESS - {l}"),
                header: Header::Rfc5424,
                host: Some("web-1"),
                app: Some("nginx"),
                msg: l.clone(),
            },
            Case {
                name: "5424 BOM",
                frame: format!("<165>1 2024-10-10T13:55:36Z web-1 nginx - - - \u{feff}{l}"),
                header: Header::Rfc5424,
                host: Some("web-1"),
                app: Some("nginx"),
                msg: l.clone(),
            },
            Case {
                name: "5424 structured data with escapes",
                frame: format!(
                    r#"<165>1 2024-10-10T13:55:36Z h app - ID47 [ex@32473 iut="3" note="a \"q\" and \] here"][b@1 x="y"] {l}"#
                ),
                header: Header::Rfc5424,
                host: Some("h"),
                app: Some("app"),
                msg: l.clone(),
            },
            Case {
                name: "5424 nil everything, no msg",
                frame: "<14>1 - - - - - -".into(),
                header: Header::Rfc5424,
                host: None,
                app: None,
                msg: String::new(),
            },
            Case {
                name: "no PRI",
                frame: l.clone(),
                header: Header::None,
                host: None,
                app: None,
                msg: l.clone(),
            },
        ];
        for c in cases {
            let m = parse_message(c.frame.as_bytes());
            assert_eq!(m.header, c.header, "{}", c.name);
            assert_eq!(m.hostname, c.host.map(str::as_bytes), "{}", c.name);
            assert_eq!(m.app, c.app.map(str::as_bytes), "{}", c.name);
            assert_eq!(String::from_utf8_lossy(m.msg), c.msg, "{}", c.name);
        }
    }

    fn frames(chunks: &[&[u8]], cap: usize) -> Vec<String> {
        let mut f = TcpFramer::new(cap);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        f.finish(&mut out);
        out.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn tcp_framing() {
        struct Case {
            name: &'static str,
            chunks: Vec<&'static [u8]>,
            want: Vec<&'static str>,
        }
        let cases = [
            Case {
                name: "octet counting",
                chunks: vec![b"11 <13>1 - - a5 <13>b"],
                want: vec!["<13>1 - - a", "<13>b"],
            },
            Case {
                name: "octet counting split inside length and body",
                chunks: vec![b"1", b"1 <13>1 -", b" - a"],
                want: vec!["<13>1 - - a"],
            },
            Case {
                name: "octet counting message containing newline",
                chunks: vec![b"6 <1>a\nb"],
                want: vec!["<1>a\nb"],
            },
            Case {
                name: "octet counting with LF separators",
                chunks: vec![b"5 <1>ab\n5 <1>cd\n"],
                want: vec!["<1>ab", "<1>cd"],
            },
            Case {
                name: "newline framing",
                chunks: vec![b"<13>Oct 10 13:55:36 h a: x\n<13>Oct 10 13:55:36 h a: y\r\n"],
                want: vec!["<13>Oct 10 13:55:36 h a: x", "<13>Oct 10 13:55:36 h a: y\r"],
            },
            Case {
                name: "newline framing split",
                chunks: vec![b"<13>ab", b"c\n<13>d", b"ef\n"],
                want: vec!["<13>abc", "<13>def"],
            },
            Case {
                name: "unterminated last message at close",
                chunks: vec![b"<13>a\n<13>tail"],
                want: vec!["<13>a", "<13>tail"],
            },
            Case {
                name: "mixed framing",
                chunks: vec![b"5 <1>ab<13>nl\n3 <2>"],
                want: vec!["<1>ab", "<13>nl", "<2>"],
            },
            Case {
                name: "octet-counted frame cut short by the close",
                chunks: vec![b"20 <1>partial"],
                want: vec!["<1>partial"],
            },
            Case {
                name: "line starting with digits but no length",
                chunks: vec![b"203.0.113.9 - - x\n"],
                want: vec!["203.0.113.9 - - x"],
            },
        ];
        for c in cases {
            assert_eq!(frames(&c.chunks, 1024), c.want, "{}", c.name);
        }
    }

    #[test]
    fn tcp_framing_bounds_long_messages() {
        // Octet-counted frame longer than the cap: cut to cap + 1, the rest skipped.
        let long = format!("40 <1>{}", "x".repeat(37));
        let got = frames(
            &[&long.as_bytes()[..20], &long.as_bytes()[20..], b"5 <1>ok"],
            16,
        );
        assert_eq!(
            got,
            vec![format!("<1>{}", "x".repeat(14)), "<1>ok".to_string()]
        );
        // Newline-framed message longer than the cap.
        let got = frames(&[b"<1>0123456789abcdefghij", b"klmnop\n<1>next\n"], 16);
        assert_eq!(
            got,
            vec!["<1>0123456789abcd".to_string(), "<1>next".to_string()]
        );
    }

    #[test]
    fn udp_stream_offsets_and_unique_keys() {
        let track = Track::new("s".into(), None, 0);
        let mut a = StreamState::new("syslog:udp:x".into(), track.clone());
        let b1 = a
            .batch([
                b"<13>Oct 10 13:55:36 h nginx: one".as_slice(),
                b"<13>Oct 10 13:55:36 h nginx: three",
            ])
            .unwrap();
        let got: Vec<_> = b1.lines.iter().map(|(o, l)| (o, l.to_vec())).collect();
        assert_eq!(got, vec![(0, b"one".to_vec()), (4, b"three".to_vec())]);
        assert_eq!(b1.end, 10);
        let mut b = StreamState::new("syslog:udp:x".into(), track);
        let b2 = b
            .batch([b"<13>Oct 10 13:55:36 h nginx: one".as_slice()])
            .unwrap();
        assert_eq!(&*b1.src.name, "syslog:udp:x");
        assert_ne!(
            b1.src.key, b2.src.key,
            "two streams never share a source key"
        );
    }
}
