//! `footfall tail`: watch the live stream of visit events (or dead letters).
//!
//! The topic is read with an explicit partition assignment and explicit start
//! offsets, under a throwaway `group.id` that never joins a group and never
//! commits, so tailing does not disturb the aggregator's consumer group or
//! anyone else's offsets ([`consumer`]).
//!
//! On a terminal the events are shown as aligned, coloured columns with a live
//! status line on stderr; when stdout is piped (or with `--json`) the matching
//! messages are written as JSON lines exactly as they were received
//! ([`render`], [`status`]). Messages that do not decode are reported as
//! warnings and skipped ([`filter`]).
//!
//! Once the partitions are assigned, a line `footfall tail: tailing <topic>
//! from <start> (...)` is written to stderr: anything produced after it appears.
//!
//! Settings: flags ([`args`]) beat the config's `[tail]` and `[kafka]`
//! tables. This module wires the parts together and runs the loop.

pub mod args;
pub mod consumer;
pub mod filter;
pub mod render;
pub mod status;

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{Local, TimeZone};
use console::Style;
use footfall_event::SCHEMA_HEADER;
use footfall_kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};

pub use args::Args;
use consumer::{Reader, StartAt, TailContext};
use filter::{classify, Filter, Record, Verdict};
use render::{push_json_line, reject_header, render_reject, render_visit, sanitize, Layout};
use status::{Stats, StatusLine, STATUS_EVERY};

use crate::exit::{Failure, CONFIG, FAILURE};

/// How long to keep draining immediately available messages before writing them.
const BATCH: Duration = Duration::from_millis(50);
/// How long one poll may block: also the reaction time to Ctrl-C.
const POLL: Duration = Duration::from_millis(100);

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Plan::from_args(&args)?;
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(Arc::clone(&stop))?;
    let reader = Reader::new(&plan.kafka, plan.timeout)?;
    let parts = reader.assign(&plan.topic, plan.start)?;
    eprintln!(
        "footfall tail: tailing {} from {} ({parts} partition{}){}",
        plan.topic,
        plan.start,
        if parts == 1 { "" } else { "s" },
        if io::stderr().is_terminal() {
            "; Ctrl-C to stop"
        } else {
            ""
        }
    );
    let mut tail = Tail::new(&plan.topic, &args, started);
    let mut stderr = io::stderr();
    tail.follow(
        &reader.consumer,
        &stop,
        &mut io::stdout().lock(),
        &mut stderr,
    )?;
    if let Some(s) = &mut tail.status {
        s.clear(&mut stderr);
    }
    eprintln!("{}", summary(&tail.stats, started));
    Ok(())
}

/// What this run reads, from where, and how long it waits for Kafka: the
/// flags over the config file.
struct Plan {
    kafka: KafkaConfig,
    topic: String,
    start: StartAt,
    timeout: Duration,
}

impl Plan {
    fn from_args(args: &Args) -> anyhow::Result<Plan> {
        let named = [&args.topic, &args.dlq_topic];
        if named
            .iter()
            .any(|t| t.as_deref().is_some_and(|t| t.trim().is_empty()))
        {
            return Err(Failure::new(CONFIG, "--topic is empty").into());
        }
        let file = args.kafka.file()?;
        let kafka = consumer::tail_kafka(args.kafka.resolve_in(file.as_ref())?)?;
        let timeout = args
            .timeout
            .unwrap_or_else(|| file.map(|f| f.tail).unwrap_or_default().timeout);
        let start = match (args.from_beginning, args.since) {
            (true, _) => StartAt::Beginning,
            (_, Some(t)) => StartAt::Time(t),
            _ => StartAt::Latest,
        };
        Ok(Plan {
            topic: args.topic_in(&kafka),
            kafka,
            start,
            timeout,
        })
    }
}

/// `footfall tail: 12 seen, 3 matched, 1 malformed in 4.2 s`
fn summary(stats: &Stats, started: Instant) -> String {
    let mut summary = format!(
        "footfall tail: {} seen, {} matched",
        stats.seen, stats.matched
    );
    if stats.malformed > 0 {
        let _ = write!(summary, ", {} malformed", stats.malformed);
    }
    let _ = write!(summary, " in {:.1} s", started.elapsed().as_secs_f64());
    summary
}

/// The first SIGINT/SIGTERM sets `stop`; a second one ends the process at once.
fn watch_signals(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    #[cfg(unix)]
    let (mut int, mut term) = {
        use tokio::signal::unix::{signal, SignalKind};
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        )
    };
    std::thread::Builder::new()
        .name("footfall-tail-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                #[cfg(unix)]
                {
                    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
                    stop.store(true, Ordering::SeqCst);
                    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                    stop.store(true, Ordering::SeqCst);
                    let _ = tokio::signal::ctrl_c().await;
                }
                std::process::exit(130);
            })
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// How matching messages are written.
enum View {
    /// As received, one JSON line each.
    Json,
    /// Columns sized to the terminal.
    Table {
        color: bool,
        width: usize,
        layout: Layout,
    },
}

/// The width of the terminal on stdout.
fn terminal_width() -> usize {
    console::Term::stdout()
        .size_checked()
        .map_or(120, |(_, w)| usize::from(w))
}

/// The loop's state: what is shown, how, and what was seen.
struct Tail<'a> {
    topic: &'a str,
    filter: Filter,
    view: View,
    status: Option<StatusLine>,
    out: Vec<u8>,
    stats: Stats,
    limit: Option<u64>,
    /// The last Kafka error reported, and when, so a flapping broker does not flood the screen.
    last_error: Option<(String, Instant)>,
}

impl<'a> Tail<'a> {
    /// Columns on a terminal (unless `--json`), with a header and a status
    /// line; JSON lines otherwise.
    fn new(topic: &'a str, args: &Args, started: Instant) -> Tail<'a> {
        let table = io::stdout().is_terminal() && !args.json;
        let view = if table {
            let width = terminal_width();
            View::Table {
                color: console::colors_enabled(),
                width,
                layout: Layout::for_width(width),
            }
        } else {
            View::Json
        };
        let mut out = Vec::with_capacity(64 * 1024);
        if let View::Table {
            color,
            width,
            layout,
        } = &view
        {
            let header = if args.dlq {
                reject_header(*width, *color)
            } else {
                layout.header(*color)
            };
            out.extend_from_slice(header.as_bytes());
            out.push(b'\n');
        }
        Tail {
            topic,
            filter: Filter::from_args(args),
            view,
            status: (table && io::stderr().is_terminal()).then(|| StatusLine::new(started)),
            out,
            stats: Stats::default(),
            limit: args.limit,
            last_error: None,
        }
    }

    /// Poll, filter and show until `stop`, the limit, or a closed stdout.
    fn follow(
        &mut self,
        consumer: &BaseConsumer<TailContext>,
        stop: &AtomicBool,
        stdout: &mut impl Write,
        stderr: &mut impl Write,
    ) -> anyhow::Result<()> {
        let mut open = true;
        while open && !self.limit_reached() && !stop.load(Ordering::SeqCst) {
            self.fit_terminal();
            let mut next = consumer.poll(POLL);
            let batch_until = Instant::now() + BATCH;
            while let Some(result) = next.take() {
                match result {
                    Ok(m) => self.on_message(&m),
                    Err(KafkaError::PartitionEOF(_)) => {}
                    Err(e) => self.on_error(&e, consumer.context())?,
                }
                if self.limit_reached() || Instant::now() >= batch_until {
                    break;
                }
                next = consumer.poll(Duration::ZERO);
            }
            open = self.flush(stdout, stderr)?;
        }
        Ok(())
    }

    /// Follow a resized terminal.
    fn fit_terminal(&mut self) {
        if let View::Table { width, layout, .. } = &mut self.view {
            let now = terminal_width();
            if now != *width {
                *width = now;
                *layout = Layout::for_width(now);
            }
        }
    }

    fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|n| self.stats.matched >= n)
    }

    fn on_message(&mut self, m: &BorrowedMessage<'_>) {
        self.stats.seen += 1;
        let schema = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == SCHEMA_HEADER)
                .and_then(|h| h.value)
        });
        match classify(&self.filter, m.payload(), schema) {
            Verdict::Hide => {}
            Verdict::Malformed(why) => {
                self.stats.malformed += 1;
                self.warn(&format!(
                    "{}[{}]@{}: {why}",
                    self.topic,
                    m.partition(),
                    m.offset()
                ));
            }
            Verdict::Show(record) => {
                self.stats.matched += 1;
                self.show(m, &record);
            }
        }
    }

    /// Render one matching message into the output buffer.
    fn show(&mut self, m: &BorrowedMessage<'_>, record: &Record) {
        let View::Table {
            color,
            width,
            layout,
        } = &self.view
        else {
            return push_json_line(&mut self.out, m.payload().unwrap_or_default());
        };
        let line = match record {
            Record::Visit(ev) => render_visit(ev, layout, *color),
            Record::Reject(r) => {
                let at = m
                    .timestamp()
                    .to_millis()
                    .and_then(|ms| Local.timestamp_millis_opt(ms).single());
                render_reject(r, at, *width, *color)
            }
        };
        self.out.extend_from_slice(line.as_bytes());
        self.out.push(b'\n');
    }

    /// A warning: inline on the terminal view, on stderr otherwise (stdout stays JSON).
    fn warn(&mut self, text: &str) {
        let text = sanitize(text);
        match &self.view {
            View::Json => eprintln!("footfall tail: warning: {text}"),
            View::Table { color, .. } => {
                let line = Style::new()
                    .yellow()
                    .force_styling(*color)
                    .apply_to(format!("warning: {text}"));
                let _ = writeln!(self.out, "{line}");
            }
        }
    }

    fn on_error(&mut self, e: &KafkaError, ctx: &TailContext) -> anyhow::Result<()> {
        if let KafkaError::MessageConsumptionFatal(_) = e {
            return Err(Failure::new(FAILURE, format!("the Kafka consumer failed: {e}")).into());
        }
        let detail = ctx
            .take_problem()
            .map(|p| format!("{e} ({p})"))
            .unwrap_or_else(|| e.to_string());
        let now = Instant::now();
        if let Some(s) = &mut self.status {
            s.problem = Some((detail.clone(), now));
        }
        let repeat = self.last_error.as_ref().is_some_and(|(last, at)| {
            *last == e.to_string() && now.duration_since(*at) < Duration::from_secs(30)
        });
        if !repeat {
            self.last_error = Some((e.to_string(), now));
            self.warn(&format!("kafka: {detail}; still trying"));
        }
        Ok(())
    }

    /// Writes what has been rendered; false when stdout is closed (`| head`).
    fn flush(&mut self, stdout: &mut impl Write, stderr: &mut impl Write) -> anyhow::Result<bool> {
        if self.out.is_empty() {
            if let Some(s) = &mut self.status {
                if s.drawn_at.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
                    s.draw(stderr, self.topic, &self.stats);
                }
            }
            return Ok(true);
        }
        if let Some(s) = &mut self.status {
            s.clear(stderr);
        }
        let written = stdout.write_all(&self.out).and_then(|()| stdout.flush());
        self.out.clear();
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(e).context("writing to stdout"),
        }
        if let Some(s) = &mut self.status {
            s.draw(stderr, self.topic, &self.stats);
        }
        Ok(true)
    }
}
