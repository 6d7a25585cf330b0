//! Independent pieces of a run's work (dates, periods) on a few threads.
//!
//! Contract: [`map`] calls `work` once on every item, on at most `threads`
//! scoped threads that each take the next item nobody has taken yet, and
//! returns the results in item order, so the caller merges them exactly as a
//! loop would. `done` runs on the calling thread once per finished item, with
//! the number finished so far (progress). After a failure no further item is
//! started (those already started finish); the error returned is that of the
//! first failed item in item order. With one thread (or one item) the items
//! run in order on the calling thread.
//!
//! [`ahead`] runs an iterator one step ahead of its consumer: a scoped thread
//! takes its items (decoding a Parquet file's batches, say) while the calling
//! thread consumes the ones before, through a queue of a few items. The
//! consumer sees the same items in the same order as without it.
//!
//! [`both`] runs two closures side by side, one on a scoped thread, and
//! returns both results; a panic in either reaches the caller.
//!
//! What may run side by side is the caller's business: the run writes each
//! date's events files independently, then each date's summaries (which read
//! the files of the date and the day before it, all written by then), then
//! each week's and month's visitors.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// Runs `work` on every item on up to `threads` threads; results in item order.
pub(crate) fn map<I, T, E>(
    items: &[I],
    threads: usize,
    work: impl Fn(&I) -> Result<T, E> + Sync,
    mut done: impl FnMut(usize),
) -> Result<Vec<T>, E>
where
    I: Sync,
    T: Send,
    E: Send,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        let mut out = Vec::with_capacity(items.len());
        for (n, item) in items.iter().enumerate() {
            out.push(work(item)?);
            done(n + 1);
        }
        return Ok(out);
    }
    let mut slots: Vec<Option<Result<T, E>>> = items.iter().map(|_| None).collect();
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(usize, Result<T, E>)>();
        for _ in 0..threads {
            let (tx, next, failed, work) = (tx.clone(), &next, &failed, &work);
            s.spawn(move || {
                while !failed.load(Ordering::Acquire) {
                    let i = next.fetch_add(1, Ordering::AcqRel);
                    let Some(item) = items.get(i) else { break };
                    let result = work(item);
                    if result.is_err() {
                        failed.store(true, Ordering::Release);
                    }
                    if tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (finished, (i, result)) in rx.into_iter().enumerate() {
            slots[i] = Some(result);
            done(finished + 1);
        }
    });
    // Items are taken in order, so every item before a failed one ran: the
    // first error in item order comes before any item that never started.
    let mut out = Vec::with_capacity(items.len());
    for slot in slots {
        match slot {
            Some(Ok(t)) => out.push(t),
            Some(Err(e)) => return Err(e),
            None => unreachable!("an item is skipped only after an earlier one failed"),
        }
    }
    Ok(out)
}

/// Hands `consume` the items of `items`, taken on a scoped thread of their own
/// up to `depth` items ahead (`depth` 0: on the calling thread, as they are
/// consumed). If `consume` returns before the end, the thread stops after
/// the item it is taking.
pub(crate) fn ahead<T: Send, R>(
    items: impl Iterator<Item = T> + Send,
    depth: usize,
    consume: impl FnOnce(&mut dyn Iterator<Item = T>) -> R,
) -> R {
    if depth == 0 {
        return consume(&mut { items });
    }
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(depth);
        s.spawn(move || {
            for item in items {
                if tx.send(item).is_err() {
                    break;
                }
            }
        });
        consume(&mut rx.into_iter())
    })
}

/// `a` on a scoped thread of its own while `b` runs on the calling thread;
/// both results, once both are done.
pub(crate) fn both<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = b();
        (a.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), b)
    })
}

/// How far [`ahead`] should read for each of `busy` items worked on side by
/// side on `threads` threads: one batch when a thread is left over, else
/// nothing (the reading stays on the item's own thread).
pub(crate) fn read_ahead(threads: usize, busy: usize) -> usize {
    usize::from(threads > busy)
}

/// The default number of threads of a run: the machine's cores, at most 4
/// (each thread holds one date's or one period's working state).
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn both_runs_side_by_side_and_passes_a_panic_on() {
        let caller = std::thread::current().id();
        let (a, b) = both(
            || std::thread::current().id(),
            || std::thread::current().id(),
        );
        assert_ne!(a, caller, "`a` runs on a thread of its own");
        assert_eq!(b, caller, "`b` runs on the calling thread");
        let panicked = std::panic::catch_unwind(|| both(|| panic!("in a"), || 2));
        assert!(panicked.is_err());
    }

    #[test]
    fn results_come_back_in_item_order_whatever_the_threads() {
        let items: Vec<u64> = (0..100).collect();
        for threads in [1, 2, 3, 8, 200] {
            let mut calls = 0;
            let out = map(
                &items,
                threads,
                |&i| -> Result<u64, ()> {
                    // Uneven work, so that threads finish out of order.
                    std::thread::sleep(std::time::Duration::from_micros((i * 37) % 11 * 50));
                    Ok(i * i)
                },
                |n| {
                    calls += 1;
                    assert_eq!(n, calls);
                },
            )
            .unwrap();
            assert_eq!(out, items.iter().map(|i| i * i).collect::<Vec<_>>());
            assert_eq!(calls, items.len(), "{threads} threads");
        }
    }

    #[test]
    fn the_first_failure_in_item_order_is_returned_and_nothing_starts_after_it() {
        for threads in [1, 2, 4] {
            let started = Mutex::new(Vec::new());
            let items: Vec<u32> = (0..50).collect();
            let err = map(
                &items,
                threads,
                |&i| {
                    started.lock().unwrap().push(i);
                    match i {
                        7 | 9 => Err(i),
                        _ => {
                            std::thread::sleep(std::time::Duration::from_millis(2));
                            Ok(i)
                        }
                    }
                },
                |_| {},
            )
            .unwrap_err();
            assert_eq!(err, 7, "{threads} threads");
            // Once 7 failed, each other thread finishes at most the item it
            // holds and one it took before it saw the failure.
            let started = started.into_inner().unwrap();
            let last = *started.iter().max().unwrap();
            assert!(
                last <= 7 + 2 * threads as u32,
                "{threads} threads started {started:?}"
            );
        }
    }

    #[test]
    fn ahead_hands_over_every_item_in_order_and_stops_when_told() {
        for depth in [0, 1, 3] {
            let got: Vec<u32> = ahead(0..1000u32, depth, |it| it.collect());
            assert_eq!(got, (0..1000).collect::<Vec<_>>(), "depth {depth}");
            let taken = AtomicUsize::new(0);
            let counted = (0..1000u32).inspect(|_| {
                taken.fetch_add(1, Ordering::Relaxed);
            });
            let first: Vec<u32> = ahead(counted, depth, |it| it.take(5).collect());
            assert_eq!(first, vec![0, 1, 2, 3, 4]);
            // The producer stops within the queue's depth (and the item it
            // held) of the last item consumed.
            let n = taken.load(Ordering::Relaxed);
            assert!((5..=5 + depth + 1).contains(&n), "depth {depth}: {n} taken");
        }
    }

    #[test]
    fn no_items_is_no_work() {
        let out: Vec<u8> = map(&[] as &[u8], 4, |_| Ok::<u8, ()>(1), |_| panic!()).unwrap();
        assert!(out.is_empty());
    }
}
