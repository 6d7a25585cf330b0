//! `footfall erase` and `footfall lookup`: a person's data in the warehouse,
//! deleted or shown, for the days whose keys the keyring still holds.
//!
//! The person is named the way a site can identify them: the client address
//! and user agent exactly as the access log has them, or the value of the
//! session cookie. For each day the keyring holds, their `visitor_id` is
//! recomputed with that day's key; days whose key is destroyed are reported
//! as unlinkable (nothing in footfall can find the person there any more).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use footfall_aggregate::{ErrorKind, Stage, SummaryOptions};
use footfall_event::VisitEvent;
use footfall_ingest::AggregateConfig;
use footfall_keys::Keyring;
use footfall_parse::privacy::{visitor_id, VisitorBasis};
use footfall_parse::KeyProvider;

use super::{keys_config, open_keyring, KeyringArg};
use crate::exit::{Failure, CANT_CREATE, CONFIG, FAILURE, TEMP_FAIL, UNAVAILABLE};

/// A logged value as ingest hashes it: `-` is no value.
fn logged(v: &str) -> &str {
    if v == "-" {
        ""
    } else {
        v
    }
}

/// Who, over which days, in which warehouse.
#[derive(clap::Args, Debug)]
pub struct Person {
    /// The warehouse directory; for a warehouse on an object store, its
    /// staging directory, or its URL when the staging directory is the default one.
    #[arg(long, value_name = "DIR|URL")]
    pub warehouse: PathBuf,
    /// The client address as logged (with --user-agent).
    #[arg(long, requires = "user_agent", conflicts_with = "cookie")]
    pub client: Option<String>,
    /// The user agent exactly as logged (with --client).
    #[arg(long, requires = "client")]
    pub user_agent: Option<String>,
    /// The session cookie's value (when the site identifies visitors by cookie).
    #[arg(long, required_unless_present = "client")]
    pub cookie: Option<String>,
    /// First day (YYYY-MM-DD, the log's own calendar day).
    #[arg(long)]
    pub from: NaiveDate,
    /// Last day (default: --from).
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Only this site (default: every site in the warehouse on those days).
    #[arg(long)]
    pub site: Option<String>,
    #[command(flatten)]
    pub keyring: KeyringArg,
    /// TOML config file: its [keys] table says where the keyring is.
    #[arg(long, short = 'c', env = "FOOTFALL_CONFIG")]
    pub config: Option<PathBuf>,
}

impl Person {
    /// The warehouse's local directory (an object-store URL: its default
    /// staging directory, which publishes to the URL its metadata records).
    fn local_dir(&self) -> anyhow::Result<PathBuf> {
        super::aggregate::local_dir(&footfall_ingest::AggregateConfig {
            warehouse: Some(self.warehouse.clone()),
            ..Default::default()
        })
    }

    fn range(&self) -> anyhow::Result<(NaiveDate, NaiveDate)> {
        let to = self.to.unwrap_or(self.from);
        if to < self.from {
            return Err(
                Failure::new(CONFIG, format!("--to {to} is before --from {}", self.from)).into(),
            );
        }
        Ok((self.from, to))
    }

    /// What the visitor id hashes, as ingest builds it (a logged `-` is no value).
    fn basis(&self) -> VisitorBasis<'_> {
        match (&self.cookie, &self.client, &self.user_agent) {
            (Some(c), _, _) => VisitorBasis::Cookie(c),
            (None, Some(ip), Some(ua)) => VisitorBasis::ClientAgent(logged(ip), logged(ua)),
            _ => unreachable!("clap requires --cookie or --client with --user-agent"),
        }
    }

    /// The person's visitor id on `date` at `site`, when the key is held.
    fn id_for(&self, keyring: &Keyring, date: NaiveDate, site: &str) -> Option<String> {
        if self.site.as_deref().is_some_and(|s| s != site) {
            return None;
        }
        keyring
            .day_key(date)
            .map(|k| visitor_id(&k, site, self.basis()))
    }
}

#[derive(clap::Args, Debug)]
pub struct EraseArgs {
    #[command(flatten)]
    pub person: Person,
    /// Minutes of inactivity that end a visit [default: the config's
    /// aggregate.visit_timeout_minutes, else what the last aggregate run used
    /// (recorded in the warehouse), else 30].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub visit_timeout_minutes: Option<u64>,
    /// Rare values used by fewer distinct visitors a day are folded into
    /// `(other)` [default: the config's aggregate.min_visitors, else what the
    /// last aggregate run used (recorded in the warehouse), else 3].
    #[arg(long)]
    pub min_visitors: Option<u32>,
    /// Report what would be erased, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct LookupArgs {
    #[command(flatten)]
    pub person: Person,
    /// Output: JSON lines (one event each) or CSV with a header.
    #[arg(long, value_parser = ["json", "csv"], default_value = "json")]
    pub format: String,
}

fn keyring_of(p: &Person) -> anyhow::Result<Keyring> {
    open_keyring(&keys_config(p.config.as_deref())?, &p.keyring)
}

fn warehouse_failure(
    what: &str,
    p: &Person,
    e: footfall_aggregate::AggregateError,
) -> anyhow::Error {
    let code = match e.kind() {
        ErrorKind::Locked => TEMP_FAIL,
        ErrorKind::Config => CONFIG,
        ErrorKind::Io => CANT_CREATE,
        ErrorKind::Store => UNAVAILABLE,
        _ => FAILURE,
    };
    Failure::new(code, format!("{what} in {}: {e}", p.warehouse.display())).into()
}

fn say_unlinkable(command: &str, days: &[NaiveDate]) {
    if !days.is_empty() {
        let list: Vec<String> = days.iter().map(|d| d.to_string()).collect();
        eprintln!(
            "footfall {command}: {} day(s) already unlinkable (their keys are destroyed; nothing can find this person there): {}",
            days.len(),
            list.join(", ")
        );
    }
}

/// The summary settings of the aggregate runs: each flag, else the config
/// file's `[aggregate]` key, else what the last run recorded in the
/// warehouse at `dir`; the epoch of its `[keys]` table.
fn summary_options(args: &EraseArgs, dir: &Path) -> anyhow::Result<SummaryOptions> {
    let (file, epoch) = match args.person.config.as_deref() {
        Some(path) => {
            let cfg = footfall_ingest::IngestConfig::from_toml_file(path)
                .map_err(|e| Failure::new(CONFIG, e.to_string()))?;
            (cfg.aggregate, cfg.keys.epoch)
        }
        None => (AggregateConfig::default(), None),
    };
    let s = AggregateConfig {
        visit_timeout_minutes: args.visit_timeout_minutes.or(file.visit_timeout_minutes),
        min_visitors: args.min_visitors.or(file.min_visitors),
        ..file
    };
    let mut summary = super::aggregate::as_the_runs(&s, dir)?;
    summary.epoch = epoch.unwrap_or_default();
    Ok(summary)
}

/// A progress bar on a terminal of the events files an erasure or a lookup
/// reads, then of what it does.
struct FilesBar(indicatif::ProgressBar);

impl FilesBar {
    fn new(what: &str) -> Self {
        FilesBar(crate::progress::count_bar(Some(0), what))
    }
}

impl footfall_aggregate::Progress for FilesBar {
    fn stage(&mut self, stage: Stage) {
        self.0.set_message(match stage {
            Stage::Consuming => "events files read",
            Stage::Writing => "rewriting events files",
            Stage::Summarizing => "recomputing summaries",
            _ => "",
        });
    }
    fn planned(&mut self, files: u64) {
        self.0.set_length(files);
    }
    fn consumed(&mut self, files: u64) {
        self.0.set_position(files);
    }
}

pub fn erase(args: EraseArgs) -> anyhow::Result<()> {
    let p = &args.person;
    let (from, to) = p.range()?;
    let keyring = keyring_of(p)?;
    let dir = p.local_dir()?;
    let summary = summary_options(&args, &dir)?;
    let ids = |date: NaiveDate, site: &str| p.id_for(&keyring, date, site);
    let mut bar = FilesBar::new("erase");
    let report = footfall_aggregate::erase(&dir, from, to, &ids, &summary, args.dry_run, &mut bar)
        .map_err(|e| warehouse_failure("erase", p, e));
    bar.0.finish_and_clear();
    let report = report?;
    say_unlinkable("erase", &report.days_unlinkable);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!("footfall erase: {report}");
    }
    Ok(())
}

pub fn lookup(args: LookupArgs) -> anyhow::Result<()> {
    let p = &args.person;
    let (from, to) = p.range()?;
    let keyring = keyring_of(p)?;
    let ids = |date: NaiveDate, site: &str| p.id_for(&keyring, date, site);
    let mut bar = FilesBar::new("lookup");
    let found = footfall_aggregate::lookup(&p.local_dir()?, from, to, &ids, &mut bar)
        .map_err(|e| warehouse_failure("lookup", p, e));
    bar.0.finish_and_clear();
    let (events, unlinkable) = found?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.format == "csv" {
        write_csv(&mut out, &events)?;
    } else {
        for e in &events {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    say_unlinkable("lookup", &unlinkable);
    eprintln!(
        "footfall lookup: {} events from {from} to {to}",
        events.len()
    );
    Ok(())
}

/// Events as CSV: one column per top-level field (nested values as JSON).
fn write_csv(out: &mut impl Write, events: &[VisitEvent]) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = events
        .iter()
        .map(|e| match serde_json::to_value(e) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => unreachable!("an event serialises to an object"),
            Err(e) => Err(e),
        })
        .collect::<Result<_, _>>()?;
    let mut header: Vec<&str> = Vec::new();
    for r in &rows {
        for k in r.keys() {
            if !header.contains(&k.as_str()) {
                header.push(k);
            }
        }
    }
    writeln!(
        out,
        "{}",
        header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(",")
    )?;
    for r in &rows {
        let cells: Vec<String> = header
            .iter()
            .map(|h| match r.get(*h) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => csv_field(s),
                Some(v) => csv_field(&v.to_string()),
            })
            .collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    Ok(())
}

/// A CSV cell (RFC 4180 quoting).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
