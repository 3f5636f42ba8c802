//! Dense ids numbered in key order, for tens of millions of rows and millions of keys.
//!
//! Why not a hash map: at 10M rows and 1M users every look-up in a map of all users is a
//! cache miss, and that was the most expensive step of reading the input. Here the rows
//! are first split into buckets by the leading bits of their key (a monotone function, so
//! bucket order is key order); each bucket is small enough to sort in the CPU cache, and
//! buckets are sorted in parallel. The id of a key is its rank among the distinct keys, so
//! the result depends only on the set of keys — never on the row order, the bucket count
//! or the thread count.

use rayon::prelude::*;

mod hashed;
pub use hashed::HashInterner;

/// Rows per piece of parallel work; fixed, so no result depends on the thread count.
pub const PIECE: usize = 1 << 16;

/// Marks a row without an id (skipped).
pub const NO_ID: u32 = u32::MAX;

/// Dense ids of the kept rows and the distinct keys they stand for.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense<K> {
    /// `ids[row]` = rank of the row's key among `keys`, or [`NO_ID`] for a skipped row.
    pub ids: Vec<u32>,
    /// The distinct keys in increasing order (id = index).
    pub keys: Vec<K>,
}

/// A key of [`dense_ids`]: ordered, with a monotone 64-bit prefix to sort on.
pub trait RankKey: Copy + Ord + Send + Sync {
    /// `a ≤ b ⇒ a.prefix() ≤ b.prefix()`.
    fn prefix(self) -> u64;
}

impl RankKey for u128 {
    fn prefix(self) -> u64 {
        (self >> 64) as u64
    }
}

impl RankKey for i64 {
    fn prefix(self) -> u64 {
        (self as u64) ^ (1 << 63)
    }
}

/// The number of buckets for `n` rows: about 4k rows per bucket, a power of two, and at
/// most 1024 (more streams than that make the scatter miss the TLB on every write).
pub fn bucket_count(n: usize) -> usize {
    (n / 4096).next_power_of_two().clamp(1, 1024)
}

/// Dense ids in key order of `n` rows whose keys come piece by piece: [`scatter`] then
/// [`Scattered::rank`].
pub fn dense_ids<K, B, P>(n: usize, nb: usize, bucket: B, piece_keys: P) -> Dense<K>
where
    K: RankKey,
    B: Fn(K) -> usize + Sync,
    P: Fn(usize, usize, &mut Vec<Option<K>>) + Sync,
{
    scatter(n, nb, bucket, piece_keys).rank()
}

/// The keys of `n` rows copied into `nb` buckets, ready to be ranked. The caller's keys
/// are not read again, so it can free them before [`Scattered::rank`] (at 50M rows of
/// integer ids they are 400 MB, as much as the buckets' copy).
///
/// `piece_keys(first, len, out)` fills `out` with the keys of rows `first..first + len`
/// (`None`: the row gets no id). It is called twice per piece (keys may be computed on the
/// fly), and every pass over the rows is sequential: only the in-cache bucket sorts jump
/// around.
/// `bucket(k)` must be monotone (`k1 ≤ k2 ⇒ bucket(k1) ≤ bucket(k2)`) and below `nb`; a
/// bad spread only costs speed, never correctness.
pub fn scatter<K, B, P>(n: usize, nb: usize, bucket: B, piece_keys: P) -> Scattered<K>
where
    K: RankKey,
    B: Fn(K) -> usize + Sync,
    P: Fn(usize, usize, &mut Vec<Option<K>>) + Sync,
{
    assert!(nb >= 1 && nb < u16::MAX as usize, "bucket count out of range");
    assert!(n < NO_ID as usize, "more than 4G rows in one file");
    let n_pieces = n.div_ceil(PIECE);
    let piece_len = |p: usize| PIECE.min(n - p * PIECE);
    // 1. The bucket of every row (u16::MAX: no id), and counts per (piece, bucket).
    let mut bucket_of = vec![u16::MAX; n];
    let counts: Vec<Vec<u32>> = bucket_of
        .par_chunks_mut(PIECE)
        .enumerate()
        .map_init(Vec::new, |buf, (p, out)| {
            buf.clear();
            piece_keys(p * PIECE, out.len(), buf);
            let mut c = vec![0u32; nb];
            for (o, k) in out.iter_mut().zip(buf.iter()) {
                if let Some(k) = *k {
                    let b = bucket(k);
                    *o = b as u16;
                    c[b] += 1;
                }
            }
            c
        })
        .collect();
    let (start, cursors) = scatter_plan(&counts, nb);
    let kept = start[nb];
    drop(counts);
    // 2. Scatter the keys into their buckets.
    let mut slots: Vec<K> = Vec::with_capacity(kept);
    let slots_ptr = SharedSlots(slots.as_mut_ptr());
    let ends: Vec<&[usize]> =
        (0..n_pieces).map(|p| cursors.get(p + 1).map_or(&start[1..], |c| &c[..])).collect();
    let written: usize = (0..n_pieces)
        .into_par_iter()
        .map_init(Vec::new, |buf, p| {
            buf.clear();
            piece_keys(p * PIECE, piece_len(p), buf);
            let mut cur = cursors[p].clone();
            let mut written = 0;
            for (k, &b) in buf.iter().zip(&bucket_of[p * PIECE..p * PIECE + piece_len(p)]) {
                if let Some(k) = *k {
                    // A closure that changed its mind between the passes must not write
                    // outside this piece's slots (the checks make that a panic, not UB).
                    assert!(b != u16::MAX, "dense_ids: piece_keys differs between calls");
                    let slot = &mut cur[b as usize];
                    assert!(*slot < ends[p][b as usize], "dense_ids: piece_keys differs between calls");
                    // SAFETY: the (piece, bucket) cursors cover disjoint slots below `kept`,
                    // and the bound was checked above.
                    unsafe { slots_ptr.write(*slot, k) };
                    *slot += 1;
                    written += 1;
                }
            }
            written
        })
        .sum();
    assert_eq!(written, kept, "dense_ids: piece_keys differs between calls");
    // SAFETY: every slot below `kept` was written exactly once above (counted).
    unsafe { slots.set_len(kept) };
    Scattered { n, nb, bucket_of, start, cursors, slots }
}

/// The rows' keys by bucket ([`scatter`]).
pub struct Scattered<K> {
    n: usize,
    nb: usize,
    /// Each row's bucket (`u16::MAX`: no id).
    bucket_of: Vec<u16>,
    /// Bucket `b` holds `slots[start[b]..start[b + 1]]`.
    start: Vec<usize>,
    /// Where each piece's rows of each bucket begin.
    cursors: Vec<Vec<usize>>,
    slots: Vec<K>,
}

impl<K: RankKey> Scattered<K> {
    /// Each row's rank among the distinct keys, and those keys in order.
    pub fn rank(self) -> Dense<K> {
        let Scattered { n, nb, bucket_of, start, cursors, slots } = self;
        // 3. Rank each bucket's keys (sorting packed keys, in cache).
        let mut rank_at = vec![0u32; slots.len()];
        let mut rank_chunks: Vec<&mut [u32]> = Vec::with_capacity(nb);
        let mut rest: &mut [u32] = &mut rank_at;
        for b in 0..nb {
            let (head, tail) = rest.split_at_mut(start[b + 1] - start[b]);
            rank_chunks.push(head);
            rest = tail;
        }
        let per_bucket: Vec<Vec<K>> = rank_chunks
            .into_par_iter()
            .enumerate()
            .map_init(Vec::new, |perm: &mut Vec<u64>, (b, ranks)| {
                rank_bucket(&slots[start[b]..start[b + 1]], ranks, perm)
            })
            .collect();
        drop(slots);
        let mut base = vec![0u32; nb];
        let mut total = 0u32;
        for (b, d) in per_bucket.iter().enumerate() {
            base[b] = total;
            total += d.len() as u32;
        }
        // 4. Back to row order: walk the rows again with the same cursors.
        let mut ids = vec![NO_ID; n];
        ids.par_chunks_mut(PIECE).enumerate().for_each(|(p, out)| {
            let mut cur = cursors[p].clone();
            for (o, &b) in out.iter_mut().zip(&bucket_of[p * PIECE..]) {
                if b != u16::MAX {
                    let slot = &mut cur[b as usize];
                    *o = base[b as usize] + rank_at[*slot];
                    *slot += 1;
                }
            }
        });
        let mut keys_out = Vec::with_capacity(total as usize);
        for d in per_bucket {
            keys_out.extend(d);
        }
        Dense { ids, keys: keys_out }
    }
}

/// Rank one bucket's keys (`ranks[slot]` = rank of `keys[slot]` among the bucket's distinct
/// keys) and return those distinct keys in order. Sorts one u64 per key: the prefix bits
/// that vary within the bucket, with the slot in the low bits; runs that tie on those bits
/// are sorted again by the full keys when their keys differ (rare: for hashes, 2^-40 or
/// less per pair).
fn rank_bucket<K: RankKey>(keys: &[K], ranks: &mut [u32], perm: &mut Vec<u64>) -> Vec<K> {
    if keys.is_empty() {
        return Vec::new();
    }
    let (lo, hi) = keys.iter().fold((u64::MAX, 0u64), |(lo, hi), k| (lo.min(k.prefix()), hi.max(k.prefix())));
    let common = (lo ^ hi).leading_zeros().min(63);
    let slot_bits = 64 - (keys.len() as u64).leading_zeros();
    let slot_mask = (1u64 << slot_bits) - 1;
    let packed = |k: K, s: usize| ((k.prefix() << common) & !slot_mask) | s as u64;
    perm.clear();
    perm.extend(keys.iter().enumerate().map(|(s, &k)| packed(k, s)));
    perm.sort_unstable();
    let slot = |x: u64| (x & slot_mask) as usize;
    let mut a = 0;
    while a < perm.len() {
        let mut z = a + 1;
        while z < perm.len() && perm[z] >> slot_bits == perm[a] >> slot_bits {
            z += 1;
        }
        let run = &mut perm[a..z];
        if run.iter().any(|&x| keys[slot(x)] != keys[slot(run[0])]) {
            run.sort_unstable_by_key(|&x| (keys[slot(x)], slot(x)));
        }
        a = z;
    }
    let mut distinct: Vec<K> = Vec::new();
    for &x in perm.iter() {
        let s = slot(x);
        let k = keys[s];
        if distinct.last() != Some(&k) {
            distinct.push(k);
        }
        ranks[s] = distinct.len() as u32 - 1;
    }
    distinct
}

/// The slots of a scatter into `nb` streams, from the counts per (piece, stream): stream
/// `b` fills `start[b]..start[b + 1]`, and piece `p` writes its rows of stream `b` from
/// `cursors[p][b]` on (after the earlier pieces', so rows keep their order in a stream).
pub(crate) fn scatter_plan(counts: &[Vec<u32>], nb: usize) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut start = vec![0usize; nb + 1];
    for c in counts {
        for (b, &x) in c.iter().enumerate() {
            start[b + 1] += x as usize;
        }
    }
    for b in 0..nb {
        start[b + 1] += start[b];
    }
    let mut cursors = Vec::with_capacity(counts.len());
    let mut next = start[..nb].to_vec();
    for c in counts {
        cursors.push(next.clone());
        for (b, &x) in c.iter().enumerate() {
            next[b] += x as usize;
        }
    }
    (start, cursors)
}

/// A raw pointer for writes to disjoint slots from several threads.
pub(crate) struct SharedSlots<K>(pub(crate) *mut K);
impl<K> Clone for SharedSlots<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for SharedSlots<K> {}
// SAFETY: every slot is written from exactly one thread, and the buffer outlives the
// parallel section (see `dense_ids`).
unsafe impl<K: Send> Send for SharedSlots<K> {}
unsafe impl<K: Send> Sync for SharedSlots<K> {}

impl<K> SharedSlots<K> {
    /// # Safety
    /// `i` is within the allocation and no other thread touches slot `i` meanwhile.
    pub(crate) unsafe fn write(self, i: usize, v: K) {
        unsafe { self.0.add(i).write(v) }
    }
}

/// The bucket of a 128-bit hash among `nb` (a power of two): its leading bits.
pub fn hash_bucket(nb: usize) -> impl Fn(u128) -> usize + Sync {
    let bits = nb.trailing_zeros();
    move |h| if bits == 0 { 0 } else { (h >> (128 - bits)) as usize }
}

/// The bucket of an integer in `[min, max]` among `nb`: its position in the range.
pub fn range_bucket(min: i64, max: i64, nb: usize) -> impl Fn(i64) -> usize + Sync {
    let span = max as i128 - min as i128 + 1;
    move |v| (((v as i128 - min as i128) * nb as i128) / span) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A closure that yields fewer keys on its second call must panic, never expose
    /// uninitialised slots.
    #[test]
    #[should_panic(expected = "piece_keys differs between calls")]
    fn an_inconsistent_key_closure_panics() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let _ = dense_ids(10, 2, range_bucket(0, 9, 2), |at, len, out| {
            let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            out.extend((at..at + len).map(|i| (first || i % 2 == 0).then_some(i as i64)));
        });
    }

    fn naive(keys: &[i64], keep: &[bool]) -> (Vec<u32>, Vec<i64>) {
        let mut d: Vec<i64> = keys.iter().zip(keep).filter(|(_, &k)| k).map(|(&x, _)| x).collect();
        d.sort_unstable();
        d.dedup();
        let ids = keys
            .iter()
            .zip(keep)
            .map(|(x, &k)| if k { d.binary_search(x).unwrap() as u32 } else { NO_ID })
            .collect();
        (ids, d)
    }

    #[test]
    fn ranks_match_a_sort_for_any_bucket_count() {
        let mut x = 12345u64;
        let keys: Vec<i64> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 50_000) as i64 - 20_000
            })
            .collect();
        let keep: Vec<bool> = (0..keys.len()).map(|i| i % 7 != 3).collect();
        let (want_ids, want_keys) = naive(&keys, &keep);
        let (min, max) = (*keys.iter().min().unwrap(), *keys.iter().max().unwrap());
        for nb in [1, 2, 64, 4096] {
            let d = dense_ids(keys.len(), nb, range_bucket(min, max, nb), |at, len, out| {
                out.extend((at..at + len).map(|i| keep[i].then_some(keys[i])));
            });
            assert_eq!(d.ids, want_ids, "nb = {nb}");
            assert_eq!(d.keys, want_keys, "nb = {nb}");
        }
    }

    #[test]
    fn keys_that_tie_on_their_prefix_are_ranked_by_the_full_key() {
        // Hashes equal in their top 64 bits (the packed sort key) but not below.
        let keys: Vec<u128> = (0..10_000u128).map(|i| (7u128 << 100) | ((i * 7919) % 1000)).collect();
        let mut want: Vec<u128> = keys.clone();
        want.sort_unstable();
        want.dedup();
        for nb in [1, 16] {
            let d = dense_ids(keys.len(), nb, hash_bucket(nb), |at, len, out| {
                out.extend(keys[at..at + len].iter().map(|&k| Some(k)));
            });
            assert_eq!(d.keys, want);
            for (i, &k) in keys.iter().enumerate() {
                assert_eq!(d.keys[d.ids[i] as usize], k);
            }
        }
    }

    #[test]
    fn hash_buckets_are_monotone() {
        let b = hash_bucket(1024);
        assert_eq!(b(0), 0);
        assert_eq!(b(u128::MAX), 1023);
        assert!(b(1u128 << 118) <= b(1u128 << 119));
        assert_eq!(hash_bucket(1)(u128::MAX), 0);
    }
}
