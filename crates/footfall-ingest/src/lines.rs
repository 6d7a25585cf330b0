//! Splitting a byte stream into lines, with the byte offset of each line start.
//!
//! A line ends at `\n`; a `\r` before it is dropped. An incomplete last line is
//! held back until its newline arrives (a file being written), or handed out
//! by [`LineSplitter::finish`] when the stream is known to have ended (stdin,
//! a `.gz` file). Memory is bounded: a line longer than the splitter's cap
//! keeps only its first `cap + 1` bytes (enough for the parser to reject it as
//! `too_long`) and the rest is skipped.

use std::ops::Range;

/// Complete lines, stored back to back in one buffer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LineBuf {
    data: Vec<u8>,
    lines: Vec<(u64, Range<usize>)>,
}

impl LineBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        LineBuf::default()
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// No line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Append one line (without terminator) that starts at `offset`.
    pub fn push(&mut self, offset: u64, line: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(line);
        self.lines.push((offset, start..self.data.len()));
    }

    /// `(offset, line)` pairs in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u64, &[u8])> + '_ {
        self.lines.iter().map(|(o, r)| (*o, &self.data[r.clone()]))
    }

    /// The first line, if any.
    pub fn first(&self) -> Option<(u64, &[u8])> {
        self.lines.first().map(|(o, r)| (*o, &self.data[r.clone()]))
    }
}

/// Incremental line splitter over one stream.
#[derive(Debug)]
pub struct LineSplitter {
    /// Bytes of the incomplete line so far (at most `cap + 1`).
    partial: Vec<u8>,
    /// Stream offset where the incomplete line starts.
    line_start: u64,
    /// Stream offset of the next byte to be fed.
    pos: u64,
    /// The current line is longer than `cap`: its remaining bytes are skipped.
    overflow: bool,
    cap: usize,
}

impl LineSplitter {
    /// A splitter for a stream whose next byte is at `offset`. Lines longer
    /// than `cap` bytes are cut to `cap + 1` bytes.
    pub fn new(offset: u64, cap: usize) -> Self {
        LineSplitter {
            partial: Vec::new(),
            line_start: offset,
            pos: offset,
            overflow: false,
            cap: cap.max(1),
        }
    }

    /// Offset where the next (incomplete) line starts: everything before it
    /// has been handed out as complete lines.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Offset of the next byte to feed.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes of an incomplete line are pending.
    pub fn has_partial(&self) -> bool {
        self.pos > self.line_start
    }

    /// Feed the next bytes of the stream; complete lines are appended to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut LineBuf) {
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    let piece = &chunk[..i];
                    let line_end = self.pos + i as u64 + 1;
                    if self.partial.is_empty() && !self.overflow {
                        emit(out, self.line_start, clip(piece, self.cap));
                    } else {
                        self.keep(piece);
                        emit(out, self.line_start, &self.partial);
                        self.partial.clear();
                        self.overflow = false;
                    }
                    self.pos = line_end;
                    self.line_start = line_end;
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.keep(chunk);
                    self.pos += chunk.len() as u64;
                    chunk = &[];
                }
            }
        }
    }

    /// The stream has ended: hand out a final line that has no newline.
    pub fn finish(&mut self, out: &mut LineBuf) {
        if self.has_partial() {
            emit(out, self.line_start, &self.partial);
            self.partial.clear();
            self.overflow = false;
            self.line_start = self.pos;
        }
    }

    /// Forget an incomplete line and continue at `offset` (after a truncation).
    pub fn reset(&mut self, offset: u64) {
        self.partial.clear();
        self.overflow = false;
        self.line_start = offset;
        self.pos = offset;
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        let room = (self.cap + 1).saturating_sub(self.partial.len());
        if bytes.len() >= room {
            self.partial.extend_from_slice(&bytes[..room]);
            self.overflow = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }
}

fn clip(line: &[u8], cap: usize) -> &[u8] {
    &line[..line.len().min(cap + 1)]
}

fn emit(out: &mut LineBuf, offset: u64, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    out.push(offset, line);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(out: &LineBuf) -> Vec<(u64, String)> {
        out.iter()
            .map(|(o, l)| (o, String::from_utf8_lossy(l).into_owned()))
            .collect()
    }

    #[test]
    fn splits_with_offsets_and_holds_partial_lines() {
        let mut s = LineSplitter::new(0, 100);
        let mut out = LineBuf::new();
        s.feed(b"ab\r\ncd\nef", &mut out);
        assert_eq!(lines(&out), vec![(0, "ab".into()), (4, "cd".into())]);
        assert_eq!(s.line_start(), 7);
        assert!(s.has_partial());
        let mut out = LineBuf::new();
        s.feed(b"g", &mut out);
        assert!(out.is_empty(), "an incomplete line is not emitted");
        s.feed(b"h\n\n", &mut out);
        assert_eq!(lines(&out), vec![(7, "efgh".into()), (12, "".into())]);
        assert_eq!(s.line_start(), 13);
        assert!(!s.has_partial());
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let input = b"first line\r\nsecond\n\nthird without end";
        let mut whole = LineBuf::new();
        let mut s = LineSplitter::new(10, 100);
        s.feed(input, &mut whole);
        s.finish(&mut whole);
        let mut bytes = LineBuf::new();
        let mut s = LineSplitter::new(10, 100);
        for b in input {
            s.feed(std::slice::from_ref(b), &mut bytes);
        }
        s.finish(&mut bytes);
        assert_eq!(whole, bytes);
        assert_eq!(
            lines(&whole),
            vec![
                (10, "first line".into()),
                (22, "second".into()),
                (29, "".into()),
                (30, "third without end".into())
            ]
        );
    }

    #[test]
    fn finish_emits_the_unterminated_last_line_once() {
        let mut s = LineSplitter::new(0, 100);
        let mut out = LineBuf::new();
        s.feed(b"a\nb", &mut out);
        s.finish(&mut out);
        s.finish(&mut out);
        assert_eq!(lines(&out), vec![(0, "a".into()), (2, "b".into())]);
        assert_eq!(s.line_start(), 3);
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_skipped() {
        let mut s = LineSplitter::new(0, 4);
        let mut out = LineBuf::new();
        s.feed(b"0123", &mut out);
        s.feed(b"456789", &mut out);
        s.feed(b"abc\nok\n0123456789\n", &mut out);
        assert_eq!(
            lines(&out),
            vec![(0, "01234".into()), (14, "ok".into()), (17, "01234".into())]
        );
        assert_eq!(s.line_start(), 28);
    }

    #[test]
    fn reset_forgets_partial_line() {
        let mut s = LineSplitter::new(0, 100);
        let mut out = LineBuf::new();
        s.feed(b"partial", &mut out);
        s.reset(0);
        s.feed(b"new\n", &mut out);
        assert_eq!(lines(&out), vec![(0, "new".into())]);
    }
}
