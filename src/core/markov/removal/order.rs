//! The order the Gauss–Seidel sweeps visit the states in, cut into the chain's strongly
//! connected components.
//!
//! A journey graph is a few large tangles (journeys that come back to a state) and many
//! states no journey returns to: on the 300-channel log at order 3, one component of
//! 464k states and 210k states on their own (675k in all). Swept as one system, every
//! sweep recomputes every state until the slowest cycle has converged, ~67 sweeps. Taken
//! component by component, successors first, a component reads only values that are
//! already final: a state on its own is exact after one computation, and a tangle is swept
//! to convergence alone.

/// A depth-first walk from `(start)` in post-order (edges in their order; then from each
/// state not reached, by index): every edge but the walk's back edges points to a state
/// visited earlier, so values flow back to `(start)` within a sweep. Then the states
/// regrouped by strongly connected component, components in the order Tarjan's algorithm
/// closes them (every edge leaving a component points to one closed before it), each
/// component's states kept in post-order. Returns the order (old index by position) and
/// the components as ranges of positions. A function of the chain alone, so one run, a
/// merge and a replicate of the same chain sweep alike.
pub(super) fn sweep_order(row_ptr: &[usize], edges: &[(u32, f64)]) -> (Vec<u32>, Vec<(u32, u32)>) {
    let post = post_order(row_ptr, edges);
    let component = components(row_ptr, edges);
    let mut position = vec![0u32; post.len()];
    for (p, &s) in post.iter().enumerate() {
        position[s as usize] = p as u32;
    }
    let mut order = post;
    order.sort_unstable_by_key(|&s| (component[s as usize], position[s as usize]));
    let mut blocks = Vec::new();
    let mut lo = 0usize;
    for p in 1..=order.len() {
        if p == order.len() || component[order[p] as usize] != component[order[lo] as usize] {
            blocks.push((lo as u32, p as u32));
            lo = p;
        }
    }
    (order, blocks)
}

fn post_order(row_ptr: &[usize], edges: &[(u32, f64)]) -> Vec<u32> {
    let n = row_ptr.len() - 1;
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        stack.push((root, row_ptr[root]));
        while let Some(top) = stack.last_mut() {
            let (i, k) = *top;
            if k == row_ptr[i + 1] {
                order.push(i as u32);
                stack.pop();
                continue;
            }
            top.1 += 1;
            let j = edges[k].0 as usize;
            if !seen[j] {
                seen[j] = true;
                stack.push((j, row_ptr[j]));
            }
        }
    }
    order
}

/// Each state's strongly connected component, numbered in the order Tarjan's algorithm
/// (iterative) closes them: a component's edges lead only to components closed earlier.
fn components(row_ptr: &[usize], edges: &[(u32, f64)]) -> Vec<u32> {
    const NONE: u32 = u32::MAX;
    let n = row_ptr.len() - 1;
    let (mut index, mut low) = (vec![NONE; n], vec![0u32; n]);
    let mut component = vec![NONE; n];
    let (mut open, mut walk): (Vec<u32>, Vec<(usize, usize)>) = (Vec::new(), Vec::new());
    let (mut next, mut closed) = (0u32, 0u32);
    for root in 0..n {
        if index[root] != NONE {
            continue;
        }
        index[root] = next;
        low[root] = next;
        next += 1;
        open.push(root as u32);
        walk.push((root, row_ptr[root]));
        while let Some(&mut (v, ref mut k)) = walk.last_mut() {
            if *k < row_ptr[v + 1] {
                let w = edges[*k].0 as usize;
                *k += 1;
                if index[w] == NONE {
                    (index[w], low[w]) = (next, next);
                    next += 1;
                    open.push(w as u32);
                    walk.push((w, row_ptr[w]));
                } else if component[w] == NONE {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            walk.pop();
            if let Some(&(u, _)) = walk.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = open.pop() {
                    component[w as usize] = closed;
                    if w as usize == v {
                        break;
                    }
                }
                closed += 1;
            }
        }
    }
    component
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Edges of a graph given as lists of successors.
    fn graph(succ: &[&[u32]]) -> (Vec<usize>, Vec<(u32, f64)>) {
        let mut row_ptr = vec![0];
        let mut edges = Vec::new();
        for s in succ {
            edges.extend(s.iter().map(|&j| (j, 0.5)));
            row_ptr.push(edges.len());
        }
        (row_ptr, edges)
    }

    #[test]
    fn components_are_contiguous_and_successors_come_first() {
        // 0 → 1 ⇄ 2 → 3 ⇄ 4, 2 → 5, 0 → 6 → 6' (none), 7 alone (not reached).
        let (row_ptr, edges) = graph(&[&[1, 6], &[2], &[1, 3, 5], &[4], &[3], &[], &[], &[]]);
        let (order, blocks) = sweep_order(&row_ptr, &edges);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..8).collect::<Vec<u32>>());
        let sets: Vec<Vec<u32>> = blocks
            .iter()
            .map(|&(lo, hi)| {
                let mut s = order[lo as usize..hi as usize].to_vec();
                s.sort_unstable();
                s
            })
            .collect();
        assert_eq!(sets.len(), 6, "{sets:?}");
        assert!(sets.contains(&vec![1, 2]) && sets.contains(&vec![3, 4]), "{sets:?}");
        // Every edge leads within its block or to an earlier one.
        let mut block_of = [0; 8];
        for (b, &(lo, hi)) in blocks.iter().enumerate() {
            for p in lo..hi {
                block_of[order[p as usize] as usize] = b;
            }
        }
        for i in 0..8 {
            for &(j, _) in &edges[row_ptr[i]..row_ptr[i + 1]] {
                assert!(block_of[j as usize] <= block_of[i], "edge {i} → {j}");
            }
        }
    }
}
