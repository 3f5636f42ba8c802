//! Replicates in blocks of [`BLOCK`]: one pass over the path rows sums the statistics of
//! `BLOCK` replicates at once (`docs/models.md` § Uncertainty, "Replicates in blocks").
//!
//! Why: one replicate at a time, the pass is a chain of scalar read–add–write updates of
//! the same edge and credit counters, and one hash per journey whose multiplications do not
//! overlap. With the replicates side by side, every counter is a row of `BLOCK` numbers
//! updated by one vector instruction, and a journey's `BLOCK` weights are one vector hash.
//!
//! Bits: a replicate's counter sees the same additions in the same order as when that
//! replicate is computed alone (path rows in order, then the order within a row); a lane
//! widens the arithmetic across replicates and never reorders it within one. Vector code
//! does not fuse a multiply into an add unless asked to, so the sums are the same bits with
//! or without AVX, and they do not depend on the block size or the thread count.

use std::array::from_fn;

use super::{reached, splitmix64, ByPath, Draws, EdgeIds, Kernel, MarkovPlan, Plan};
use crate::core::models::Credits;
use crate::core::replicates::ReplicateSums;

/// Replicates summed together in one pass (one AVX-512 register of `f64`).
pub const BLOCK: usize = 8;

/// One number per replicate of a block.
type Lanes = [f64; BLOCK];

/// A block of replicates' statistics and their draws.
pub(super) struct Block {
    acc: Acc,
    draws: [Draws; BLOCK],
}

/// A block's running sums, laid out as [`ReplicateSums`] with a lane per replicate.
struct Acc {
    /// Per (rule model, channel): conversions and value.
    rules: Vec<[Lanes; 2]>,
    /// Per chain of the frame.
    chains: Vec<ChainAcc>,
    /// Per coalition: (conversions, nulls, value).
    coalitions: Vec<[Lanes; 3]>,
    totals: [Lanes; 3],
}

/// One chain's running sums.
struct ChainAcc {
    /// Per edge of the chain, and a spare slot for edges the full fit never walked.
    edges: Vec<Lanes>,
    /// Per state: (value, conversions) of the journeys ending there.
    ends: Vec<[Lanes; 2]>,
}

#[inline(always)]
fn add(to: &mut Lanes, x: &Lanes) {
    for l in 0..BLOCK {
        to[l] += x[l];
    }
}

impl Plan<'_> {
    /// The additive statistics of replicates `first .. first + BLOCK` (lanes past the
    /// last replicate are computed and never read).
    pub(super) fn block(&self, seed: u64, first: u32) -> Block {
        let draws: [Draws; BLOCK] = from_fn(|l| Draws::new(seed, first.wrapping_add(l as u32)));
        let keys: [u64; BLOCK] = from_fn(|l| draws[l].key);
        let mut acc = self.acc();
        match self.kernel {
            Kernel::Fastest => self.pass_fastest(&keys, &mut acc),
            Kernel::Portable => self.pass(&keys, &mut acc),
        }
        Block { acc, draws }
    }

    fn acc(&self) -> Acc {
        let n = self.a.paths.channels.len();
        let chains = self.frame.chains.iter().map(|c| ChainAcc {
            edges: vec![[0.0; BLOCK]; c.edges.len() + 1],
            ends: vec![[[0.0; BLOCK]; 2]; c.states.len()],
        });
        Acc {
            rules: vec![[[0.0; BLOCK]; 2]; self.rules.len() * n],
            chains: chains.collect(),
            coalitions: vec![[[0.0; BLOCK]; 3]; self.frame.coalitions.len()],
            totals: [[0.0; BLOCK]; 3],
        }
    }

    /// Lane `l` of a block as one replicate's sums (one lane at a time, so a block holds
    /// its lanes and at most one replicate's sums per thread, not eight).
    pub(super) fn lane(&self, block: &Block, l: usize) -> ReplicateSums {
        let (acc, draws) = (&block.acc, block.draws[l]);
        let mut s = ReplicateSums::zeros(&self.frame);
        let n = self.a.paths.channels.len();
        for (m, &i) in self.rules.iter().enumerate() {
            let cells = &acc.rules[m * n..(m + 1) * n];
            s.credits[i] = Credits {
                conversions: cells.iter().map(|c| c[0][l]).collect(),
                value: cells.iter().map(|c| c[1][l]).collect(),
            };
        }
        if let Some(i) = self.a.credits.iter().position(|(m, _)| *m == crate::settings::Model::TimeDecay) {
            s.credits[i] = self.time_decay(draws, n);
        }
        for ((edges, ends), c) in s.edges.iter_mut().zip(&mut s.ends).zip(&acc.chains) {
            for (x, a) in edges.iter_mut().zip(&c.edges) {
                *x += a[l];
            }
            for (e, a) in ends.iter_mut().zip(&c.ends) {
                *e = (a[0][l], a[1][l]);
            }
        }
        for (c, a) in s.coalitions.iter_mut().zip(&acc.coalitions) {
            *c = [a[0][l], a[1][l], a[2][l]];
        }
        s.totals = [acc.totals[0][l], acc.totals[1][l], acc.totals[2][l]];
        s
    }

    /// [`Plan::pass`] compiled for the widest vector instructions the processor has (the
    /// same source, so the same bits).
    fn pass_fastest(&self, keys: &[u64; BLOCK], acc: &mut Acc) {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: the processor has the features `pass_avx512` is compiled for.
                return unsafe { self.pass_avx512(keys, acc) };
            }
            if is_x86_feature_detected!("avx2") {
                // SAFETY: as above, for AVX2.
                return unsafe { self.pass_avx2(keys, acc) };
            }
        }
        self.pass(keys, acc)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl")]
    unsafe fn pass_avx512(&self, keys: &[u64; BLOCK], acc: &mut Acc) {
        self.pass(keys, acc)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn pass_avx2(&self, keys: &[u64; BLOCK], acc: &mut Acc) {
        self.pass(keys, acc)
    }

    /// Every path row once, in order: its weights in the block's replicates, then every
    /// statistic it adds to.
    #[inline(always)]
    fn pass(&self, keys: &[u64; BLOCK], acc: &mut Acc) {
        let mut next = 0;
        for p in 0..self.journeys.offsets.len() - 1 {
            let (conv, nulls, value) = self.journeys.weigh(p, keys);
            add(&mut acc.totals[0], &conv);
            add(&mut acc.totals[1], &nulls);
            add(&mut acc.totals[2], &value);
            if self.converting.get(next) == Some(&(p as u32)) {
                self.split(next, &conv, &value, &mut acc.rules);
                next += 1;
            }
            for (m, c) in self.markov.iter().zip(&mut acc.chains) {
                m.count(p, [&conv, &nulls, &value], c);
            }
            if let Some(&c) = self.coalition_of.get(p) {
                let x = &mut acc.coalitions[c as usize];
                add(&mut x[0], &conv);
                add(&mut x[1], &nulls);
                add(&mut x[2], &value);
            }
        }
    }

    /// Converting row `j`'s credit under every rule model: each distinct channel's share of
    /// the row's conversions and value, in the replicates where it converts at all.
    #[inline(always)]
    fn split(&self, j: usize, conv: &Lanes, value: &Lanes, rules: &mut [[Lanes; 2]]) {
        let (nr, n) = (self.rules.len(), self.a.paths.channels.len());
        for k in self.split_offsets[j] as usize..self.split_offsets[j + 1] as usize {
            let ch = self.split_channel[k] as usize;
            for m in 0..nr {
                let s = self.shares[k * nr + m];
                let cell = &mut rules[m * n + ch];
                for l in 0..BLOCK {
                    // Adding +0 leaves a sum's bits as they are: the same as skipping.
                    let on = conv[l] != 0.0;
                    cell[0][l] += if on { s * conv[l] } else { 0.0 };
                    cell[1][l] += if on { s * value[l] } else { 0.0 };
                }
            }
        }
    }
}

impl ByPath {
    /// Row `p`'s weighted conversions, nulls and value in each replicate of the block
    /// (journeys summed in index order, as one replicate alone sums them).
    #[inline(always)]
    fn weigh(&self, p: usize, keys: &[u64; BLOCK]) -> (Lanes, Lanes, Lanes) {
        let (mut all, mut conv, mut value) = ([0.0; BLOCK], [0.0; BLOCK], [0.0; BLOCK]);
        for j in self.offsets[p] as usize..self.offsets[p + 1] as usize {
            let (person, c, v) = (self.person[j], self.converted[j], self.value[j]);
            for l in 0..BLOCK {
                let h = splitmix64(keys[l] ^ person);
                let x = reached(h) as f64;
                all[l] += x;
                conv[l] += x * c;
                value[l] += x * v;
            }
        }
        (conv, from_fn(|l| all[l] - conv[l]), value)
    }
}

impl MarkovPlan {
    /// Row `p`'s weights added to the edges it walks and to its end state. Without
    /// branches: whether a row converts, ends without converting or weighs nothing in a
    /// replicate is a coin flip, and adding a zero changes no sum. An edge the full fit
    /// never walked (a state that never converts) is counted into the spare slot.
    #[inline(always)]
    fn count(&self, p: usize, [conv, nulls, value]: [&Lanes; 3], acc: &mut ChainAcc) {
        let spare = acc.edges.len() - 1;
        let all: Lanes = from_fn(|l| conv[l] + nulls[l]);
        let walked = self.offsets[p] as usize..self.offsets[p + 1] as usize;
        match &self.path_edges {
            EdgeIds::Narrow(ids) => ids[walked].iter().for_each(|&e| add(&mut acc.edges[e as usize], &all)),
            EdgeIds::Wide(ids) => ids[walked].iter().for_each(|&e| add(&mut acc.edges[e as usize], &all)),
        }
        let (st, ce, ne) = self.end[p];
        add(&mut acc.edges[(ce as usize).min(spare)], conv);
        add(&mut acc.edges[(ne as usize).min(spare)], nulls);
        let e = &mut acc.ends[st as usize];
        add(&mut e[0], value);
        add(&mut e[1], conv);
    }
}
