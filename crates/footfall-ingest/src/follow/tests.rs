//! Tests of the follower: rotation, truncation, compression, checkpoints.

use super::*;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;

fn settings(patterns: &[&Path]) -> FileSettings {
    FileSettings {
        source: "www".into(),
        patterns: patterns
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        exclude: Vec::new(),
        start_at: StartAt::Beginning,
        follow: true,
        poll_interval: Duration::from_millis(250),
        scan_interval: Duration::from_secs(1),
        rotate_wait: Duration::from_secs(10),
        close_idle: Duration::from_secs(300),
        forget_after: Duration::from_secs(3600),
        read_chunk: 64 * 1024,
        line_cap: 1 << 20,
    }
}

/// Emitted lines as (source name, offset, text).
type Lines = Vec<(String, u64, String)>;

struct Harness {
    follower: Follower,
    now: Instant,
    registry: Arc<Registry>,
    counters: Arc<SourceCounters>,
    /// Acknowledge every batch right away (as if Kafka had).
    ack: bool,
    /// Source key of every line emitted, in order.
    keys: Vec<[u8; 16]>,
}

fn counters() -> Arc<SourceCounters> {
    Arc::new(SourceCounters::new("www".into()))
}

impl Harness {
    fn new(s: FileSettings) -> Harness {
        let registry = Arc::new(Registry::new());
        Harness::with_registry(s, registry)
    }

    fn with_registry(s: FileSettings, registry: Arc<Registry>) -> Harness {
        let counters = counters();
        Harness {
            follower: Follower::new(Arc::new(s), registry.clone(), counters.clone()),
            now: Instant::now(),
            registry,
            counters,
            ack: true,
            keys: Vec::new(),
        }
    }

    /// Advance the clock and poll until no file has more data ready.
    fn poll(&mut self, advance: Duration) -> Lines {
        self.now += advance;
        let mut out = Vec::new();
        for _ in 0..1000 {
            let r = self.follower.poll(self.now);
            for b in r.batches {
                let offsets: Vec<u64> = b.lines.iter().map(|(o, _)| o).collect();
                b.track.register(offsets.iter().copied(), b.end);
                for (o, l) in b.lines.iter() {
                    self.keys.push(b.src.key);
                    out.push((
                        b.src.name.to_string(),
                        o,
                        String::from_utf8_lossy(l).into_owned(),
                    ));
                }
                if self.ack {
                    for o in offsets {
                        b.track.ack(o);
                    }
                }
            }
            if !r.more {
                return out;
            }
        }
        panic!("follower never settled");
    }

    fn texts(lines: &Lines) -> Vec<String> {
        lines.iter().map(|l| l.2.clone()).collect()
    }

    /// The texts of `polls` polls, each a step of `S` later.
    fn poll_texts(&mut self, polls: usize) -> Vec<String> {
        (0..polls)
            .flat_map(|_| Harness::texts(&self.poll(S)))
            .collect()
    }
}

fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Lines long enough that a file of a dozen of them has a full 1 KiB head.
fn line(tag: &str, i: usize) -> String {
    format!("{tag}-{i:03} {}\n", "x".repeat(100))
}

const S: Duration = Duration::from_secs(1);

#[test]
fn reads_existing_then_appended_lines_and_holds_partial_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "a\nbb\npart");
    let mut h = Harness::new(settings(&[&log]));
    let got = h.poll(S);
    let name = log.to_string_lossy().into_owned();
    assert_eq!(
        got,
        vec![
            (name.clone(), 0, "a".into()),
            (name.clone(), 2, "bb".into())
        ]
    );
    assert_eq!(h.poll(S), vec![], "the partial line waits for its newline");
    append(&log, "ial\r\nnext\n");
    assert_eq!(
        h.poll(S),
        vec![
            (name.clone(), 5, "partial".into()),
            (name, 14, "next".into())
        ]
    );
    let t = &h.registry.tracks()[0];
    assert_eq!(t.checkpoint(), 19);
}

#[test]
fn a_file_without_a_complete_first_line_is_not_read_yet() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "no newline yet");
    let mut h = Harness::new(settings(&[&log]));
    assert_eq!(h.poll(S), vec![]);
    assert_eq!(h.follower.open_files(), 0);
    append(&log, "\nsecond\n");
    assert_eq!(Harness::texts(&h.poll(S)), vec!["no newline yet", "second"]);
}

#[test]
fn start_at_end_skips_existing_content_on_first_run_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "old1\nold2\npart");
    let mut s = settings(&[&log]);
    s.start_at = StartAt::End;
    let mut h = Harness::new(s.clone());
    assert_eq!(h.poll(S), vec![]);
    append(&log, "ial\nnew\n");
    let got = h.poll(S);
    assert_eq!(
        got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
        vec![(10, "partial"), (18, "new")]
    );
    // A new file appearing later is read from its beginning.
    let other = dir.path().join("other.log");
    append(&other, "o1\n");
    s.patterns.push(other.to_string_lossy().into_owned());
    let registry = h.registry.clone();
    drop(h);
    for t in registry.tracks() {
        t.lock().open = false;
    }
    // A restart with checkpoints: start_at no longer applies.
    let mut h = Harness::with_registry(s, registry);
    append(&log, "after\n");
    assert_eq!(Harness::texts(&h.poll(S)), vec!["after", "o1"]);
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end_and_the_new_one_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let old = dir.path().join("access.log.1");
    append(&log, "one\ntwo\n");
    let mut h = Harness::new(settings(&[&log]));
    assert_eq!(Harness::texts(&h.poll(S)), vec!["one", "two"]);
    fs::rename(&log, &old).unwrap();
    // The writer still has the old file open for a moment.
    append(&old, "three\nunterminated");
    append(&log, "new-one\n");
    let got = h.poll(S);
    let log_name = log.to_string_lossy().into_owned();
    assert_eq!(
        got.iter()
            .map(|l| (l.0.as_str(), l.1, l.2.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (log_name.as_str(), 8, "three"),
            (log_name.as_str(), 0, "new-one")
        ],
        "old file continued under its original name; new file from 0"
    );
    assert_eq!(h.follower.open_files(), 2);
    // Quiet for rotate_wait: the old file is finished, its last line emitted.
    assert_eq!(h.poll(Duration::from_secs(5)), vec![]);
    assert_eq!(
        h.follower.open_files(),
        2,
        "kept open while it might still grow"
    );
    let got = h.poll(Duration::from_secs(11));
    assert_eq!(Harness::texts(&got), vec!["unterminated"]);
    assert_eq!(h.follower.open_files(), 1);
    append(&log, "new-two\n");
    assert_eq!(Harness::texts(&h.poll(S)), vec!["new-two"]);
}

#[test]
fn a_rotated_file_matched_by_the_glob_is_not_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, &line("a", 1));
    let mut s = settings(&[&dir.path().join("access.log*")]);
    s.close_idle = Duration::from_secs(2);
    let mut h = Harness::new(s.clone());
    assert_eq!(h.poll(S).len(), 1);
    fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    append(&log, &line("b", 1));
    assert_eq!(
        Harness::texts(&h.poll(S)),
        vec![line("b", 1).trim_end().to_string()]
    );
    // Closed for idleness and reopened by later scans: still nothing twice.
    for _ in 0..5 {
        assert_eq!(h.poll(S), vec![]);
    }
    // And after a restart with the same checkpoints.
    let registry = h.registry.clone();
    drop(h);
    for t in registry.tracks() {
        t.lock().open = false;
    }
    let mut h = Harness::with_registry(s, registry);
    assert_eq!(h.poll(S), vec![]);
}

#[test]
fn copytruncate_restarts_at_zero_and_recovers_the_tail_from_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let copy = dir.path().join("access.log.1");
    let mut expected = Vec::new();
    for i in 0..12 {
        append(&log, &line("a", i));
        expected.push(line("a", i).trim_end().to_string());
    }
    let mut h = Harness::new(settings(&[&dir.path().join("access.log*")]));
    let mut seen = Harness::texts(&h.poll(S));
    // Written after our last read, then copied and truncated before we look again.
    for i in 12..15 {
        append(&log, &line("a", i));
        expected.push(line("a", i).trim_end().to_string());
    }
    fs::copy(&log, &copy).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &line("b", 0));
    expected.push(line("b", 0).trim_end().to_string());
    for _ in 0..3 {
        seen.extend(Harness::texts(&h.poll(S)));
    }
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected, "every line exactly once");
}

#[test]
fn copytruncate_without_the_copy_restarts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "first line of the old content\nsecond\n");
    let mut h = Harness::new(settings(&[&log]));
    assert_eq!(h.poll(S).len(), 2);
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "new\n");
    let got = h.poll(S);
    assert_eq!(
        got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
        vec![(0, "new")]
    );
    // Truncated and rewritten past the old position: noticed by the head.
    append(&log, &"y".repeat(100));
    append(&log, "\n");
    h.poll(S);
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &format!("other head {}\n", "z".repeat(200)));
    let got = h.poll(S);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, 0);
    assert!(got[0].2.starts_with("other head"));
}

#[test]
fn new_files_matching_the_glob_are_picked_up_and_excludes_apply() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&[&dir.path().join("*.log")]);
    s.exclude = vec![glob::Pattern::new(&dir.path().join("skip*").to_string_lossy()).unwrap()];
    let mut h = Harness::new(s);
    assert_eq!(h.poll(S), vec![]);
    append(&dir.path().join("a.log"), "a1\n");
    append(&dir.path().join("skip.log"), "s1\n");
    append(&dir.path().join("b.txt"), "b1\n");
    assert_eq!(Harness::texts(&h.poll(S)), vec!["a1"]);
    append(&dir.path().join("c.log"), "c1\n");
    assert_eq!(Harness::texts(&h.poll(S)), vec!["c1"]);
}

fn gzip(path: &Path, text: &str) {
    let f = File::create(path).unwrap();
    let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
}

#[test]
fn gzip_files_are_read_once_to_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("old.log.gz");
    gzip(&gz, "g1\ng2\nlast-without-newline");
    let s = settings(&[&dir.path().join("*.gz")]);
    let mut h = Harness::new(s.clone());
    let got = h.poll(S);
    assert_eq!(
        got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
        vec![(0, "g1"), (3, "g2"), (6, "last-without-newline")]
    );
    assert_eq!(h.follower.open_files(), 0);
    for _ in 0..3 {
        assert_eq!(h.poll(S), vec![]);
    }
    let registry = h.registry.clone();
    assert!(registry.tracks()[0].lock().complete);
    drop(h);
    let mut h = Harness::with_registry(s, registry);
    assert_eq!(h.poll(S), vec![], "not read again after a restart");
}

#[test]
fn a_compressed_rotation_continues_where_the_plain_file_was_left() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut content = String::new();
    for i in 0..12 {
        content.push_str(&line("a", i));
    }
    append(&log, &content);
    let mut s = settings(&[&dir.path().join("access.log*")]);
    s.rotate_wait = Duration::from_secs(1);
    let mut h = Harness::new(s);
    assert_eq!(h.poll(S).len(), 12);
    // Two more lines are written, then the file is compressed and removed
    // (logrotate `compress` without `delaycompress`) before we read them.
    let tail = format!("{}{}", line("a", 12), line("a", 13));
    append(&log, &tail);
    let full = format!("{content}{tail}");
    gzip(&dir.path().join("access.log.1.gz"), &full);
    fs::remove_file(&log).unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.extend(h.poll(S));
    }
    let texts = Harness::texts(&got);
    assert_eq!(
        texts,
        vec![line("a", 12).trim_end(), line("a", 13).trim_end()]
    );
}

#[test]
fn checkpoints_resume_after_a_restart_and_unacknowledged_lines_are_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "l1\nl2\nl3\n");
    let s = settings(&[&log]);
    let mut h = Harness::new(s.clone());
    h.ack = false;
    let got = h.poll(S);
    assert_eq!(got.len(), 3);
    let t = h.registry.tracks()[0].clone();
    t.ack(0);
    t.ack(6); // l3 acknowledged, l2 not
    assert_eq!(t.checkpoint(), 3);
    // Restart from what the checkpoint says.
    let registry = Arc::new(Registry::new());
    let id = t.lock().identity.clone();
    registry.add(Track::new("www".into(), id, t.checkpoint()));
    let mut h = Harness::with_registry(s, registry);
    let got = h.poll(S);
    assert_eq!(
        got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
        vec![(3, "l2"), (6, "l3")]
    );
}

#[test]
fn replaced_content_under_the_same_path_is_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "first content\n");
    let mut s = settings(&[&log]);
    s.close_idle = Duration::from_secs(1);
    let mut h = Harness::new(s);
    assert_eq!(h.poll(S).len(), 1);
    h.poll(Duration::from_secs(2));
    h.poll(Duration::from_secs(2)); // closed for idleness
    assert_eq!(h.follower.open_files(), 0);
    fs::remove_file(&log).unwrap();
    append(&log, "different content that is longer than before\n");
    let got = h.poll(S);
    assert_eq!(
        got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
        vec![(0, "different content that is longer than before")]
    );
}

#[test]
fn header_lines_are_replayed_when_resuming_mid_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("u_ex.log");
    append(&log, "#Software: IIS\n#Fields: date time cs-uri-stem\n2024-01-01 00:00:00 /a\n2024-01-01 00:00:01 /b\n");
    let registry = Arc::new(Registry::new());
    let mut h = Harness::with_registry(settings(&[&log]), registry.clone());
    h.poll(S);
    let t = registry.tracks()[0].clone();
    let id = t.lock().identity.clone();
    let resume_at = 15 + 33 + 23;
    let registry = Arc::new(Registry::new());
    registry.add(Track::new("www".into(), id, resume_at));
    let mut follower = Follower::new(Arc::new(settings(&[&log])), registry, counters());
    let r = follower.poll(Instant::now());
    let b = &r.batches[0];
    let prime: Vec<_> = b
        .prime
        .iter()
        .map(|(o, l)| (o, String::from_utf8_lossy(l).into_owned()))
        .collect();
    assert_eq!(
        prime,
        vec![
            (0, "#Software: IIS".to_string()),
            (15, "#Fields: date time cs-uri-stem".to_string())
        ]
    );
    assert_eq!(b.lines.first().unwrap().0, resume_at);
}

#[test]
fn a_source_that_does_not_follow_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "a\nb");
    let mut s = settings(&[&log]);
    s.follow = false;
    let mut follower = Follower::new(Arc::new(s), Arc::new(Registry::new()), counters());
    let now = Instant::now();
    let mut lines = Vec::new();
    let mut finished = false;
    for _ in 0..10 {
        let r = follower.poll(now);
        lines.extend(r.batches.iter().flat_map(|b| {
            b.lines
                .iter()
                .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
                .collect::<Vec<_>>()
        }));
        if r.finished {
            finished = true;
            break;
        }
    }
    assert!(finished);
    assert_eq!(
        lines,
        vec!["a", "b"],
        "the unterminated last line counts when the file is read once"
    );
}

#[test]
fn gzip_is_recognised_by_content_whatever_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let rotated = dir.path().join("access.log.1");
    gzip(&rotated, "z1\nz2\n");
    let mut h = Harness::new(settings(&[&rotated]));
    assert_eq!(Harness::texts(&h.poll(S)), vec!["z1", "z2"]);
    assert!(
        h.registry.tracks()[0]
            .lock()
            .identity
            .as_ref()
            .unwrap()
            .gzip
    );
}

#[test]
fn a_file_read_once_is_followed_from_where_it_was_left() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "a\nb\n");
    let mut once = settings(&[&log]);
    once.follow = false;
    let mut h = Harness::new(once);
    assert_eq!(Harness::texts(&h.poll(S)), vec!["a", "b"]);
    assert_eq!(h.poll(S), vec![]);
    assert_eq!(h.follower.open_files(), 0, "read to its end and closed");
    let registry = h.registry.clone();
    drop(h);
    append(&log, "c\n");
    let mut h = Harness::with_registry(settings(&[&log]), registry);
    assert_eq!(Harness::texts(&h.poll(S)), vec!["c"]);
}

#[tokio::test(start_paused = true)]
async fn the_driver_polls_on_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "first\n");
    let follower = Follower::new(
        Arc::new(settings(&[&log])),
        Arc::new(Registry::new()),
        counters(),
    );
    let (tx, mut rx) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_files(follower, tx, stop.clone()));
    let b = rx.recv().await.unwrap();
    assert_eq!(b.lines.first().unwrap().1, b"first");
    let before = tokio::time::Instant::now();
    append(&log, "second\n");
    let b = rx.recv().await.unwrap();
    assert_eq!(b.lines.first().unwrap().1, b"second");
    let waited = before.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(600),
        "{waited:?}"
    );
    stop.cancel();
    task.await.unwrap();
}

// ---------------------------------------------------------------------------
// Rotation while stopped

/// The registry a restart would load from the checkpoints of `registry`.
fn reloaded(registry: &Registry) -> Arc<Registry> {
    let out = Arc::new(Registry::new());
    for t in registry.tracks() {
        let p = t.lock();
        let n = Track::new(t.source.clone(), p.identity.clone(), p.checkpoint());
        {
            let mut q = n.lock();
            q.size = p.size;
            q.complete = p.complete && p.all_acknowledged();
            q.source_key = p.source_key;
        }
        out.add(n);
    }
    out
}

/// A first run that reads the 12 lines "a" 0..12 of `log` (only the live
/// file named), all acknowledged, then stops: its settings, and the registry
/// a restart loads.
fn read_then_stop(log: &Path) -> (FileSettings, Arc<Registry>) {
    append(log, &lines("a", 0..12));
    let s = settings(&[log]);
    let mut h = Harness::new(s.clone());
    assert_eq!(h.poll(S).len(), 12);
    (s, reloaded(&h.registry))
}

fn lines(tag: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| line(tag, i)).collect()
}

fn texts(tag: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| line(tag, i).trim_end().to_string()).collect()
}

/// The texts of several tags' ranges, one after the other.
fn texts_of(parts: &[(&str, std::ops::Range<usize>)]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|(tag, r)| texts(tag, r.clone()))
        .collect()
}

/// The first run reads `access.log` (only the live file is named); while
/// stopped, three lines are appended and `rotate` rotates it; a new
/// `access.log` gets two lines. The restart reads the rest of the old file,
/// then the new one, each line once, under the old file's source key.
fn rotated_while_stopped(rotate: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, &lines("a", 0..12));
    let s = settings(&[&log]);
    let mut h = Harness::new(s.clone());
    assert_eq!(Harness::texts(&h.poll(S)), texts("a", 0..12));
    let first_key = h.keys[0];
    let registry = reloaded(&h.registry);
    drop(h);

    append(&log, &lines("a", 12..15));
    rotate(&log);
    append(&log, &lines("b", 0..2));

    let mut h = Harness::with_registry(s, registry);
    let mut got = Harness::texts(&h.poll(S));
    got.extend(Harness::texts(&h.poll(S)));
    let mut want = texts("a", 12..15);
    want.extend(texts("b", 0..2));
    assert_eq!(got, want, "the rest of the old file, then the new one");
    assert!(
        h.keys[..3].iter().all(|k| *k == first_key),
        "the old file keeps its source key"
    );
    assert_ne!(h.keys[3], first_key, "the new file is another source");
    assert_eq!(h.counters.unaccounted_bytes.load(Relaxed), 0);
    // Nothing is read twice later, nor after another restart.
    assert_eq!(h.poll(Duration::from_secs(20)), vec![]);
    let registry = reloaded(&h.registry);
    let mut h = Harness::with_registry(settings(&[&log]), registry);
    assert_eq!(h.poll(S), vec![]);
}

#[test]
fn rename_while_stopped_is_read_from_the_checkpoint_before_the_new_file() {
    rotated_while_stopped(|log| fs::rename(log, log.with_extension("log.1")).unwrap());
}

#[test]
fn dated_rename_and_gzip_while_stopped_is_read_from_the_checkpoint() {
    rotated_while_stopped(|log| {
        let dated = log.with_file_name("access.log-20250101");
        fs::rename(log, &dated).unwrap();
        let content = fs::read_to_string(&dated).unwrap();
        gzip(&log.with_file_name("access.log-20250101.gz"), &content);
        fs::remove_file(&dated).unwrap();
    });
}

#[test]
fn numbered_rotations_shifted_while_stopped_are_followed() {
    // access.log → access.log.1 → access.log.2.gz, an older access.log.1.gz
    // (other content) in between.
    rotated_while_stopped(|log| {
        let dir = log.parent().unwrap();
        gzip(&dir.join("access.log.1.gz"), &lines("z", 0..20));
        // Older by its time (file times are coarse: written in one tick, the
        // lower rotation number would make it the newer).
        set_mtime(&dir.join("access.log.1.gz"), 400);
        let content = fs::read_to_string(log).unwrap();
        gzip(&dir.join("access.log.2.gz"), &content);
        fs::remove_file(log).unwrap();
    });
}

#[test]
fn a_rotation_found_nowhere_is_counted_and_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, &lines("a", 0..12));
    let s = settings(&[&log]);
    let mut h = Harness::new(s.clone());
    h.ack = false; // Kafka acknowledges nothing: the checkpoint stays at 0.
    assert_eq!(h.poll(S).len(), 12);
    let size = fs::metadata(&log).unwrap().len();
    let registry = reloaded(&h.registry);
    drop(h);

    // Rotated elsewhere (another directory); an unrelated rotation stays.
    let elsewhere = tempfile::tempdir().unwrap();
    fs::rename(&log, elsewhere.path().join("access.log.1")).unwrap();
    append(&dir.path().join("access.log.2"), &lines("z", 0..20));
    append(&log, &lines("b", 0..2));

    let mut h = Harness::with_registry(s, registry);
    assert_eq!(Harness::texts(&h.poll(S)), texts("b", 0..2));
    assert_eq!(h.counters.unaccounted_bytes.load(Relaxed), size);
}

#[test]
fn a_file_still_in_place_is_not_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, &lines("a", 0..12));
    // A copy with the same content among its rotations is not read.
    fs::copy(&log, dir.path().join("access.log.1")).unwrap();
    let s = settings(&[&log]);
    let mut h = Harness::new(s.clone());
    assert_eq!(h.poll(S).len(), 12);
    let registry = reloaded(&h.registry);
    append(&log, &lines("a", 12..13));
    let mut h = Harness::with_registry(s, registry);
    assert_eq!(Harness::texts(&h.poll(S)), texts("a", 12..13));
}

#[test]
fn files_read_once_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut s = settings(&[&log]);
    s.follow = false;
    let err = s.check_inputs().unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::NoInput);
    assert!(err.to_string().contains("access.log"), "{err}");
    let glob = settings(&[&dir.path().join("*.log")]);
    let mut once = glob.clone();
    once.follow = false;
    let err = once.check_inputs().unwrap_err();
    assert!(err.to_string().contains("matches no file"), "{err}");
    glob.check_inputs()
        .expect("a followed source waits for its files");
    append(&log, "a\n");
    s.check_inputs().unwrap();
    once.check_inputs().unwrap();
}

#[test]
fn logs_with_the_same_content_are_distinct_sources() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("other")).unwrap();
    let content = lines("a", 0..12);
    let files = [
        dir.path().join("a.log"),
        dir.path().join("b.log"),
        dir.path().join("other").join("a.log"),
    ];
    for f in &files {
        append(f, &content);
    }
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut h = Harness::new(settings(&paths));
    let got = h.poll(S);
    assert_eq!(got.len(), 36, "each file read in full");
    let keys: std::collections::BTreeSet<_> = h.keys.iter().collect();
    assert_eq!(keys.len(), 3, "one source key per file");
}

// ---------------------------------------------------------------------------
// Copies and generations found among the rotations

fn truncate(path: &Path) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs_ago);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Warnings logged while `f` runs (on this thread).
fn warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    let out = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}

#[test]
fn copytruncate_with_only_the_live_file_named_reads_the_copy_tail_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, &lines("a", 0..12));
    let mut h = Harness::new(settings(&[&log]));
    assert_eq!(Harness::texts(&h.poll(S)), texts("a", 0..12));
    let first_key = h.keys[0];
    // Written after our last read, then copied (and more lines after the
    // copy: in neither file), then truncated and rewritten.
    append(&log, &lines("a", 12..15));
    fs::copy(&log, dir.path().join("access.log.1")).unwrap();
    append(&log, &lines("lost", 0..2));
    truncate(&log);
    append(&log, &lines("b", 0..2));
    let got = h.poll_texts(3);
    let want = texts_of(&[("a", 12..15), ("b", 0..2)]);
    assert_eq!(got, want, "the copy's tail, then the new content, once");
    assert!(h.keys[12..15].iter().all(|k| *k == first_key));
    // Nothing again after a restart either, and no warning.
    let registry = reloaded(&h.registry);
    let mut h = Harness::with_registry(settings(&[&log]), registry);
    let (got, warned) = warnings(|| h.poll(Duration::from_secs(20)));
    assert_eq!(got, vec![]);
    assert_eq!(warned, "");
    assert_eq!(h.counters.unaccounted_bytes.load(Relaxed), 0);
}

#[test]
fn generations_never_checkpointed_are_read_between_the_recovered_file_and_the_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let rot = |n: u32| dir.path().join(format!("access.log.{n}"));
    // An old rotation read long ago, its checkpoint forgotten: not read again.
    append(&rot(3), &lines("z", 0..12));
    set_mtime(&rot(3), 400);
    let (s, registry) = read_then_stop(&log);

    // Stopped: two rotations.
    append(&log, &lines("a", 12..15));
    fs::rename(&log, rot(1)).unwrap();
    set_mtime(&rot(1), 300);
    append(&log, &lines("b", 0..12));
    fs::rename(rot(1), rot(2)).unwrap();
    fs::rename(&log, rot(1)).unwrap();
    set_mtime(&rot(1), 200);
    append(&log, &lines("c", 0..12));

    let mut h = Harness::with_registry(s.clone(), registry);
    let got = h.poll_texts(3);
    let want = texts_of(&[("a", 12..15), ("b", 0..12), ("c", 0..12)]);
    assert_eq!(
        got, want,
        "old rest, middle generation, live file, each once"
    );
    assert_eq!(h.counters.unaccounted_bytes.load(Relaxed), 0);
    // A kill while the middle generation is read, or a clean restart: nothing twice.
    let registry = reloaded(&h.registry);
    let mut h = Harness::with_registry(s, registry);
    assert_eq!(h.poll(S), vec![]);
}

#[test]
fn a_copy_ending_before_the_checkpoint_was_read_already() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, &lines("a", 0..12));
    let s = settings(&[&log]);
    // Copied; a line in the copytruncate window is read; stopped; truncated.
    fs::copy(&log, dir.path().join("access.log.1")).unwrap();
    append(&log, &lines("w", 0..1));
    let mut h = Harness::new(s.clone());
    assert_eq!(h.poll(S).len(), 13);
    let registry = reloaded(&h.registry);
    drop(h);
    truncate(&log);
    append(&log, &lines("b", 0..2));
    let mut h = Harness::with_registry(s, registry);
    let (got, warned) = warnings(|| h.poll(S));
    assert_eq!(Harness::texts(&got), texts("b", 0..2));
    assert_eq!(warned, "", "no warning for a copy read past its end");
    assert_eq!(h.counters.unaccounted_bytes.load(Relaxed), 0);
}

#[test]
fn a_recovered_rotation_killed_before_its_acknowledgements_is_recovered_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (s, registry) = read_then_stop(&log);

    // Rotated while stopped; the restart reads the rest of the old file and
    // the new one, but is killed before Kafka acknowledges any of it.
    append(&log, &lines("a", 12..15));
    fs::rename(&log, log.with_extension("log.1")).unwrap();
    append(&log, &lines("b", 0..2));
    let mut h = Harness::with_registry(s.clone(), registry);
    h.ack = false;
    let mut got = Harness::texts(&h.poll(S));
    got.extend(Harness::texts(&h.poll(S)));
    assert_eq!(got.len(), 5);
    let registry = reloaded(&h.registry);
    drop(h);

    // The next restart reads both again, from their checkpoints.
    append(&log, &lines("b", 2..3));
    let mut h = Harness::with_registry(s, registry);
    let mut got = Harness::texts(&h.poll(S));
    got.extend(Harness::texts(&h.poll(S)));
    let mut want = texts("a", 12..15);
    want.extend(texts("b", 0..3));
    assert_eq!(got, want, "the rest of the old file, then the new one");
    assert_eq!(h.counters.unaccounted_bytes.load(Relaxed), 0);
}

#[test]
fn a_generation_with_the_recovered_file_s_modification_time_is_read_too() {
    // Rotated twice while stopped, both rotations stamped with one time (a
    // coarse file system, or a tool that keeps times): the younger one is
    // told by its rotation number.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let rot = |n: u32| dir.path().join(format!("access.log.{n}"));
    let (s, registry) = read_then_stop(&log);

    append(&log, &lines("a", 12..15));
    fs::rename(&log, rot(1)).unwrap();
    append(&log, &lines("b", 0..12));
    fs::rename(rot(1), rot(2)).unwrap();
    fs::rename(&log, rot(1)).unwrap();
    let t = SystemTime::now() - Duration::from_secs(100);
    for n in [1, 2] {
        File::options()
            .write(true)
            .open(rot(n))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    append(&log, &lines("c", 0..2));

    let mut h = Harness::with_registry(s.clone(), registry);
    let got = h.poll_texts(3);
    let want = texts_of(&[("a", 12..15), ("b", 0..12), ("c", 0..2)]);
    assert_eq!(got, want, "old rest, middle generation, live file");
    let registry = reloaded(&h.registry);
    let mut h = Harness::with_registry(s, registry);
    assert_eq!(h.poll(S), vec![]);
}
