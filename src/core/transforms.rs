//! Path transforms (`docs/models.md` § Transforms), applied to a journey's touches after
//! the lookback. Where touches collapse, the first is kept.

use crate::core::journeys::Touch;

/// A transform with channel names resolved to ids (masks indexed by base channel id).
#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedTransform {
    /// See [`crate::settings::Transform::Exposure`].
    Exposure,
    /// See [`crate::settings::Transform::First`].
    First,
    /// See [`crate::settings::Transform::Frequency`].
    Frequency,
    /// See [`crate::settings::Transform::TrimLongPath`].
    Trim(usize),
    /// See [`crate::settings::Transform::RemoveIfNotAll`].
    RemoveIfNotAll(Vec<bool>),
    /// See [`crate::settings::Transform::RemoveIfLastAndNotAll`].
    RemoveIfLastAndNotAll(Vec<bool>),
}

/// The highest count the `frequency` transform names (`channel(n)`); higher counts are
/// named `channel(n+)` with n the cap: 1,000, or less when the channels are so many that
/// `count × channels` would overflow the 32-bit channel ids.
pub fn frequency_cap(n_codes: u32) -> u32 {
    (((u32::MAX - 1) / n_codes.max(1)).saturating_sub(1)).min(1000)
}

/// The name of a `frequency` channel: `base(n)`, or `base(n+)` at the cap.
pub fn frequency_name(base: &str, count: u32, n_codes: u32) -> String {
    if count >= frequency_cap(n_codes) {
        format!("{base}({count}+)")
    } else {
        format!("{base}({count})")
    }
}

/// The channel a `frequency` name stands for: `email(2)` and `email(9+)` are `email`
/// (a name without that suffix is its own).
pub fn frequency_base(name: &str) -> &str {
    let Some(open) = name.strip_suffix(')').and_then(|s| s.rfind('(')) else { return name };
    let count = name[open + 1..name.len() - 1].trim_end_matches('+');
    match !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) {
        true => &name[..open],
        false => name,
    }
}

/// Apply the transforms to a journey's touches (after the lookback), in order.
pub fn apply_transforms(touches: &mut Vec<Touch>, transforms: &[ResolvedTransform], n_codes: u32) {
    for t in transforms {
        if touches.is_empty() {
            return;
        }
        match t {
            ResolvedTransform::Exposure => touches.dedup_by_key(|t| t.channel),
            ResolvedTransform::First => {
                let mut seen: Vec<u32> = Vec::new();
                touches.retain(|t| {
                    if seen.contains(&t.channel) {
                        false
                    } else {
                        seen.push(t.channel);
                        true
                    }
                });
            }
            ResolvedTransform::Frequency => {
                let mut counts: Vec<(u32, u32)> = Vec::new();
                for t in touches.iter() {
                    match counts.iter_mut().find(|c| c.0 == t.channel) {
                        Some(c) => c.1 += 1,
                        None => counts.push((t.channel, 1)),
                    }
                }
                touches.retain({
                    let mut seen: Vec<u32> = Vec::new();
                    move |t| {
                        if seen.contains(&t.channel) {
                            false
                        } else {
                            seen.push(t.channel);
                            true
                        }
                    }
                });
                let cap = frequency_cap(n_codes);
                for t in touches.iter_mut() {
                    let n = counts.iter().find(|c| c.0 == t.channel).map_or(1, |c| c.1).min(cap);
                    t.channel = n * n_codes + t.channel % n_codes;
                }
            }
            ResolvedTransform::Trim(n) => {
                if touches.len() > *n {
                    touches.drain(..touches.len() - n);
                }
            }
            ResolvedTransform::RemoveIfNotAll(mask) => {
                let m = |t: &Touch| mask[(t.channel % n_codes) as usize];
                if !touches.iter().all(m) {
                    touches.retain(|t| !m(t));
                }
            }
            ResolvedTransform::RemoveIfLastAndNotAll(mask) => {
                let m = |t: &Touch| mask[(t.channel % n_codes) as usize];
                if !touches.iter().all(m) {
                    while touches.last().is_some_and(m) {
                        touches.pop();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_names_fold_back_to_their_channel() {
        assert_eq!(frequency_base("email(2)"), "email");
        assert_eq!(frequency_base(&frequency_name("email", 9, 10)), "email");
        assert_eq!(frequency_base("a (b)(12)"), "a (b)");
        assert_eq!(frequency_base("brand(x)"), "brand(x)");
        assert_eq!(frequency_base("direct"), "direct");
        assert_eq!(frequency_base("odd()"), "odd()");
    }
}
