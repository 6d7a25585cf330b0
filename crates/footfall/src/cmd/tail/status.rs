//! The live status line `footfall tail` keeps on stderr while it shows
//! events on a terminal: messages seen and matched, the rate over the last
//! few seconds, and the last Kafka problem. It is erased before each batch
//! of output and drawn again after it, so it never mixes with the events.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

use console::Style;

/// What has been read so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Messages read.
    pub seen: u64,
    /// Messages shown.
    pub matched: u64,
    /// Messages that did not decode.
    pub malformed: u64,
}

/// The live status line on stderr (terminal only).
pub struct StatusLine {
    started: Instant,
    samples: VecDeque<(Instant, u64)>,
    /// When the line was last drawn (`None`: not on screen).
    pub drawn_at: Option<Instant>,
    /// The last Kafka problem, shown for 30 s.
    pub problem: Option<(String, Instant)>,
}

/// How often the status line is redrawn while nothing is shown.
pub const STATUS_EVERY: Duration = Duration::from_millis(250);

impl StatusLine {
    /// A status line for a run started at `started`.
    pub fn new(started: Instant) -> Self {
        StatusLine {
            started,
            samples: VecDeque::new(),
            drawn_at: None,
            problem: None,
        }
    }

    fn rate(&mut self, now: Instant, seen: u64) -> f64 {
        self.samples.push_back((now, seen));
        while self.samples.len() > 2
            && now.duration_since(self.samples[0].0) > Duration::from_secs(3)
        {
            self.samples.pop_front();
        }
        let (t0, s0) = self.samples[0];
        let dt = now.duration_since(t0).as_secs_f64();
        if dt < 0.5 {
            let total = now.duration_since(self.started).as_secs_f64();
            return if total > 0.0 {
                seen as f64 / total
            } else {
                0.0
            };
        }
        (seen - s0) as f64 / dt
    }

    /// Erase the line (before output is written over it).
    pub fn clear(&mut self, err: &mut impl Write) {
        if self.drawn_at.is_some() {
            let _ = err.write_all(b"\r\x1b[2K");
            let _ = err.flush();
        }
    }

    /// Draw the line: topic, counts, rate, run time, the last Kafka problem.
    pub fn draw(&mut self, err: &mut impl Write, topic: &str, stats: &Stats) {
        let now = Instant::now();
        let rate = self.rate(now, stats.seen);
        let mut text = format!(
            "{topic} · {} seen · {} matched · {rate:.1}/s · {}s",
            stats.seen,
            stats.matched,
            now.duration_since(self.started).as_secs()
        );
        if stats.malformed > 0 {
            let _ = write!(text, " · {} malformed", stats.malformed);
        }
        if let Some((p, at)) = &self.problem {
            if now.duration_since(*at) < Duration::from_secs(30) {
                let _ = write!(text, " · kafka: {p}");
            }
        }
        let width = console::Term::stderr()
            .size_checked()
            .map_or(100, |(_, w)| usize::from(w))
            .saturating_sub(1);
        let text = console::truncate_str(&text, width, "…");
        let _ = write!(
            err,
            "\r\x1b[2K{}",
            Style::new().dim().for_stderr().apply_to(text)
        );
        let _ = err.flush();
        self.drawn_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_drawn_over_itself_and_cleared() {
        let mut line = StatusLine::new(Instant::now());
        let mut err = Vec::new();
        line.clear(&mut err);
        assert!(err.is_empty(), "nothing to clear before the first draw");
        let stats = Stats {
            seen: 10,
            matched: 3,
            malformed: 1,
        };
        line.draw(&mut err, "footfall.visits", &stats);
        let text = String::from_utf8_lossy(&err).into_owned();
        assert!(text.starts_with("\r\x1b[2K"), "{text:?}");
        assert!(
            text.contains("footfall.visits · 10 seen · 3 matched") && text.contains("1 malformed"),
            "{text:?}"
        );
        assert!(!text.contains('\n'), "one line, redrawn in place: {text:?}");
        err.clear();
        line.clear(&mut err);
        assert_eq!(err, b"\r\x1b[2K");
    }
}
