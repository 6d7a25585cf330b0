//! Bytes of a date's kept state ([`super::state`]): a fixed-layout
//! little-endian encoding of the rows, tallies and visits, streamed to a
//! writer and from a reader (the file itself is the caller's).
//!
//! Every value writes itself with [`Codec::put`] and reads itself back with
//! [`Codec::take`], which gives `None` on bytes that end early or do not
//! decode; a reader then treats the whole state as absent and rebuilds it.
//! Vectors are their length (u64) and their items, numbers in bulk; maps
//! are their length and entries.

use std::hash::Hash;
use std::io::{Read, Write};

use super::count::{Client, Cursor, Head, OpenVisit, Page, Route, Tally, Traffic, Visit};
use super::hot::Hot;
use super::rows::{Interner, Rows};
use crate::hash::FxHashMap;
use crate::sessions::Sessionizer;

/// Where values are written: the first write error is kept and ends the
/// writing ([`Out::finish`]).
pub(super) struct Out<'a> {
    w: &'a mut dyn Write,
    err: Option<std::io::Error>,
    written: u64,
}

impl<'a> Out<'a> {
    pub(super) fn new(w: &'a mut dyn Write) -> Self {
        Out {
            w,
            err: None,
            written: 0,
        }
    }

    /// Bytes written so far.
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    fn bytes(&mut self, b: &[u8]) {
        self.written += b.len() as u64;
        if self.err.is_none() {
            self.err = self.w.write_all(b).err();
        }
    }

    pub(super) fn finish(self) -> std::io::Result<()> {
        self.err.map_or(Ok(()), Err)
    }
}

/// Where values are read from, `left` bytes at most: a length beyond them
/// is corrupt, and reserves no memory.
pub(super) struct In<'a> {
    r: &'a mut dyn Read,
    left: u64,
}

impl<'a> In<'a> {
    pub(super) fn new(r: &'a mut dyn Read, len: u64) -> Self {
        In { r, left: len }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Option<()> {
        self.left = self.left.checked_sub(buf.len() as u64)?;
        self.r.read_exact(buf).ok()
    }

    /// Whether every byte was read.
    pub(super) fn is_done(&self) -> bool {
        self.left == 0
    }
}

/// A value with a byte encoding.
pub(super) trait Codec: Sized {
    fn put(&self, out: &mut Out<'_>);
    fn take(r: &mut In<'_>) -> Option<Self>;

    /// Writes many (numbers override this to write them in bulk).
    fn put_all(items: &[Self], out: &mut Out<'_>) {
        items.iter().for_each(|v| v.put(out));
    }

    /// Reads `n` more into `into`.
    fn take_all(r: &mut In<'_>, n: usize, into: &mut Vec<Self>) -> Option<()> {
        for _ in 0..n {
            into.push(Self::take(r)?);
        }
        Some(())
    }
}

/// Items converted per chunk of a bulk read or write.
const CHUNK: usize = 8192;

/// Fixed-size little-endian numbers.
trait Le: Copy {
    const SIZE: usize;
    fn put_le(self, buf: &mut Vec<u8>);
    fn from_le(b: &[u8]) -> Self;
}

/// Writes numbers in bulk, `CHUNK` at a time.
fn put_plain<T: Le>(items: &[T], out: &mut Out<'_>) {
    let mut buf = Vec::with_capacity(CHUNK * T::SIZE);
    for chunk in items.chunks(CHUNK) {
        buf.clear();
        chunk.iter().for_each(|v| v.put_le(&mut buf));
        out.bytes(&buf);
    }
}

/// Reads `n` numbers of [`put_plain`] into `into`.
fn take_plain<T: Le>(r: &mut In<'_>, n: usize, into: &mut Vec<T>) -> Option<()> {
    let mut buf = vec![0u8; CHUNK * T::SIZE];
    let mut left = n;
    into.reserve(n);
    while left > 0 {
        let k = left.min(CHUNK);
        r.fill(&mut buf[..k * T::SIZE])?;
        into.extend(buf[..k * T::SIZE].chunks_exact(T::SIZE).map(T::from_le));
        left -= k;
    }
    Some(())
}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl Le for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline]
            fn put_le(self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn from_le(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("SIZE bytes"))
            }
        }
    )*};
}
numbers!(u8, u16, u32, u64, i32, i64);

macro_rules! plain_codec {
    ($($t:ty),*) => {$(
        impl Codec for $t {
            #[inline]
            fn put(&self, out: &mut Out<'_>) {
                out.bytes(&self.to_le_bytes());
            }
            #[inline]
            fn take(r: &mut In<'_>) -> Option<Self> {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                r.fill(&mut b)?;
                Some(<$t>::from_le_bytes(b))
            }
            fn put_all(items: &[Self], out: &mut Out<'_>) {
                put_plain(items, out);
            }
            fn take_all(r: &mut In<'_>, n: usize, into: &mut Vec<Self>) -> Option<()> {
                take_plain(r, n, into)
            }
        }
    )*};
}
plain_codec!(u8, u16, u64, i32, i64);

/// Many `u32`s (the rows' string codes, mostly) are written narrow when that
/// is shorter: a width byte, then for width 1 or 2 the distinct values
/// (count u64, values ascending) and each item as the index of its value;
/// for width 4 the values themselves.
impl Codec for u32 {
    #[inline]
    fn put(&self, out: &mut Out<'_>) {
        out.bytes(&self.to_le_bytes());
    }
    #[inline]
    fn take(r: &mut In<'_>) -> Option<Self> {
        let mut b = [0u8; 4];
        r.fill(&mut b)?;
        Some(u32::from_le_bytes(b))
    }
    fn put_all(items: &[Self], out: &mut Out<'_>) {
        let distinct = distinct(items);
        let width = match distinct.as_ref().map(Vec::len) {
            Some(d) if d <= 1 << 8 => 1u8,
            Some(d) if d <= 1 << 16 => 2,
            _ => 4,
        };
        width.put(out);
        let Some(values) = distinct.filter(|_| width < 4) else {
            return put_plain(items, out);
        };
        (values.len() as u64).put(out);
        put_plain(&values, out);
        let max = values.last().map_or(0, |&v| v as usize);
        let mut index = vec![0u16; max + 1];
        for (i, &v) in values.iter().enumerate() {
            index[v as usize] = i as u16;
        }
        let narrow: Vec<u16> = items.iter().map(|&v| index[v as usize]).collect();
        match width {
            1 => put_plain(&narrow.iter().map(|&i| i as u8).collect::<Vec<u8>>(), out),
            _ => put_plain(&narrow, out),
        }
    }
    fn take_all(r: &mut In<'_>, n: usize, into: &mut Vec<Self>) -> Option<()> {
        let width = u8::take(r)?;
        if width == 4 {
            return take_plain(r, n, into);
        }
        let mut values = Vec::new();
        let count = length(r)?;
        take_plain(r, count, &mut values)?;
        let value = |i: usize| values.get(i).copied();
        into.reserve(n);
        match width {
            1 => {
                let mut narrow = Vec::new();
                take_plain::<u8>(r, n, &mut narrow)?;
                for i in narrow {
                    into.push(value(i as usize)?);
                }
            }
            2 => {
                let mut narrow = Vec::new();
                take_plain::<u16>(r, n, &mut narrow)?;
                for i in narrow {
                    into.push(value(i as usize)?);
                }
            }
            _ => return None,
        }
        Some(())
    }
}

/// The distinct values of `items`, ascending, when there are at most 65,536
/// of them and the largest is below 2^24 (else `None`: written plain).
fn distinct(items: &[u32]) -> Option<Vec<u32>> {
    let max = items.iter().copied().max().unwrap_or(0);
    if max >= 1 << 24 || items.len() < 1024 {
        return None;
    }
    let mut seen = vec![false; max as usize + 1];
    let mut count = 0usize;
    for &v in items {
        if !std::mem::replace(&mut seen[v as usize], true) {
            count += 1;
            if count > 1 << 16 {
                return None;
            }
        }
    }
    Some((0..=max).filter(|&v| seen[v as usize]).collect())
}

impl Codec for bool {
    fn put(&self, out: &mut Out<'_>) {
        u8::from(*self).put(out);
    }
    fn take(r: &mut In<'_>) -> Option<Self> {
        match u8::take(r)? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn put_all(items: &[Self], out: &mut Out<'_>) {
        let bytes: Vec<u8> = items.iter().map(|&b| u8::from(b)).collect();
        u8::put_all(&bytes, out);
    }
    fn take_all(r: &mut In<'_>, n: usize, into: &mut Vec<Self>) -> Option<()> {
        let mut bytes = Vec::with_capacity(n);
        u8::take_all(r, n, &mut bytes)?;
        into.reserve(n);
        for b in bytes {
            into.push(match b {
                0 => false,
                1 => true,
                _ => return None,
            });
        }
        Some(())
    }
}

impl<T: Codec, const N: usize> Codec for [T; N] {
    fn put(&self, out: &mut Out<'_>) {
        self.iter().for_each(|v| v.put(out));
    }
    fn take(r: &mut In<'_>) -> Option<Self> {
        let items: Vec<T> = (0..N).map(|_| T::take(r)).collect::<Option<_>>()?;
        items.try_into().ok()
    }
}

macro_rules! tuples {
    ($(($($n:ident),+)),*) => {$(
        #[allow(non_snake_case)]
        impl<$($n: Codec),+> Codec for ($($n,)+) {
            fn put(&self, out: &mut Out<'_>) {
                let ($($n,)+) = self;
                $($n.put(out);)+
            }
            fn take(r: &mut In<'_>) -> Option<Self> {
                Some(($($n::take(r)?,)+))
            }
        }
    )*};
}
tuples!((A, B), (A, B, C), (A, B, C, D));

/// A length, checked against what is left so that a corrupt length cannot
/// reserve memory the bytes do not hold (each item takes at least one byte).
fn length(r: &mut In<'_>) -> Option<usize> {
    let n = u64::take(r)?;
    (n <= r.left).then_some(n as usize)
}

impl<T: Codec> Codec for Vec<T> {
    fn put(&self, out: &mut Out<'_>) {
        (self.len() as u64).put(out);
        T::put_all(self, out);
    }
    /// Read with room for a sixteenth more (what a run adds to a state's
    /// visits, say), so that the additions do not copy what was read.
    fn take(r: &mut In<'_>) -> Option<Self> {
        let n = length(r)?;
        let mut v = Vec::with_capacity(n + n / 16);
        T::take_all(r, n, &mut v)?;
        Some(v)
    }
}

impl<K: Codec + Hash + Eq, V: Codec> Codec for FxHashMap<K, V> {
    fn put(&self, out: &mut Out<'_>) {
        (self.len() as u64).put(out);
        for (k, v) in self {
            k.put(out);
            v.put(out);
        }
    }
    fn take(r: &mut In<'_>) -> Option<Self> {
        let n = length(r)?;
        let mut m = FxHashMap::default();
        m.reserve(n);
        for _ in 0..n {
            let k = K::take(r)?;
            m.insert(k, V::take(r)?);
        }
        Some(m)
    }
}

impl<T: Codec> Codec for Option<T> {
    fn put(&self, out: &mut Out<'_>) {
        self.is_some().put(out);
        if let Some(v) = self {
            v.put(out);
        }
    }
    fn take(r: &mut In<'_>) -> Option<Self> {
        match bool::take(r)? {
            true => Some(Some(T::take(r)?)),
            false => Some(None),
        }
    }
}

impl Codec for Sessionizer {
    fn put(&self, out: &mut Out<'_>) {
        self.parts().put(out);
    }
    fn take(r: &mut In<'_>) -> Option<Self> {
        Some(Sessionizer::from_parts(Codec::take(r)?))
    }
}

/// How far a growing value had grown: its rows and its interned strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Extent {
    pub rows: usize,
    pub strings: usize,
}

/// A value that only grows, written and read a segment at a time: what it
/// gained since an [`Extent`], read back onto what was read before it.
pub(super) trait Grows {
    fn put_after(&self, from: Extent, out: &mut Out<'_>);
    fn take_onto(&mut self, r: &mut In<'_>) -> Option<()>;
    /// Makes room for growing to `total`, so that reading segments and
    /// adding a run's rows do not copy what was read.
    fn reserve_for(&mut self, total: Extent);
}

impl<T: Codec> Grows for Vec<T> {
    fn put_after(&self, from: Extent, out: &mut Out<'_>) {
        let new = &self[from.rows.min(self.len())..];
        (new.len() as u64).put(out);
        T::put_all(new, out);
    }
    fn take_onto(&mut self, r: &mut In<'_>) -> Option<()> {
        let n = length(r)?;
        T::take_all(r, n, self)
    }
    fn reserve_for(&mut self, total: Extent) {
        self.reserve_exact(total.rows.saturating_sub(self.len()));
    }
}

impl<T: Grows, const N: usize> Grows for [T; N] {
    fn put_after(&self, from: Extent, out: &mut Out<'_>) {
        self.iter().for_each(|v| v.put_after(from, out));
    }
    fn take_onto(&mut self, r: &mut In<'_>) -> Option<()> {
        self.iter_mut().try_for_each(|v| v.take_onto(r))
    }
    fn reserve_for(&mut self, total: Extent) {
        self.iter_mut().for_each(|v| v.reserve_for(total));
    }
}

/// The strings interned since (code 0, the empty string, is never written).
impl Grows for Interner {
    fn put_after(&self, from: Extent, out: &mut Out<'_>) {
        let values = self.values();
        let new = &values[from.strings.clamp(1, values.len())..];
        (new.len() as u64).put(out);
        for s in new {
            (s.len() as u32).put(out);
            out.bytes(s.as_bytes());
        }
    }
    fn take_onto(&mut self, r: &mut In<'_>) -> Option<()> {
        let n = length(r)?;
        let mut buf = Vec::new();
        for _ in 0..n {
            let len = u32::take(r)? as usize;
            (len as u64 <= r.left).then_some(())?;
            buf.resize(len, 0);
            r.fill(&mut buf)?;
            self.add_new(std::str::from_utf8(&buf).ok()?)?;
        }
        Some(())
    }
    fn reserve_for(&mut self, total: Extent) {
        self.reserve(total.strings);
    }
}

/// Implements [`Codec`] for a struct as its fields in order (the fields
/// named are all the struct has; the rest take their default); `grows`:
/// [`Grows`] too, and [`Codec`] as all it gained from nothing.
macro_rules! fields {
    (grows $t:ty { $($f:ident),* }) => {
        impl Grows for $t {
            fn put_after(&self, from: Extent, out: &mut Out<'_>) {
                $(self.$f.put_after(from, out);)*
            }
            fn take_onto(&mut self, r: &mut In<'_>) -> Option<()> {
                $(self.$f.take_onto(r)?;)*
                Some(())
            }
            fn reserve_for(&mut self, total: Extent) {
                $(self.$f.reserve_for(total);)*
            }
        }
        impl Codec for $t {
            fn put(&self, out: &mut Out<'_>) {
                self.put_after(Extent::default(), out);
            }
            fn take(r: &mut In<'_>) -> Option<Self> {
                let mut v = Self::default();
                v.take_onto(r)?;
                Some(v)
            }
        }
    };
    (exact $t:ty { $($f:ident),* }) => {
        impl Codec for $t {
            fn put(&self, out: &mut Out<'_>) {
                $(self.$f.put(out);)*
            }
            fn take(r: &mut In<'_>) -> Option<Self> {
                Some(Self { $($f: Codec::take(r)?,)* })
            }
        }
    };
    ($t:ty { $($f:ident),* }) => {
        impl Codec for $t {
            fn put(&self, out: &mut Out<'_>) {
                $(self.$f.put(out);)*
            }
            // Structs with a mark (counted, never kept) take its default.
            #[allow(clippy::needless_update)]
            fn take(r: &mut In<'_>) -> Option<Self> {
                Some(Self { $($f: Codec::take(r)?,)* ..Default::default() })
            }
        }
    };
}

super::count::with_counters!(fields);
fields!(Head {
    site,
    visitor,
    class,
    hour,
    message,
    utm,
    device,
    browser,
    os,
    medium,
    source,
    ref_host
});
/// Writes one column of `items`: what `get` gives of each.
fn put_column<T: Codec, S>(items: &[S], get: impl Fn(&S) -> T, out: &mut Out<'_>) {
    let column: Vec<T> = items.iter().map(get).collect();
    T::put_all(&column, out);
}

/// Reads one column of `into.len()` into `into` through `f`.
fn take_column<T: Codec, S>(
    r: &mut In<'_>,
    into: &mut [S],
    f: impl Fn(&mut S) -> &mut T,
) -> Option<()> {
    let mut column = Vec::with_capacity(into.len());
    T::take_all(r, into.len(), &mut column)?;
    into.iter_mut().zip(column).for_each(|(s, v)| *f(s) = v);
    Some(())
}

/// `put_all` and `take_all` of a struct written a column at a time, the
/// columns (field paths) in the order they are written, in blocks of
/// [`CHUNK`] items: a block's columns are read into items that are still in
/// the cache, rather than each column into all of them in turn.
macro_rules! columns {
    ($t:ty: $(($($path:tt)+)),* $(,)?) => {
        fn put_all(items: &[Self], out: &mut Out<'_>) {
            for block in items.chunks(CHUNK) {
                $(put_column(block, |v: &$t| v.$($path)+, out);)*
            }
        }
        fn take_all(r: &mut In<'_>, n: usize, into: &mut Vec<Self>) -> Option<()> {
            let start = into.len();
            into.resize(start + n, <$t>::default());
            for block in into[start..].chunks_mut(CHUNK) {
                $(take_column(r, block, |v: &mut $t| &mut v.$($path)+)?;)*
            }
            Some(())
        }
    };
}

/// Visits are written a column at a time, in blocks: codes narrowed, numbers in bulk.
impl Codec for Visit {
    fn put(&self, out: &mut Out<'_>) {
        Self::put_all(std::slice::from_ref(self), out);
    }
    fn take(r: &mut In<'_>) -> Option<Self> {
        let mut one = Vec::with_capacity(1);
        Self::take_all(r, 1, &mut one)?;
        one.pop()
    }
    columns!(Visit:
        (head.site),
        (head.visitor),
        (head.utm[0]),
        (head.utm[1]),
        (head.utm[2]),
        (head.utm[3]),
        (head.utm[4]),
        (head.device),
        (head.browser),
        (head.os),
        (head.medium),
        (head.source),
        (head.ref_host),
        (entry),
        (exit),
        (head.message.1),
        (start_us),
        (end_us),
        (requests),
        (page_views),
        (head.class),
        (head.hour),
        (head.message.0),
    );
}

fields!(Tally {
    traffic,
    hourly,
    pages,
    clients,
    statuses,
    routes,
    transitions,
    search_hits,
    visits
});
fields!(exact OpenVisit {
    in_day,
    first,
    landing,
    start_us,
    end_us,
    requests,
    page_views,
    entry,
    last_page,
    last_page_us
});
fields!(exact Cursor {
    sessions,
    open,
    run
});
fields!(exact Hot {
    class,
    polled,
    at,
    cursor,
    from,
    tail_polling
});
fields!(grows Rows {
    strings,
    in_day,
    ts,
    hour,
    site,
    visitor,
    host,
    method,
    route,
    upstream,
    ref_host,
    medium,
    source,
    search_terms,
    site_search,
    utm,
    browser,
    browser_version,
    os,
    device,
    bot_name,
    status,
    bytes,
    latency,
    is_bot,
    is_pageview,
    kind,
    flags,
    message
});

/// The bytes of `v`.
#[cfg(test)]
pub(super) fn encoded<T: Codec>(v: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut out = Out::new(&mut bytes);
    v.put(&mut out);
    out.finish().expect("a Vec takes every write");
    bytes
}

/// `bytes` decoded, if they are one whole `T`.
#[cfg(test)]
pub(super) fn decoded<T: Codec>(bytes: &[u8]) -> Option<T> {
    let mut r = bytes;
    let mut input = In::new(&mut r, bytes.len() as u64);
    let v = T::take(&mut input)?;
    input.is_done().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Codec>(v: &T) -> T {
        decoded(&encoded(v)).expect("decodes, every byte read")
    }

    #[test]
    fn values_read_back_as_written_and_short_bytes_do_not_decode() {
        type Hit = (u32, (u32, u8), u8, u32);
        let v: Vec<Hit> = vec![(1, (2, 3), 4, u32::MAX), (0, (0, 0), 1, 7)];
        assert_eq!(round_trip(&v), v);
        let m: FxHashMap<((u32, u8), u16, u32), i64> =
            [(((1, 0), 404, 9), -5)].into_iter().collect();
        assert_eq!(round_trip(&m), m);
        assert_eq!(round_trip(&[true, false]), [true, false]);
        let long: Vec<i64> = (0..20_000).map(|i| i * 1_000_003 - 7).collect();
        assert_eq!(round_trip(&long), long, "numbers in bulk, over chunks");
        for (modulus, spread) in [(7u32, 1_000_000u32), (300, 3), (70_000, 1), (5, 1 << 25)] {
            let codes: Vec<u32> = (0..200_000u32).map(|i| (i % modulus) * spread).collect();
            assert_eq!(
                round_trip(&codes),
                codes,
                "codes mod {modulus} times {spread}"
            );
        }
        let codes: Vec<u32> = (0..5000u32).map(|i| i % 3).collect();
        assert!(
            encoded(&codes).len() < 5000 + 100,
            "few distinct codes take a byte each"
        );
        let mut bytes = encoded(&codes);
        *bytes.last_mut().unwrap() = 3;
        assert!(
            decoded::<Vec<u32>>(&bytes).is_none(),
            "an index past the values"
        );
        let flags: Vec<bool> = (0..10_000).map(|i| i % 3 == 0).collect();
        assert_eq!(round_trip(&flags), flags);
        let visits: Vec<Visit> = (0..20_000u32)
            .map(|i| Visit {
                head: Head {
                    site: i % 2,
                    visitor: i * 7,
                    class: (i % 9) as u8,
                    hour: (i % 24) as u8,
                    message: (i as i32 % 6, i64::from(i) << 20),
                    utm: [i % 3, i % 5, 0, i, 1],
                    device: 2,
                    browser: i % 300,
                    os: i % 70_000,
                    medium: 1,
                    source: i % 4,
                    ref_host: i + 5,
                },
                start_us: -i64::from(i),
                end_us: i64::from(i) * 1_000_003,
                requests: i64::from(i % 11),
                page_views: i64::from(i % 13),
                entry: i % 17,
                exit: i % 19,
            })
            .collect();
        assert_eq!(
            round_trip(&visits),
            visits,
            "visits, a column at a time, over blocks"
        );
        let bytes = encoded(&visits[..1].to_vec());
        for cut in 0..bytes.len() {
            assert!(
                decoded::<Vec<Visit>>(&bytes[..cut]).is_none(),
                "a visit cut at {cut}"
            );
        }
        let bytes = encoded(&v);
        for cut in 0..bytes.len() {
            assert!(decoded::<Vec<Hit>>(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        assert!(decoded::<bool>(&[2u8]).is_none(), "not a bool");
        assert!(
            decoded::<Vec<u8>>(&u64::MAX.to_le_bytes()).is_none(),
            "a length past the end"
        );
    }
}
