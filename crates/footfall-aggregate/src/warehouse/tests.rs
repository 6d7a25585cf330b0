//! The warehouse's unit tests: layout, atomic writes, locks and retention.

use std::sync::Arc;

use super::*;
use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::basic::Compression;
use parquet::file::properties::EnabledStatistics;
use parquet::schema::types::ColumnPath;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn small_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ],
    )
    .unwrap()
}

#[test]
fn names_parse_and_format() {
    assert_eq!(parse_event_file("part-3-1200.parquet"), Some((3, 1200)));
    assert_eq!(parse_event_file("part-3.parquet"), None);
    assert_eq!(parse_date_dir("date=2015-05-17"), Some(d("2015-05-17")));
    assert_eq!(parse_date_dir("date=2015-13-17"), None);
    assert!(temp_of_partition(".part-1-0.parquet.tmp", 1));
    assert!(!temp_of_partition(".day.parquet.tmp", 1));
    assert!(!temp_of_partition(".part-12-0.parquet.tmp", 1));
    assert_eq!(parse_v1_summary_file("part-3.parquet"), Some(3));
    assert_eq!(parse_v1_summary_file(SUMMARY_FILE), None);
    let wh = Warehouse::new("/wh");
    assert_eq!(
        wh.events_path(d("2015-05-17"), 2, 40),
        PathBuf::from("/wh/events/date=2015-05-17/part-2-40.parquet")
    );
    assert_eq!(
        wh.summary_path(Table::PagesDaily, d("2015-05-17")),
        PathBuf::from("/wh/pages_daily/date=2015-05-17/day.parquet")
    );
}

#[test]
fn a_pending_writer_gives_the_same_bytes_however_its_batches_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::new(dir.path());
    let n = 3 * WRITE_SLICE_ROWS + 123;
    let keys: Vec<String> = (0..n).map(|i| format!("key-{}", i % 977)).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]));
    let all = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(keys)),
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
        ],
    )
    .unwrap();
    let mut files = Vec::new();
    for cut in [n, 1000, 777, WRITE_SLICE_ROWS, 1] {
        let path = wh.events_path(d("2015-05-17"), 0, cut as i64);
        let mut w = wh.pending_writer(&path, schema.clone()).unwrap();
        let mut at = 0;
        while at < n {
            let len = cut.min(n - at);
            w.write(&all.slice(at, len)).unwrap();
            at += len;
        }
        assert_eq!(w.rows(), n as u64);
        files.push(fs::read(w.finish().unwrap().persist().unwrap()).unwrap());
    }
    for f in &files[1..] {
        assert!(f == &files[0], "the same rows, other bytes");
    }
}

#[test]
fn pending_files_are_invisible_until_persisted_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::new(dir.path());
    let path = wh.events_path(d("2015-05-17"), 0, 0);
    let pending = wh.write_pending(&path, &small_batch()).unwrap();
    assert!(!path.exists());
    assert!(
        wh.event_files().unwrap().is_empty(),
        "temporary files are not listed"
    );
    pending.persist().unwrap();
    let files = wh.event_files().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!((files[0].partition, files[0].start_offset), (0, 0));
    let back = read_parquet(&path, None).unwrap();
    assert_eq!(back, vec![small_batch()]);
    let only_n = read_parquet(&path, Some(&["n"])).unwrap();
    assert_eq!(only_n[0].num_columns(), 1);
    assert_eq!(only_n[0].schema().field(0).name(), "n");
    // Same input, same bytes.
    let first = fs::read(&path).unwrap();
    wh.write_pending(&path, &small_batch())
        .unwrap()
        .persist()
        .unwrap();
    assert_eq!(fs::read(&path).unwrap(), first);
    // zstd and statistics are in the footer.
    let reader =
        parquet::file::serialized_reader::SerializedFileReader::new(File::open(&path).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    let col = reader.metadata().row_group(0).column(1);
    assert!(
        matches!(col.compression(), Compression::ZSTD(_)),
        "{:?}",
        col.compression()
    );
    assert!(col.statistics().is_some());
}

#[test]
fn second_exclusive_lock_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::new(dir.path());
    let held = wh.lock(LockMode::Exclusive).unwrap();
    let err = wh.lock(LockMode::Exclusive).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Locked);
    assert_eq!(
        wh.lock(LockMode::Shared).unwrap_err().kind(),
        crate::ErrorKind::Locked
    );
    drop(held);
    let a = wh.lock(LockMode::Shared).unwrap();
    let _b = wh.lock(LockMode::Shared).unwrap();
    assert_eq!(
        wh.lock(LockMode::Exclusive).unwrap_err().kind(),
        crate::ErrorKind::Locked
    );
    let p = wh.lock_partition(1).unwrap();
    assert_eq!(
        wh.lock_partition(1).unwrap_err().kind(),
        crate::ErrorKind::Locked
    );
    let _p2 = wh.lock_partition(2).unwrap();
    drop((a, p));
    wh.lock_partition(1).unwrap();
    // Date locks wait for their holder, then give up.
    let day = d("2015-05-17");
    let held = wh.lock_date(day, Duration::ZERO).unwrap();
    let t = Instant::now();
    let err = wh.lock_date(day, Duration::from_millis(200)).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Locked);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
    });
    wh.lock_date(day, Duration::from_secs(10)).unwrap();
    releaser.join().unwrap();
    let dates = BTreeSet::from([day, d("2015-05-18")]);
    let both = wh.lock_dates(&dates, Duration::ZERO).unwrap();
    assert_eq!(both.len(), 2);
}

#[test]
fn retention_drops_old_event_dates_only() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::new(dir.path());
    wh.create().unwrap();
    wh.write_meta(&WarehouseMeta {
        format: LAYOUT_VERSION,
        id: None,
        topic: "t".into(),
        group: None,
        retained_from: None,
        replica: None,
        staging: None,
        summary: None,
    })
    .unwrap();
    for (date, p) in [
        ("2015-05-10", 0),
        ("2015-05-15", 0),
        ("2015-05-15", 1),
        ("2015-05-16", 0),
        ("2015-05-17", 1),
        // A date in the future (a wrong clock in a log) moves nothing.
        ("2099-01-01", 0),
    ] {
        wh.write_pending(&wh.events_path(d(date), p, 0), &small_batch())
            .unwrap()
            .persist()
            .unwrap();
        wh.write_pending(
            &wh.summary_path(Table::TrafficDaily, d(date)),
            &small_batch(),
        )
        .unwrap()
        .persist()
        .unwrap();
    }
    let today = d("2015-05-17");
    let wait = Duration::ZERO;
    // Shared mode, partition 0 only: 05-15's partition 1 file stays, so does the directory.
    let dropped = wh
        .apply_retention(2, today, Some(&BTreeSet::from([0])), wait)
        .unwrap();
    assert_eq!(dropped, vec![d("2015-05-10"), d("2015-05-15")]);
    let left: Vec<_> = wh
        .event_files()
        .unwrap()
        .into_iter()
        .map(|f| (f.date, f.partition))
        .collect();
    assert_eq!(
        left,
        vec![
            (d("2015-05-15"), 1),
            (d("2015-05-16"), 0),
            (d("2015-05-17"), 1),
            (d("2099-01-01"), 0)
        ]
    );
    assert!(!dir.path().join("events/date=2015-05-10").exists());
    assert_eq!(
        wh.read_meta().unwrap().unwrap().retained_from,
        Some(d("2015-05-16"))
    );
    // Exclusive: everything before the horizon.
    assert_eq!(
        wh.apply_retention(2, today, None, wait).unwrap(),
        vec![d("2015-05-15")]
    );
    assert_eq!(wh.event_files().unwrap().len(), 3);
    // Summaries stay.
    assert!(wh
        .summary_path(Table::TrafficDaily, d("2015-05-10"))
        .is_file());
    assert_eq!(
        wh.apply_retention(0, today, None, wait).unwrap_err().kind(),
        crate::ErrorKind::Config
    );
    // The next day moves the horizon by a day; the horizon never goes back.
    let next = today.succ_opt().unwrap();
    assert_eq!(
        wh.apply_retention(2, next, None, wait).unwrap(),
        vec![d("2015-05-16")]
    );
    assert!(wh.apply_retention(5, today, None, wait).unwrap().is_empty());
    assert_eq!(
        wh.read_meta().unwrap().unwrap().retained_from,
        Some(d("2015-05-17"))
    );
}

#[test]
fn a_relative_warehouse_path_is_created() {
    // `wh` relative to the working directory: its parent is the empty path.
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    let mut rel = PathBuf::new();
    for _ in cwd.components().skip(1) {
        rel.push("..");
    }
    let rel = rel.join(dir.path().strip_prefix("/").unwrap()).join("wh");
    assert!(rel.is_relative());
    let wh = Warehouse::new(&rel);
    wh.create().unwrap();
    wh.lock(LockMode::Exclusive).unwrap();
    assert!(dir.path().join("wh").is_dir());
    assert_eq!(parent_dir(Path::new("wh")), Some(Path::new(".")));
}

#[test]
fn sweeps_temporary_files_by_partition() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::new(dir.path());
    let a = wh
        .write_pending(&wh.events_path(d("2015-05-17"), 1, 0), &small_batch())
        .unwrap();
    let b = wh
        .write_pending(&wh.events_path(d("2015-05-17"), 2, 0), &small_batch())
        .unwrap();
    let c = wh
        .write_pending(
            &wh.summary_path(Table::Visits, d("2015-05-17")),
            &small_batch(),
        )
        .unwrap();
    assert_eq!(wh.sweep_temp_files(Some(&BTreeSet::from([2]))).unwrap(), 1);
    assert!(a.tmp.exists() && !b.tmp.exists() && c.tmp.exists());
    assert_eq!(wh.sweep_date_temp_files(d("2015-05-16")).unwrap(), 0);
    assert_eq!(wh.sweep_date_temp_files(d("2015-05-17")).unwrap(), 1);
    assert!(a.tmp.exists() && !c.tmp.exists());
    assert_eq!(wh.sweep_temp_files(None).unwrap(), 1);
    assert!(!a.tmp.exists());
}

#[test]
fn random_ids_get_no_statistics_and_event_ids_no_dictionary() {
    let props = writer_properties();
    let col = |c: &str| ColumnPath::from(c);
    assert_eq!(
        props.statistics_enabled(&col("event_id")),
        EnabledStatistics::None
    );
    assert_eq!(
        props.statistics_enabled(&col("visitor_id")),
        EnabledStatistics::None
    );
    assert!(!props.dictionary_enabled(&col("event_id")));
    assert!(props.dictionary_enabled(&col("visitor_id")));
    for kept in ["ts", "site", "path", "status"] {
        assert_eq!(
            props.statistics_enabled(&col(kept)),
            EnabledStatistics::Page
        );
        assert!(props.dictionary_enabled(&col(kept)));
    }
}

#[test]
fn a_warehouse_path_that_is_a_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warehouse");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = Warehouse::open(&file, None).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Config);
    assert!(err.to_string().contains("is not a directory"), "{err}");
    // A path that does not exist yet is a new warehouse.
    assert!(Warehouse::open(dir.path().join("new"), None).is_ok());
}
