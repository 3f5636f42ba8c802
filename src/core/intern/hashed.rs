//! Dense ids of 128-bit hashes interned batch by batch, so a reader keeps 4 bytes a row
//! (a provisional id) instead of the 16-byte hash until every file is read.
//!
//! Why: at 50M events of string user ids the hashes of every row, and the copy
//! [`super::scatter`] makes of them to rank them, were 1.6 GB of a 3.4 GB read. Here each
//! batch's hashes go into one of [`SHARDS`] maps by their leading bits; a shard's map holds
//! 1/64 of the users, small enough to stay in cache, and the shards are filled in
//! parallel. A shard is a range of hashes, so ranking each shard's keys and numbering the
//! shards in order gives every key its rank among all keys: the same ids as
//! [`super::dense_ids`] over the hashes, whatever the batches or the thread count.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// Shards, by the leading [`SHARD_BITS`] bits of the hash.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
/// Bits of a provisional id left for the key's number within its shard.
const LOCAL_BITS: u32 = 32 - SHARD_BITS;

/// The distinct hashes seen so far, shard by shard, each numbered in order of arrival.
pub struct HashInterner {
    shards: Vec<FxHashMap<u128, u32>>,
}

impl Default for HashInterner {
    fn default() -> Self {
        HashInterner { shards: vec![FxHashMap::default(); SHARDS] }
    }
}

fn shard_of(h: u128) -> usize {
    (h >> (128 - SHARD_BITS)) as usize
}

impl HashInterner {
    /// Append the provisional id of each of `keys` to `out`. Panics past 2^26 distinct keys
    /// in one shard (about 4G keys in all: more than one run holds events).
    pub fn intern(&mut self, keys: &[u128], out: &mut Vec<u32>) {
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); SHARDS];
        for (i, &k) in keys.iter().enumerate() {
            rows[shard_of(k)].push(i as u32);
        }
        let ids: Vec<Vec<u32>> = self
            .shards
            .par_iter_mut()
            .zip(&rows)
            .enumerate()
            .map(|(s, (map, rows))| {
                rows.iter()
                    .map(|&i| {
                        let next = map.len() as u32;
                        let local = *map.entry(keys[i as usize]).or_insert(next);
                        assert!(local < 1 << LOCAL_BITS, "more distinct users than one run holds");
                        (s as u32) << LOCAL_BITS | local
                    })
                    .collect()
            })
            .collect();
        let at = out.len();
        out.resize(at + keys.len(), 0);
        for (rows, ids) in rows.iter().zip(ids) {
            for (&i, id) in rows.iter().zip(ids) {
                out[at + i as usize] = id;
            }
        }
    }

    /// Renumber provisional ids in place to each key's rank among all the distinct keys,
    /// and return those keys in increasing order (id = index).
    pub fn rank(self, ids: &mut [u32]) -> Vec<u128> {
        let ranked: Vec<(Vec<u128>, Vec<u32>)> = self
            .shards
            .into_par_iter()
            .map(|map| {
                let mut pairs: Vec<(u128, u32)> = map.into_iter().collect();
                pairs.sort_unstable();
                let mut rank_of = vec![0u32; pairs.len()];
                for (r, &(_, local)) in pairs.iter().enumerate() {
                    rank_of[local as usize] = r as u32;
                }
                (pairs.into_iter().map(|(k, _)| k).collect(), rank_of)
            })
            .collect();
        let mut base = Vec::with_capacity(SHARDS);
        let mut total = 0u32;
        for (keys, _) in &ranked {
            base.push(total);
            total += keys.len() as u32;
        }
        ids.par_chunks_mut(super::PIECE).for_each(|ids| {
            for id in ids {
                let (s, local) = ((*id >> LOCAL_BITS) as usize, *id & ((1 << LOCAL_BITS) - 1));
                *id = base[s] + ranked[s].1[local as usize];
            }
        });
        ranked.into_iter().flat_map(|(keys, _)| keys).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{dense_ids, hash_bucket};
    use super::*;

    /// Against the bucket ranking of all the hashes at once: the same ids and keys, for any
    /// cut into batches (keys spread over every shard, repeats across batches).
    #[test]
    fn batches_number_like_the_whole() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let users: Vec<u128> = (0..3_000).map(|_| (next() as u128) << 64 | next() as u128).collect();
        let rows: Vec<u128> = (0..40_000).map(|_| users[next() as usize % users.len()]).collect();
        let nb = 8;
        let want = dense_ids(rows.len(), nb, hash_bucket(nb), |at, len, out| {
            out.extend(rows[at..at + len].iter().map(|&h| Some(h)));
        });
        for batch in [1, 777, 40_000] {
            let mut interner = HashInterner::default();
            let mut ids = Vec::new();
            for b in rows.chunks(batch) {
                interner.intern(b, &mut ids);
            }
            let keys = interner.rank(&mut ids);
            assert_eq!((&ids, &keys), (&want.ids, &want.keys), "batches of {batch}");
        }
    }
}
