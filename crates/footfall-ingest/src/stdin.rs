//! Reading one stream to its end (standard input).

use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::follow::HEAD_BYTES;
use crate::lines::{LineBuf, LineSplitter};
use crate::source::{source_ref, RawBatch};
use crate::track::Track;

/// Read `reader` to its end as the stream `name`, sending batches of lines to
/// `tx`. The last line is emitted even without a newline. Offsets are byte
/// offsets in the stream, the source key comes from its first line, exactly
/// as for a file holding the same bytes.
pub async fn run_stream<R: AsyncRead + Unpin>(
    mut reader: R,
    name: Arc<str>,
    track: Arc<Track>,
    tx: mpsc::Sender<RawBatch>,
    stop: CancellationToken,
    line_cap: usize,
    chunk: usize,
) -> std::io::Result<()> {
    let mut splitter = LineSplitter::new(0, line_cap);
    let mut head: Vec<u8> = Vec::new();
    let mut src = None;
    let mut pending = LineBuf::new();
    let mut buf = vec![0u8; chunk.max(4096)];
    loop {
        let n = tokio::select! {
            r = reader.read(&mut buf) => r?,
            _ = stop.cancelled() => return Ok(()),
        };
        let eof = n == 0;
        if eof {
            splitter.finish(&mut pending);
        } else {
            if src.is_none() && head.len() < HEAD_BYTES {
                let take = (HEAD_BYTES - head.len()).min(n);
                head.extend_from_slice(&buf[..take]);
            }
            splitter.feed(&buf[..n], &mut pending);
        }
        if src.is_none()
            && (eof || head.len() >= HEAD_BYTES || memchr::memchr(b'\n', &head).is_some())
        {
            src = Some(source_ref(name.clone(), &head));
        }
        {
            let mut p = track.lock();
            p.size = splitter.position();
        }
        if let Some(src) = &src {
            if !pending.is_empty() {
                let batch = RawBatch {
                    track: track.clone(),
                    src: src.clone(),
                    prime: LineBuf::new(),
                    lines: std::mem::take(&mut pending),
                    end: splitter.line_start(),
                };
                tokio::select! {
                    sent = tx.send(batch) => if sent.is_err() { return Ok(()) },
                    _ = stop.cancelled() => return Ok(()),
                }
            }
        }
        if eof {
            track.lock().complete = true;
            return Ok(());
        }
    }
}

/// The process's standard input as an [`AsyncRead`], read by a thread of its
/// own. Unlike `tokio::io::stdin`, a read blocked on an idle terminal or pipe
/// never holds up the runtime's shutdown: the thread is simply left behind.
pub fn stdin_reader(chunk: usize) -> ThreadReader {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let spawned = std::thread::Builder::new()
        .name("footfall-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            loop {
                let mut buf = vec![0u8; chunk.max(4096)];
                let r = loop {
                    match stdin.read(&mut buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                let done = !matches!(r, Ok(n) if n > 0);
                let msg = r.map(|n| {
                    buf.truncate(n);
                    buf
                });
                if tx.blocking_send(msg).is_err() || done {
                    return;
                }
            }
        });
    let rx = match spawned {
        Ok(_) => rx,
        Err(e) => {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(Err(e));
            rx
        }
    };
    ThreadReader {
        rx,
        pending: Vec::new(),
        at: 0,
        done: false,
    }
}

/// Bytes from a reader thread.
pub struct ThreadReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    pending: Vec<u8>,
    at: usize,
    done: bool,
}

impl AsyncRead for ThreadReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if self.at < self.pending.len() {
                let n = (self.pending.len() - self.at).min(buf.remaining());
                let at = self.at;
                buf.put_slice(&self.pending[at..at + n]);
                self.at += n;
                return Poll::Ready(Ok(()));
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.done = true,
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Some(Ok(bytes))) => {
                    if bytes.is_empty() {
                        self.done = true;
                    }
                    self.pending = bytes;
                    self.at = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn whole_stream_with_unterminated_last_line() {
        let input: &[u8] = b"first\r\nsecond\n\nlast";
        let (tx, mut rx) = mpsc::channel(16);
        let track = Track::new("stdin".into(), None, 0);
        run_stream(
            input,
            "stdin".into(),
            track.clone(),
            tx,
            CancellationToken::new(),
            1024,
            4096,
        )
        .await
        .unwrap();
        let mut got = Vec::new();
        let mut end = 0;
        while let Some(b) = rx.recv().await {
            assert_eq!(
                b.src,
                footfall_parse::SourceRef::from_first_line("stdin", b"first")
            );
            for (o, l) in b.lines.iter() {
                got.push((o, String::from_utf8_lossy(l).into_owned()));
            }
            assert!(b.end > end, "batch ends increase");
            end = b.end;
        }
        assert_eq!(end, 19, "the last batch ends at the end of the stream");
        assert_eq!(
            got,
            vec![
                (0, "first".into()),
                (7, "second".into()),
                (14, "".into()),
                (15, "last".into())
            ]
        );
        assert!(track.lock().complete);
    }
}
