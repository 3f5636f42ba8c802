//! Dense ids of 128-bit hashes interned batch by batch, so a reader keeps 4 bytes a row
//! (a provisional id) instead of the 16-byte hash until every file is read.
//!
//! Why: at 50M events of string user ids the hashes of every row, and the copy
//! [`super::scatter`] made of them to rank them, were 1.6 GB of a 3.4 GB read. Here each
//! batch's hashes go into one of [`SHARDS`] tables by their leading bits, filled in
//! parallel; a table holds 1/64 of the users (in cache for a few million users in all,
//! not for tens of millions, where each look-up is a cache miss). A shard is a range of hashes, so ranking each shard's keys and numbering the
//! shards in order gives every key its rank among all keys: the same ids as
//! [`super::dense_ids`] over the hashes, whatever the batches or the thread count.

use hashbrown::HashTable;
use rayon::prelude::*;

/// Shards, by the leading [`SHARD_BITS`] bits of the hash.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
/// Bits of a provisional id left for the key's number within its shard.
const LOCAL_BITS: u32 = 32 - SHARD_BITS;

/// One shard's distinct hashes in order of arrival (a key's number is its index), and a
/// table of those indices: about 25 bytes a user, so that a log of one event per user
/// costs no more than the 34 bytes a row of ranking every row's hash.
#[derive(Default, Clone)]
struct Shard {
    keys: Vec<u128>,
    table: HashTable<u32>,
}

impl Shard {
    /// The number of `k` in this shard, given it one if it is new.
    fn id(&mut self, k: u128) -> u32 {
        // The hash's low half: independent of the shard bits, and already uniform.
        let h = k as u64;
        let Shard { keys, table } = self;
        if let Some(&i) = table.find(h, |&i| keys[i as usize] == k) {
            return i;
        }
        let i = keys.len() as u32;
        assert!(i < 1 << LOCAL_BITS, "more distinct users than one run holds");
        keys.push(k);
        table.insert_unique(h, i, |&j| keys[j as usize] as u64);
        i
    }

    /// The shard's keys in increasing order and the rank of each key's number.
    fn ranked(self) -> (Vec<u128>, Vec<u32>) {
        let Shard { keys, table } = self;
        drop(table);
        let mut order: Vec<u32> = (0..keys.len() as u32).collect();
        order.sort_unstable_by_key(|&i| keys[i as usize]);
        let mut rank_of = vec![0u32; keys.len()];
        for (r, &i) in order.iter().enumerate() {
            rank_of[i as usize] = r as u32;
        }
        (order.iter().map(|&i| keys[i as usize]).collect(), rank_of)
    }
}

/// The distinct hashes seen so far, shard by shard, each numbered in order of arrival.
pub struct HashInterner {
    shards: Vec<Shard>,
}

impl Default for HashInterner {
    fn default() -> Self {
        HashInterner { shards: vec![Shard::default(); SHARDS] }
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
            .map(|(s, (shard, rows))| {
                rows.iter().map(|&i| (s as u32) << LOCAL_BITS | shard.id(keys[i as usize])).collect()
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
        let ranked: Vec<(Vec<u128>, Vec<u32>)> = self.shards.into_par_iter().map(Shard::ranked).collect();
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
        let mut keys = Vec::with_capacity(total as usize);
        for (k, _) in ranked {
            keys.extend(k);
        }
        keys
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
