//! Reading one stream to its end (standard input).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::lines::{LineBuf, LineSplitter};
use crate::source::{source_ref, RawBatch};
use crate::tail::HEAD_BYTES;
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
        if src.is_none() && (eof || head.len() >= HEAD_BYTES || memchr::memchr(b'\n', &head).is_some()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn whole_stream_with_unterminated_last_line() {
        let input: &[u8] = b"first\r\nsecond\n\nlast";
        let (tx, mut rx) = mpsc::channel(16);
        let track = Track::new("stdin".into(), None, 0);
        run_stream(input, "stdin".into(), track.clone(), tx, CancellationToken::new(), 1024, 4096).await.unwrap();
        let mut got = Vec::new();
        let mut end = 0;
        while let Some(b) = rx.recv().await {
            assert_eq!(b.src, footfall_parse::SourceRef::from_first_line("stdin", b"first"));
            for (o, l) in b.lines.iter() {
                got.push((o, String::from_utf8_lossy(l).into_owned()));
            }
            assert!(b.end > end, "batch ends increase");
            end = b.end;
        }
        assert_eq!(end, 19, "the last batch ends at the end of the stream");
        assert_eq!(got, vec![(0, "first".into()), (7, "second".into()), (14, "".into()), (15, "last".into())]);
        assert!(track.lock().complete);
    }
}
