//! `footfall parse`: access logs in, visit events out as JSON lines.
//!
//! A reader thread cuts the input into chunks at line boundaries; worker
//! threads parse and serialise them; the writer puts them back in order, so the
//! output is the same whatever the thread count.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use footfall_parse::{FormatState, ParseConfig, Pipeline, PrivacyConfig, SourceRef, Tables};

use super::{open_or_create_keyring, Counts, KeyringArg};
use crate::exit::{Failure, CANT_CREATE, CONFIG, DATA_ERR};
use crate::input;
use crate::output::AtomicFile;
use crate::progress;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Log files, plain or gzip (detected from content); `-` or nothing reads stdin.
    pub files: Vec<String>,
    /// Log format: a preset (combined, common, vcombined, vcommon, w3c, cloudfront, elb, alb, s3,
    /// squid, caddy, traefik, traefik-json, nginx-json) or `auto` to pick from the first lines.
    #[arg(long, short = 'f', default_value = "auto")]
    pub format: String,
    /// A custom format: an nginx `log_format` or Apache `LogFormat` string (overrides --format).
    #[arg(long)]
    pub log_format: Option<String>,
    /// Site name stamped on events (default: the logged virtual host, else `default`).
    #[arg(long)]
    pub site: Option<String>,
    /// Host names of the site itself, for internal referrers (repeatable). Without one, the host
    /// that refers most to the site's own paths in each input's first lines is taken (and named on
    /// stderr).
    #[arg(long = "site-host")]
    pub site_hosts: Vec<String>,
    /// Do not infer the site's host from the referrers when no --site-host is given: referrers
    /// from it stay `external`.
    #[arg(long)]
    pub no_infer_site_host: bool,
    /// IANA timezone for event times and calendar days (default: each line's own offset).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Session cookie name that identifies visitors, when the log carries cookies.
    #[arg(long)]
    pub session_cookie: Option<String>,
    #[command(flatten)]
    pub keyring: KeyringArg,
    /// Write rejected lines (JSON, one per line) to this file.
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Write events here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    /// Emit raw client addresses in `client_ip` (off by default; an explicit opt-in).
    #[arg(long)]
    pub emit_raw_ip: bool,
    /// Lines timed more than this many days before the clock are rejected as
    /// time_out_of_range (default twenty years); raise it to backfill older logs.
    #[arg(long, default_value_t = ParseConfig::default().max_past_days, value_name = "DAYS")]
    pub max_past_days: u32,
    /// Keep this many leading bits of IPv4 addresses in `client_net`.
    #[arg(long, default_value_t = 24)]
    pub ipv4_prefix: u8,
    /// Keep this many leading bits of IPv6 addresses in `client_net`.
    #[arg(long, default_value_t = 48)]
    pub ipv6_prefix: u8,
}

const CHUNK: usize = 1 << 18;

/// Buffers handed back for reuse: chunks and their JSON output are hundreds
/// of KiB each, and fresh ones cost page faults on every chunk.
#[derive(Clone)]
struct Pool {
    tx: crossbeam_channel::Sender<Vec<u8>>,
    rx: crossbeam_channel::Receiver<Vec<u8>>,
}

impl Pool {
    fn new() -> Pool {
        let (tx, rx) = crossbeam_channel::unbounded();
        Pool { tx, rx }
    }

    /// An empty buffer with at least `capacity` bytes reserved.
    fn get(&self, capacity: usize) -> Vec<u8> {
        let mut b = self.rx.try_recv().unwrap_or_default();
        b.clear();
        b.reserve(capacity);
        b
    }

    fn put(&self, b: Vec<u8>) {
        // Only a handful are ever in circulation; never blocks.
        let _ = self.tx.send(b);
    }
}

struct Chunk {
    seq: u64,
    base: u64,
    data: Vec<u8>,
}

struct Done {
    seq: u64,
    out: Vec<u8>,
    rej: Vec<u8>,
    counts: Counts,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let base_cfg = ParseConfig {
        format: args.format.clone(),
        log_format: args.log_format.clone(),
        site: args.site.clone(),
        site_hosts: args.site_hosts.clone(),
        infer_site_host: !args.no_infer_site_host,
        timezone: args.timezone.clone(),
        session_cookie: args.session_cookie.clone(),
        max_past_days: args.max_past_days,
        privacy: PrivacyConfig {
            ipv4_prefix: args.ipv4_prefix,
            ipv6_prefix: args.ipv6_prefix,
            emit_raw_ip: args.emit_raw_ip,
            ..Default::default()
        },
        ..Default::default()
    };
    base_cfg
        .validate()
        .map_err(|e| Failure::new(CONFIG, e.to_string()))?;
    let files = if args.files.is_empty() {
        vec!["-".to_string()]
    } else {
        args.files.clone()
    };
    input::check_all(&files)?;
    let keys: Arc<dyn footfall_parse::KeyProvider> = open_or_create_keyring(
        &footfall_keys::KeysConfig::default(),
        &args.keyring,
        "parse",
    )?;
    let tables = Tables::embedded();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);

    let mut out = Sink::open(args.output.as_deref())?;
    let mut rej_out = args.rejects.as_deref().map(create_output).transpose()?;

    let mut total = Counts::default();
    let mut damaged: Vec<String> = Vec::new();
    for path in &files {
        let inp = input::open(path)?;
        let bar = progress::bytes_bar(inp.size, &inp.name);
        let name = inp.name.clone();
        let result = parse_one(
            inp,
            &base_cfg,
            &tables,
            &keys,
            threads,
            &mut out,
            rej_out.as_mut(),
            &bar,
        );
        bar.finish_and_clear();
        let (counts, damage) = match result {
            Err(e) if is_broken_pipe(&e) => return Ok(()),
            r => r?,
        };
        total.add(&counts);
        if let Some(d) = damage {
            eprintln!("footfall parse: {name}: {d}; what was read before it is kept, the next inputs are read");
            damaged.push(format!("{name} ({d})"));
        }
    }
    match out.finish() {
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        r => r?,
    }
    if let Some(r) = rej_out {
        let file = r
            .into_inner()
            .map_err(|e| e.into_error())
            .context("writing rejects")?;
        file.commit().context("writing rejects")?;
    }
    summarize(&total, started, threads, args.rejects.is_none());
    if !damaged.is_empty() {
        return Err(Failure::new(
            DATA_ERR,
            format!("{} damaged input(s): {}", damaged.len(), damaged.join("; ")),
        )
        .with_hint(
            "the events of their readable part were written; restore the files to read the rest",
        )
        .into());
    }
    Ok(())
}

/// The run's closing summary on stderr.
fn summarize(total: &Counts, started: Instant, threads: usize, rejects_dropped: bool) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "footfall parse: {} lines, {} events, {} rejects in {:.2} s ({:.0} lines/s, {} thread{})",
        total.lines,
        total.events,
        total.rejects(),
        secs,
        total.lines as f64 / secs.max(1e-9),
        threads,
        if threads == 1 { "" } else { "s" }
    );
    if total.rejects() > 0 {
        eprintln!("  rejects by kind: {}", total.rejects_by_kind());
        if rejects_dropped {
            eprintln!("  (rejected lines not kept: pass --rejects FILE to keep them)");
        }
    }
}

/// Whether the reader of our stdout went away (`footfall parse | head`): the
/// run ends quietly, as other Unix tools do.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn create_output(path: &Path) -> anyhow::Result<BufWriter<AtomicFile>> {
    let file = AtomicFile::create(path).map_err(|e| {
        Failure::new(
            CANT_CREATE,
            format!("cannot create {}: {e}", path.display()),
        )
    })?;
    Ok(BufWriter::new(file))
}

/// Where events go: stdout, or a file that appears whole when the run ends.
enum Sink {
    Stdout(BufWriter<io::StdoutLock<'static>>),
    File(BufWriter<AtomicFile>),
}

impl Sink {
    fn open(path: Option<&Path>) -> anyhow::Result<Sink> {
        // Chunks of events (hundreds of KiB) are larger than this buffer, so
        // BufWriter hands them to the file directly instead of copying them first.
        Ok(match path {
            Some(p) => {
                let file = AtomicFile::create(p).map_err(|e| {
                    Failure::new(CANT_CREATE, format!("cannot create {}: {e}", p.display()))
                })?;
                Sink::File(BufWriter::with_capacity(64 << 10, file))
            }
            None => Sink::Stdout(BufWriter::with_capacity(64 << 10, io::stdout().lock())),
        })
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Stdout(mut w) => w.flush().context("writing events"),
            Sink::File(w) => {
                let file = w
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .context("writing events")?;
                file.commit().context("writing events")
            }
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(w) => w.write(buf),
            Sink::File(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(w) => w.flush(),
            Sink::File(w) => w.flush(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn parse_one(
    mut inp: input::Input,
    base_cfg: &ParseConfig,
    tables: &Tables,
    keys: &Arc<dyn footfall_parse::KeyProvider>,
    threads: usize,
    out: &mut dyn Write,
    mut rej_out: Option<&mut BufWriter<AtomicFile>>,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<(Counts, Option<String>)> {
    // Read the first chunk to detect the format and the source identity.
    let mut first = Vec::with_capacity(CHUNK);
    fill(&mut inp.reader, &mut first, CHUNK).with_context(|| format!("reading {}", inp.name))?;
    let first_line = first.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let src = SourceRef::from_first_line(
        inp.name.as_str(),
        first_line.strip_suffix(b"\r").unwrap_or(first_line),
    );

    let mut cfg = base_cfg.clone();
    if cfg.log_format.is_none() && cfg.format == "auto" {
        let sample: Vec<&[u8]> = first.split(|&b| b == b'\n').take(50).collect();
        match Pipeline::detect_format(&sample) {
            Some(name) => {
                eprintln!(
                    "footfall parse: {}: format auto-detected as {name}",
                    inp.name
                );
                cfg.format = name.to_string();
            }
            None if first.is_empty() => {
                return Ok((Counts::default(), None));
            }
            None => {
                return Err(Failure::new(
                    CONFIG,
                    format!(
                        "{}: could not detect the log format from its first lines",
                        inp.name
                    ),
                )
                .with_hint("name it with --format or --log-format")
                .into())
            }
        }
    }
    let pipeline = Arc::new(
        Pipeline::new(&cfg, tables, Arc::clone(keys))
            .map_err(|e| Failure::new(CONFIG, e.to_string()))?,
    );
    check_format(&pipeline, &cfg, &src, &first, &inp.name)?;
    let pipeline = with_inferred_host(pipeline, &cfg, &first, &inp.name);
    // Formats whose layout is declared inside the file need their lines in order.
    let stateful = matches!(pipeline.format_name(), "w3c" | "cloudfront");
    let threads = if stateful { 1 } else { threads };

    let consumed = Arc::clone(&inp.consumed);
    let mut counts = Counts::default();
    // Output buffers and input chunks each circulate in their own pool.
    let (outputs, inputs) = (Pool::new(), Pool::new());
    let mut emit = |d: Done, out: &mut dyn Write| -> anyhow::Result<()> {
        out.write_all(&d.out).context("writing events")?;
        if let Some(r) = rej_out.as_mut() {
            r.write_all(&d.rej).context("writing rejects")?;
        }
        counts.add(&d.counts);
        outputs.put(d.out);
        bar.set_position(consumed.load(Ordering::Relaxed));
        Ok(())
    };

    if threads == 1 {
        let mut worker = pipeline.worker();
        let mut state = FormatState::default();
        let mut reader = ChunkReader::new(inp.reader, first, inputs.clone());
        while let Some(chunk) = reader.next_chunk() {
            let d = process_chunk(&mut worker, &src, &mut state, chunk, &outputs, &inputs);
            emit(d, out)?;
        }
        return Ok((counts, reader.damage()));
    }

    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<Chunk>(threads * 2);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Done>(threads * 2);
    let damage = std::thread::scope(|scope| -> anyhow::Result<Option<String>> {
        // Owned here, so that an early return (a closed stdout) drops it and
        // every thread blocked on a full channel wakes up and ends.
        let done_rx = done_rx;
        let reader_pool = inputs.clone();
        let reader_handle = scope.spawn(move || -> Option<String> {
            let mut reader = ChunkReader::new(inp.reader, first, reader_pool);
            while let Some(chunk) = reader.next_chunk() {
                if chunk_tx.send(chunk).is_err() {
                    break;
                }
            }
            reader.damage()
        });
        for _ in 0..threads {
            let rx = chunk_rx.clone();
            let tx = done_tx.clone();
            let mut worker = pipeline.worker();
            let src = src.clone();
            let (outputs, inputs) = (outputs.clone(), inputs.clone());
            scope.spawn(move || {
                for chunk in rx {
                    let mut state = FormatState::default();
                    if tx
                        .send(process_chunk(
                            &mut worker,
                            &src,
                            &mut state,
                            chunk,
                            &outputs,
                            &inputs,
                        ))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        drop(chunk_rx);
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        for d in done_rx.iter() {
            pending.insert(d.seq, d);
            while let Some(d) = pending.remove(&next) {
                emit(d, out)?;
                next += 1;
            }
        }
        let damage = reader_handle
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
        anyhow::ensure!(
            pending.is_empty(),
            "internal error: {} chunks not written",
            pending.len()
        );
        Ok(damage)
    })?;
    Ok((counts, damage))
}

/// Stop at once when the format evidently does not fit the source's first
/// lines (exit 65, with the top reason and what `auto` sees); warn once when
/// a narrower preset than the lines allow was named.
fn check_format(
    pipeline: &Arc<Pipeline>,
    cfg: &ParseConfig,
    src: &SourceRef,
    first: &[u8],
    name: &str,
) -> anyhow::Result<()> {
    let sample: Vec<&[u8]> = first
        .split(|&b| b == b'\n')
        .take(footfall_parse::check::SAMPLE_LINES)
        .collect();
    if let Some(m) = footfall_parse::check_sample(pipeline, src, &sample) {
        let hint = match m.detected {
            Some(d) => format!("use --format {d} (or --format auto), or --log-format with the server's format string"),
            None => "name the format with --format, or --log-format with the server's format string".to_string(),
        };
        return Err(Failure::new(
            DATA_ERR,
            format!(
                "{name}: --format {} does not fit: {m}",
                pipeline.format_name()
            ),
        )
        .with_hint(hint)
        .into());
    }
    if cfg.log_format.is_none() {
        if let Some((better, n)) = footfall_parse::ignored_fields(pipeline.format_name(), &sample) {
            eprintln!(
                "footfall parse: warning: {name}: --format {} ignores about {n} field(s) per line that these lines carry; --format {better} reads them",
                pipeline.format_name()
            );
        }
    }
    Ok(())
}

/// `pipeline`, with the site's host inferred from the first chunk's
/// referrers when `cfg` asks for it ([`ParseConfig::infers_site_host`]), said
/// on stderr when one is found.
fn with_inferred_host(
    pipeline: Arc<Pipeline>,
    cfg: &ParseConfig,
    first: &[u8],
    name: &str,
) -> Arc<Pipeline> {
    if !cfg.infers_site_host() {
        return pipeline;
    }
    // The chunk format detection read (a cut last line parses or not: no matter).
    let sample: Vec<&[u8]> = first.split(|&b| b == b'\n').collect();
    match pipeline.infer_site_host(&sample) {
        Some(found) => {
            eprintln!(
                "footfall parse: {name}: site host inferred: {found}; set --site-host or --no-infer-site-host to change"
            );
            Arc::new(pipeline.with_site_host(&found.host))
        }
        None => pipeline,
    }
}

fn process_chunk(
    worker: &mut footfall_parse::Worker,
    src: &SourceRef,
    state: &mut FormatState,
    chunk: Chunk,
    outputs: &Pool,
    inputs: &Pool,
) -> Done {
    // Events are about four times the size of the lines they come from.
    let mut out = outputs.get(chunk.data.len() * 4);
    let mut rej = Vec::new();
    let mut counts = Counts::default();
    let data = &chunk.data;
    let mut start = 0usize;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        let line = &data[start..end];
        counts.lines += 1;
        match worker.process_with(src, state, chunk.base + start as u64, line, |ev| {
            ev.write_json_line(&mut out)
        }) {
            Ok(()) => counts.events += 1,
            Err(r) => {
                serde_json::to_writer(&mut rej, &*r).expect("rejects serialise");
                rej.push(b'\n');
                counts.count_reject(r.kind);
            }
        }
        start = end + 1;
    }
    inputs.put(chunk.data);
    Done {
        seq: chunk.seq,
        out,
        rej,
        counts,
    }
}

/// Cuts a stream into chunks that end at a line boundary (the last one at EOF).
///
/// A read error (a truncated or corrupt gzip member, an I/O error) ends the
/// stream there: what was read up to the last complete line is handed on,
/// the partial line after it is dropped, and [`ChunkReader::damage`] says so.
struct ChunkReader {
    inner: Box<dyn Read + Send>,
    carry: Vec<u8>,
    base: u64,
    seq: u64,
    eof: bool,
    pool: Pool,
    error: Option<(io::Error, usize)>,
}

impl ChunkReader {
    fn new(inner: Box<dyn Read + Send>, first: Vec<u8>, pool: Pool) -> Self {
        ChunkReader {
            inner,
            carry: first,
            base: 0,
            seq: 0,
            eof: false,
            pool,
            error: None,
        }
    }

    /// What went wrong while reading, if anything.
    fn damage(&self) -> Option<String> {
        self.error.as_ref().map(|(e, dropped)| {
            format!("read error after {} bytes of decoded input: {e} ({dropped} bytes of a partial line dropped)", self.base)
        })
    }

    /// Read more into `carry`; a read error ends the input at its last complete line.
    fn refill(&mut self, want: usize) {
        match fill(&mut self.inner, &mut self.carry, want) {
            Ok(eof) => self.eof = eof,
            Err(e) => {
                let keep = memchr::memrchr(b'\n', &self.carry).map_or(0, |i| i + 1);
                let dropped = self.carry.len() - keep;
                self.carry.truncate(keep);
                self.error = Some((e, dropped));
                self.eof = true;
            }
        }
    }

    fn next_chunk(&mut self) -> Option<Chunk> {
        loop {
            if !self.eof && self.carry.len() < CHUNK {
                self.refill(CHUNK.max(self.carry.len() + CHUNK / 4));
            }
            if self.carry.is_empty() {
                return None;
            }
            let cut = if self.eof {
                // At EOF the unterminated last line belongs to the final chunk.
                self.carry.len()
            } else {
                match memchr::memrchr(b'\n', &self.carry) {
                    Some(i) => i + 1,
                    None => {
                        // A line longer than the buffer: read more.
                        self.refill(self.carry.len() * 2);
                        continue;
                    }
                }
            };
            let mut rest = self.pool.get(CHUNK + CHUNK / 4);
            rest.extend_from_slice(&self.carry[cut..]);
            self.carry.truncate(cut);
            let data = std::mem::replace(&mut self.carry, rest);
            let chunk = Chunk {
                seq: self.seq,
                base: self.base,
                data,
            };
            self.seq += 1;
            self.base += chunk.data.len() as u64;
            return Some(chunk);
        }
    }
}

/// Read until `buf` holds `want` bytes or EOF; returns whether EOF was reached.
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let missing = want.saturating_sub(buf.len());
    if missing == 0 {
        return Ok(false);
    }
    // Reads straight into the buffer's spare capacity; short only at EOF.
    let n = r.take(missing as u64).read_to_end(buf)?;
    Ok(n < missing)
}
