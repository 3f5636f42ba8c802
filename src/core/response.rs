//! Marginal return: how a channel's credited conversions respond to its spend, from the
//! daily history of a scheduled run (`docs/models.md` § Marginal return). Observational:
//! days with more spend may differ in other ways (season, promotions), so this is a
//! description of the history, not an experiment.
//!
//! The model, per channel: `ln(conversions_d + ½) = α + β ln(spend_d) + ε_d` over the days
//! `d` with spend, by ordinary least squares; β is the elasticity (1 % more spend, β % more
//! credited conversions) with its OLS standard error and Student's t bounds (n − 2 degrees
//! of freedom). At today's spend `s` and credit `y` the model's slope is `β (y + ½) / s`
//! conversions per unit of spend.

/// The fit of one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Days used.
    pub days: u32,
    /// Elasticity β.
    pub elasticity: f64,
    /// Its standard error.
    pub se: f64,
}

impl Fit {
    /// β's bounds at `level` (Student's t with `days − 2` degrees of freedom).
    pub fn bounds(&self, level: f64) -> (f64, f64) {
        let t = student_t_quantile(0.5 + level / 2.0, self.days as f64 - 2.0);
        (self.elasticity - t * self.se, self.elasticity + t * self.se)
    }
}

/// The slope of the fitted line at spend `s` and credit `y`: `β (y + ½) / s`, the
/// conversions the next unit of spend brings.
pub fn marginal(beta: f64, y: f64, s: f64) -> f64 {
    beta * (y + 0.5) / s
}

/// Student's t quantile: the t density integrated by Simpson's rule (2,000 panels, far
/// below 1e-9 for the levels used here), inverted by bisection.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    let ln_c =
        libm::lgamma((df + 1.0) / 2.0) - libm::lgamma(df / 2.0) - 0.5 * (df * std::f64::consts::PI).ln();
    let pdf = |t: f64| (ln_c - (df + 1.0) / 2.0 * (1.0 + t * t / df).ln()).exp();
    let cdf = |x: f64| {
        let n = 2_000;
        let h = x / n as f64;
        let inner: f64 = (1..n).map(|i| pdf(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 }).sum();
        0.5 + h / 3.0 * (pdf(0.0) + inner + pdf(x))
    };
    let (mut lo, mut hi) = (0.0, 1_000.0);
    for _ in 0..80 {
        let mid = (lo + hi) / 2.0;
        if cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// OLS of `ln(y + ½)` on `ln(spend)` over `(spend, y)` days with spend > 0; None with fewer
/// than `min_days` such days or no spread of spend (β is then not identified).
pub fn fit(days: &[(f64, f64)], min_days: u32) -> Option<Fit> {
    let pts: Vec<(f64, f64)> =
        days.iter().filter(|(s, y)| *s > 0.0 && *y >= 0.0).map(|(s, y)| (s.ln(), (y + 0.5).ln())).collect();
    let n = pts.len();
    if n < (min_days as usize).max(3) {
        return None;
    }
    let nf = n as f64;
    let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / nf, pts.iter().map(|p| p.1).sum::<f64>() / nf);
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 1e-12 {
        return None;
    }
    let beta = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    let alpha = my - beta * mx;
    let rss: f64 = pts.iter().map(|p| (p.1 - alpha - beta * p.0).powi(2)).sum();
    let se = (rss / (nf - 2.0) / sxx).sqrt();
    Some(Fit { days: n as u32, elasticity: beta, se })
}

/// The change in credited conversions of a channel whose spend moves from `s` to `s2`, at
/// today's credit `y`, along the fitted line: `(y + ½) ((s2 / s)^β − 1)`.
pub fn change(y: f64, s: f64, s2: f64, beta: f64) -> f64 {
    (y + 0.5) * ((s2 / s).powf(beta) - 1.0)
}

/// One earlier run date of the history: the headline model's credited conversions and the
/// spend of that date's spend period, per channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Day {
    /// Credited conversions per channel (the manifest's headline).
    pub conversions: std::collections::BTreeMap<String, f64>,
    /// Spend per channel over the date's spend period.
    pub spend: std::collections::BTreeMap<String, f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_elasticity() {
        // y + ½ = 2 · s^0.6 exactly: β = 0.6, no residual.
        let days: Vec<(f64, f64)> =
            (1..=20).map(|d| (d as f64 * 10.0, 2.0 * (d as f64 * 10.0).powf(0.6) - 0.5)).collect();
        let f = fit(&days, 14).unwrap();
        assert!((f.elasticity - 0.6).abs() < 1e-12 && f.se < 1e-9 && f.days == 20);
        assert!(fit(&days[..10], 14).is_none(), "too few days");
        assert!(fit(&[(5.0, 1.0); 20], 14).is_none(), "no spread of spend");
        // Doubling the spend at β = 0.6 multiplies credit + ½ by 2^0.6.
        assert!((change(9.5, 100.0, 200.0, 0.6) - 10.0 * (2f64.powf(0.6) - 1.0)).abs() < 1e-12);
    }

    #[test]
    fn t_quantiles_of_the_tables() {
        // Student's t tables (e.g. R's qt).
        for (p, df, t) in
            [(0.95, 1.0, 6.313751514675), (0.95, 12.0, 1.782287555649), (0.975, 5.0, 2.570581835636)]
        {
            assert!((student_t_quantile(p, df) - t).abs() < 1e-8, "{p} {df}");
        }
    }

    #[test]
    fn standard_error_by_hand() {
        // x = ln s = 0, 1, 2, 3 (s = e^x); ln(y + ½) = 0, 1, 1, 3: Sxx = 5, Sxy = 4.5,
        // β = 0.9, α = 1.25 − 0.9 · 1.5 = −0.1, residuals 0.1, 0.2, −0.7, 0.4: RSS 0.70,
        // se = √(0.70 / (4 − 2) / 5) = 0.2646.
        let e = std::f64::consts::E;
        let ys = [0.0f64, 1.0, 1.0, 3.0];
        let days: Vec<(f64, f64)> =
            ys.iter().enumerate().map(|(i, l)| (e.powi(i as i32), l.exp() - 0.5)).collect();
        let f = fit(&days, 3).unwrap();
        assert!((f.elasticity - 0.9).abs() < 1e-12, "{f:?}");
        assert!((f.se - (0.70f64 / 2.0 / 5.0).sqrt()).abs() < 1e-12, "{f:?}");
    }
}
