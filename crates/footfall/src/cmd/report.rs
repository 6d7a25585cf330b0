//! Reading the warehouse's summary tables back for the first-look report
//! (`footfall demo`): sums over every part file, keyed by columns.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use serde::Serialize;

/// A warehouse directory.
pub struct Warehouse {
    dir: PathBuf,
}

impl Warehouse {
    pub fn new(dir: &Path) -> Self {
        Warehouse {
            dir: dir.to_path_buf(),
        }
    }

    /// Table directories present.
    pub fn tables(&self) -> anyhow::Result<Vec<String>> {
        let mut t: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && !n.starts_with('_'))
            .collect();
        t.sort();
        Ok(t)
    }

    /// `(date, part file)` of a table.
    fn parts(&self, table: &str) -> anyhow::Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        let tdir = self.dir.join(table);
        if !tdir.is_dir() {
            return Ok(out);
        }
        for d in std::fs::read_dir(&tdir).with_context(|| format!("reading {}", tdir.display()))? {
            let d = d?;
            let name = d.file_name().to_string_lossy().into_owned();
            let Some(date) = name.strip_prefix("date=") else {
                continue;
            };
            for f in std::fs::read_dir(d.path())? {
                let f = f?.path();
                if f.extension().is_some_and(|e| e == "parquet") {
                    out.push((date.to_string(), f));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Rows in a table, over all part files.
    pub fn count_rows(&self, table: &str) -> anyhow::Result<u64> {
        let mut n = 0u64;
        for (_, p) in self.parts(table)? {
            let f = std::fs::File::open(&p)?;
            let meta = parquet::file::reader::FileReader::metadata(
                &parquet::file::serialized_reader::SerializedFileReader::new(f)?,
            )
            .file_metadata()
            .num_rows();
            n += meta as u64;
        }
        Ok(n)
    }

    /// `SELECT keys..., SUM(values...) GROUP BY keys` over every part file; the
    /// key `date` comes from the Hive partition directory.
    pub fn sum_by(
        &self,
        table: &str,
        keys: &[&str],
        values: &[&str],
    ) -> anyhow::Result<BTreeMap<Vec<String>, Vec<i64>>> {
        let mut out: BTreeMap<Vec<String>, Vec<i64>> = BTreeMap::new();
        let file_cols: Vec<&str> = keys
            .iter()
            .chain(values.iter())
            .copied()
            .filter(|c| *c != "date")
            .collect();
        for (date, path) in self.parts(table)? {
            let batches = footfall_aggregate::read_parquet(&path, Some(&file_cols))
                .with_context(|| format!("reading {}", path.display()))?;
            for b in batches {
                let key_cols: Vec<Option<arrow::array::ArrayRef>> = keys
                    .iter()
                    .map(|k| {
                        if *k == "date" {
                            Ok(None)
                        } else {
                            let c = b
                                .column_by_name(k)
                                .with_context(|| format!("{table} has no column {k}"))?;
                            Ok(Some(arrow::compute::cast(c, &DataType::Utf8)?))
                        }
                    })
                    .collect::<anyhow::Result<_>>()?;
                let val_cols: Vec<arrow::array::ArrayRef> = values
                    .iter()
                    .map(|v| {
                        let c = b
                            .column_by_name(v)
                            .with_context(|| format!("{table} has no column {v}"))?;
                        Ok(arrow::compute::cast(c, &DataType::Int64)?)
                    })
                    .collect::<anyhow::Result<_>>()?;
                for row in 0..b.num_rows() {
                    let key: Vec<String> = key_cols
                        .iter()
                        .map(|c| match c {
                            None => date.clone(),
                            Some(a) => {
                                let s = a.as_string::<i32>();
                                if s.is_null(row) {
                                    "(none)".to_string()
                                } else {
                                    s.value(row).to_string()
                                }
                            }
                        })
                        .collect();
                    let acc = out.entry(key).or_insert_with(|| vec![0; values.len()]);
                    for (i, c) in val_cols.iter().enumerate() {
                        let a = c.as_primitive::<Int64Type>();
                        if !a.is_null(row) {
                            acc[i] += a.value(row);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The first-look report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Per day: requests, and the humans' page views, visits and visitors,
    /// then the bots' visitors.
    pub days: Vec<(String, i64, i64, i64, i64, i64)>,
    /// Per ISO week (its Monday): human unique visitors, and whether exact.
    pub weeks: Vec<(String, i64, bool)>,
    /// Top human pages: site, route, views, visitors.
    pub top_pages: Vec<(String, String, i64, i64)>,
    /// Referrers by medium: medium, visits; and top sources: medium, source, visits.
    pub mediums: Vec<(String, i64)>,
    pub top_sources: Vec<(String, String, i64)>,
    /// On-site and search-engine searches: kind, terms, searches.
    pub top_searches: Vec<(String, String, i64)>,
    /// Browsers: browser, requests, visitors.
    pub browsers: Vec<(String, i64, i64)>,
    /// Error routes: status, route, requests.
    pub error_routes: Vec<(String, String, i64)>,
}

fn top<K, F: Fn(&(Vec<String>, Vec<i64>)) -> K>(
    m: BTreeMap<Vec<String>, Vec<i64>>,
    by: usize,
    n: usize,
    f: F,
) -> Vec<K> {
    let mut v: Vec<(Vec<String>, Vec<i64>)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1[by].cmp(&a.1[by]).then_with(|| a.0.cmp(&b.0)));
    v.iter().take(n).map(f).collect()
}

/// Only the rows of one audience, with the audience dropped from the key
/// (it is the first key column).
fn only(m: BTreeMap<Vec<String>, Vec<i64>>, audience: &str) -> BTreeMap<Vec<String>, Vec<i64>> {
    m.into_iter()
        .filter(|(k, _)| k[0] == audience)
        .map(|(k, v)| (k[1..].to_vec(), v))
        .collect()
}

pub fn build(wh: &Warehouse) -> anyhow::Result<Report> {
    let values = ["requests", "page_views", "visits", "visitors"];
    let daily = wh.sum_by("traffic_daily", &["audience", "date"], &values)?;
    let requests = wh.sum_by("traffic_daily", &["date"], &["requests"])?;
    let (humans, bots) = (only(daily.clone(), "human"), only(daily, "bot"));
    let days = requests
        .into_iter()
        .map(|(k, r)| {
            let h = humans.get(&k).cloned().unwrap_or(vec![0; 4]);
            let b = bots.get(&k).map_or(0, |v| v[3]);
            (k[0].clone(), r[0], h[1], h[2], h[3], b)
        })
        .collect();
    let weeks = only(
        wh.sum_by(
            "traffic_weekly",
            &["audience", "date"],
            &["visitors", "visitors_exact"],
        )?,
        "human",
    )
    .into_iter()
    .map(|(k, v)| (k[0].clone(), v[0], v[1] > 0))
    .collect();
    let top_pages = top(
        only(
            wh.sum_by(
                "pages_daily",
                &["audience", "site", "route"],
                &["views", "visitors"],
            )?,
            "human",
        ),
        0,
        10,
        |(k, v)| (k[0].clone(), k[1].clone(), v[0], v[1]),
    );
    let mediums = top(
        wh.sum_by("referrers_daily", &["medium"], &["visits"])?,
        0,
        10,
        |(k, v)| (k[0].clone(), v[0]),
    );
    let top_sources = top(
        wh.sum_by("referrers_daily", &["medium", "source"], &["visits"])?
            .into_iter()
            .filter(|(k, _)| k[1] != "(none)")
            .collect(),
        0,
        10,
        |(k, v)| (k[0].clone(), k[1].clone(), v[0]),
    );
    let top_searches = top(
        wh.sum_by("search_terms_daily", &["kind", "terms"], &["searches"])?,
        0,
        10,
        |(k, v)| (k[0].clone(), k[1].clone(), v[0]),
    );
    let browsers = top(
        wh.sum_by("clients_daily", &["browser"], &["requests", "visitors"])?,
        1,
        10,
        |(k, v)| (k[0].clone(), v[0], v[1]),
    );
    let error_routes = top(
        wh.sum_by("status_daily", &["status", "route"], &["requests"])?
            .into_iter()
            .filter(|(k, _)| k[0].parse::<u16>().is_ok_and(|s| s >= 400))
            .collect(),
        0,
        10,
        |(k, v)| (k[0].clone(), k[1].clone(), v[0]),
    );
    Ok(Report {
        days,
        weeks,
        top_pages,
        mediums,
        top_sources,
        top_searches,
        browsers,
        error_routes,
    })
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\nPer day (page views, visits and visitors of humans)");
    let _ = writeln!(
        o,
        "  {:<12} {:>9} {:>10} {:>8} {:>9} {:>13}",
        "date", "requests", "page views", "visits", "visitors", "bot visitors"
    );
    for (d, req, pv, vi, vu, bots) in &r.days {
        let _ = writeln!(o, "  {d:<12} {req:>9} {pv:>10} {vi:>8} {vu:>9} {bots:>13}");
    }
    let _ = writeln!(o, "\nUnique human visitors per week");
    for (week, visitors, exact) in &r.weeks {
        let bound = if *exact {
            ""
        } else {
            "  (upper bound: daily visitor ids)"
        };
        let _ = writeln!(o, "  week of {week}  {visitors:>7}{bound}");
    }
    let _ = writeln!(o, "\nTop human pages (by views)");
    for (site, route, views, visitors) in &r.top_pages {
        let _ = writeln!(
            o,
            "  {:>7} views {:>6} visitors  {} {}",
            views,
            visitors,
            site,
            cut(route, 70)
        );
    }
    let _ = writeln!(o, "\nReferrers by medium (visits)");
    for (m, v) in &r.mediums {
        let _ = writeln!(o, "  {m:<14} {v:>7}");
    }
    let _ = writeln!(o, "  top sources:");
    for (m, s, v) in &r.top_sources {
        let _ = writeln!(o, "  {:<14} {:<24} {v:>7}", m, cut(s, 24));
    }
    let _ = writeln!(o, "\nTop searches");
    if r.top_searches.is_empty() {
        let _ = writeln!(o, "  (none: the sample logs carry few search terms, and rare ones are folded into (other))");
    }
    for (k, t, n) in &r.top_searches {
        let _ = writeln!(o, "  {n:>6}  {:<14} {}", k, cut(t, 60));
    }
    let _ = writeln!(o, "\nBrowsers (by visitors)");
    for (b, req, vis) in &r.browsers {
        let _ = writeln!(
            o,
            "  {:<28} {req:>8} requests {vis:>7} visitors",
            cut(b, 28)
        );
    }
    let _ = writeln!(o, "\nError routes");
    for (s, route, n) in &r.error_routes {
        let _ = writeln!(o, "  {s} {n:>7}  {}", cut(route, 70));
    }
    o
}
