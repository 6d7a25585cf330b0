//! Tests of the parse stage: order and output with several parse threads,
//! stateful formats, interleaved streams, the site's host inferred.

use super::*;
use crate::lines::LineBuf;
use crate::track::Registry;
use footfall_parse::SecretKeys;

fn parser(format: &str) -> SourceParser {
    parser_of(ParseConfig {
        format: format.into(),
        ..Default::default()
    })
}

fn parser_of(cfg: ParseConfig) -> SourceParser {
    let keys: Arc<dyn KeyProvider> =
        Arc::new(SecretKeys::from_secret(b"flow test secret value").unwrap());
    SourceParser::new("s".into(), &cfg, &Tables::embedded(), keys).unwrap()
}

/// A stream cut into batches of `per_batch` lines.
fn batches(name: &str, lines: &[String], per_batch: usize) -> Vec<RawBatch> {
    let track = Track::new("s".into(), None, 0);
    let src = SourceRef::from_first_line(name, lines[0].as_bytes());
    let mut out = Vec::new();
    let mut offset = 0u64;
    for chunk in lines.chunks(per_batch) {
        let mut buf = LineBuf::new();
        for l in chunk {
            buf.push(offset, l.as_bytes());
            offset += l.len() as u64 + 1;
        }
        out.push(RawBatch {
            track: track.clone(),
            src: src.clone(),
            prime: LineBuf::new(),
            lines: buf,
            end: offset,
        });
    }
    out
}

/// (stream, offset, reject kind, payload) of every item, in the order parsed batches came out.
type Item = (String, u64, Option<RejectKind>, String);

async fn run(format: &str, parallelism: usize, input: Vec<RawBatch>) -> Vec<Item> {
    run_with(parser(format), parallelism, input).await
}

async fn run_with(parser: SourceParser, parallelism: usize, input: Vec<RawBatch>) -> Vec<Item> {
    let metrics = Arc::new(Metrics::new(&["s".into()], Arc::new(Registry::new())));
    let counters = metrics.source("s").unwrap();
    let (raw_tx, raw_rx) = mpsc::channel(4);
    let (tx, mut rx) = mpsc::channel(2);
    let stage = tokio::spawn(parse_stage(
        raw_rx,
        tx,
        parser,
        parallelism,
        counters.clone(),
        metrics.clone(),
    ));
    let n: usize = input.iter().map(|b| b.lines.len()).sum();
    let feed = tokio::spawn(async move {
        for b in input {
            raw_tx.send(b).await.unwrap();
        }
    });
    let mut out = Vec::new();
    while let Some(b) = rx.recv().await {
        for it in &b.items {
            out.push((
                b.source_name.to_string(),
                it.offset,
                it.reject,
                String::from_utf8(b.payload(it).to_vec()).unwrap(),
            ));
        }
    }
    feed.await.unwrap();
    stage.await.unwrap().unwrap();
    assert_eq!(
        counters.lines_read.load(Relaxed),
        n as u64,
        "every line counted once"
    );
    out
}

fn combined(i: usize) -> String {
    format!(
        "192.0.2.{} - - [10/Oct/2024:13:{:02}:{:02} +0000] \"GET /p{i} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0\"",
        i % 250,
        (i / 60) % 60,
        i % 60,
        100 + i
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_parsing_keeps_the_order_and_the_output_of_one_thread() {
    let mut lines: Vec<String> = (0..3000).map(combined).collect();
    lines[1234] = "not an access log line".into();
    let one = run("combined", 1, batches("a.log", &lines, 37)).await;
    let four = run("combined", 4, batches("a.log", &lines, 37)).await;
    assert_eq!(one.len(), lines.len());
    assert!(one.windows(2).all(|w| w[0].1 < w[1].1), "in stream order");
    assert_eq!(one, four, "same items, same order");
    assert_eq!(four[1234].2, Some(RejectKind::Malformed));
}

/// W3C `#Fields:` headers change the layout of the lines after them: with
/// several threads, every batch must still see the header before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_format_sees_each_header_before_its_lines() {
    let mut lines = Vec::new();
    for i in 0..2000 {
        if i % 500 == 0 {
            // Alternate two column orders; a line parsed with the wrong one is garbage.
            lines.push(if i % 1000 == 0 {
                "#Fields: date time c-ip cs-method cs-uri-stem sc-status".to_string()
            } else {
                "#Fields: date time cs-uri-stem sc-status cs-method c-ip".to_string()
            });
        }
        let ip = format!("198.51.100.{}", i % 250);
        lines.push(if (i / 500) % 2 == 0 {
            format!("2024-03-01 12:00:{:02} {ip} GET /w{i} 200", i % 60)
        } else {
            format!("2024-03-01 12:00:{:02} /w{i} 200 GET {ip}", i % 60)
        });
    }
    for format in ["w3c", "auto"] {
        let one = run(format, 1, batches("iis.log", &lines, 7)).await;
        let four = run(format, 4, batches("iis.log", &lines, 7)).await;
        assert_eq!(one, four, "{format}: same items, same order");
        let events: Vec<&Item> = four.iter().filter(|i| i.2.is_none()).collect();
        assert_eq!(events.len(), 2000, "{format}: every data line is an event");
        for (i, e) in events.iter().enumerate() {
            assert!(
                e.3.contains(&format!("\"path\":\"/w{i}\"")),
                "{format}: line {i} parsed with its header: {}",
                e.3
            );
        }
    }
}

/// `auto` detects a format per stream; streams interleave in the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_streams_of_different_formats() {
    let web: Vec<String> = (0..500).map(combined).collect();
    let mut iis = vec!["#Fields: date time c-ip cs-method cs-uri-stem sc-status".to_string()];
    iis.extend((0..500).map(|i| {
        format!(
            "2024-03-01 12:00:{:02} 198.51.100.{} GET /w{i} 200",
            i % 60,
            i % 250
        )
    }));
    let (a, b) = (batches("web.log", &web, 10), batches("iis.log", &iis, 10));
    let interleave = |a: Vec<RawBatch>, b: Vec<RawBatch>| {
        let mut out = Vec::new();
        let (mut a, mut b) = (a.into_iter(), b.into_iter());
        loop {
            match (a.next(), b.next()) {
                (None, None) => return out,
                (x, y) => out.extend(x.into_iter().chain(y)),
            }
        }
    };
    let one = run("auto", 1, interleave(a, b)).await;
    let (a, b) = (batches("web.log", &web, 10), batches("iis.log", &iis, 10));
    let four = run("auto", 4, interleave(a, b)).await;
    assert_eq!(one, four);
    let rejects: Vec<&Item> = four.iter().filter(|i| i.2.is_some()).collect();
    assert_eq!(rejects.len(), 1, "only the #Fields: line: {rejects:?}");
    assert_eq!(rejects[0].2, Some(RejectKind::Header));
}

/// Line `i` requests `/p{i}` from a page of the site, `/p{i+1}`.
fn self_referred(i: usize) -> String {
    combined(i).replace(
        "\"-\"",
        &format!("\"https://www.example.org/p{}?from=menu\"", i + 1),
    )
}

fn media(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            let e: serde_json::Value = serde_json::from_str(&i.3).unwrap();
            e["referrer_medium"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Without site hosts, the host that refers most to the source's own paths
/// in its first lines is the site's: its referrals are internal from the
/// first batch on; switched off, they stay external.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_host_is_inferred_from_the_first_lines() {
    let lines: Vec<String> = (0..400).map(self_referred).collect();
    for format in ["combined", "auto"] {
        let items = run(format, 4, batches("a.log", &lines, 100)).await;
        let m = media(&items);
        assert!(m.iter().all(|m| m == "internal"), "{format}: {m:?}");
    }
    let off = parser_of(ParseConfig {
        format: "combined".into(),
        infer_site_host: false,
        ..Default::default()
    });
    let m = media(&run_with(off, 4, batches("a.log", &lines, 100)).await);
    assert!(m.iter().all(|m| m == "external"), "{m:?}");
    let given = parser_of(ParseConfig {
        format: "combined".into(),
        site_hosts: vec!["other.example".into()],
        ..Default::default()
    });
    let m = media(&run_with(given, 4, batches("a.log", &lines, 100)).await);
    assert!(m.iter().all(|m| m == "external"), "site_hosts given: {m:?}");
}

/// A source whose first batches are single lines decides as soon as the
/// sample shows the host (ten referrals to paths it requested); the batches
/// started after that, and only they, count it as the site's, however many
/// were being parsed at that moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_host_is_inferred_as_soon_as_it_shows() {
    let lines: Vec<String> = (0..200).map(self_referred).collect();
    for parallelism in [1, 4] {
        let m = media(&run("combined", parallelism, batches("a.log", &lines, 1)).await);
        // Line k's batch sees lines 0..=k: k referrals to paths requested.
        assert!(m[..10].iter().all(|m| m == "external"), "{m:?}");
        assert!(m[10..].iter().all(|m| m == "internal"), "{m:?}");
    }
}
