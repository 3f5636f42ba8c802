//! Inline charts for `report.html`: no script, no network, readable when printed and on a
//! phone. Bar charts are HTML rows (label, an SVG strip of bars, value) and histograms HTML
//! columns, so they reflow at any width with their labels at full size; the transition
//! graph is drawn at its own size in a box that scrolls sideways on a narrow screen, never
//! scaled down.
//!
//! Why hand-written: the page needs four plain shapes (bars, interval whiskers, stacked
//! bars, histograms); a plotting crate would add a font stack and a raster pipeline for
//! what is a few `<rect>` and `<line>` elements. Every number is formatted with a fixed
//! precision, so the page is byte-identical across runs like every other output.

use std::fmt::Write;

/// Colours of the series (colour-blind safe, Okabe–Ito).
pub const PALETTE: [&str; 8] =
    ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One bar: its value and, when known, its interval.
#[derive(Debug, Clone, Copy)]
pub struct Bar {
    /// Value.
    pub value: f64,
    /// Interval (low, high).
    pub interval: Option<(f64, f64)>,
}

const LABEL_W: f64 = 150.0;
const PLOT_W: f64 = 520.0;
/// Width of the bar strips' own coordinates: they stretch to the row's width on the page
/// (`preserveAspectRatio="none"`), so only the bars scale, never a label.
const STRIP_W: f64 = 1000.0;

fn open(h: f64, title: &str, class: &str) -> String {
    let w = LABEL_W + PLOT_W + 70.0;
    format!(
        "<svg class=\"chart {class}\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {w:.0} {h:.0}\" width=\"{w:.0}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(title),
    )
}

/// A chart whose labels and legend are HTML text, so they keep their size and reflow (on a
/// phone the row label moves above its bars); only the bars are SVG strips.
fn figure(title: &str, class: &str, legend: &[String]) -> String {
    // A group, not an image: its HTML labels and values are what a screen reader reads.
    let mut s = format!("<figure class=\"chart {class}\" role=\"group\" aria-label=\"{}\">", esc(title));
    if !legend.is_empty() {
        s.push_str("<div class=\"legend\">");
        for (i, name) in legend.iter().enumerate() {
            let _ = write!(
                s,
                "<span><i style=\"background:{}\"></i>{}</span>",
                PALETTE[i % PALETTE.len()],
                esc(name)
            );
        }
        s.push_str("</div>");
    }
    s
}

/// One row of a figure: its HTML label, then an SVG strip `h` pixels high.
fn row_open(s: &mut String, label: &str, h: f64) {
    let _ = write!(
        s,
        "<div class=\"row\"><span class=\"label\">{}</span><svg class=\"strip\" aria-hidden=\"true\" viewBox=\"0 0 {STRIP_W:.0} {h:.0}\" preserveAspectRatio=\"none\" height=\"{h:.0}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(label)
    );
}

fn row_close(s: &mut String, value: Option<&str>) {
    s.push_str("</svg>");
    let _ = write!(s, "<span class=\"value\">{}</span></div>", esc(value.unwrap_or("")));
}

/// Horizontal bars, grouped by row label, one bar per series, with interval whiskers.
/// `rows[i] = (label, bars per series)`.
pub fn grouped_bars(
    title: &str,
    series: &[String],
    rows: &[(String, Vec<Bar>)],
    fmt: fn(f64) -> String,
) -> String {
    let bar_h = 9.0;
    let max = rows
        .iter()
        .flat_map(|(_, b)| b.iter().map(|x| x.interval.map_or(x.value, |i| i.1.max(x.value))))
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let sx = |v: f64| v.max(0.0) / max * STRIP_W;
    let legend: &[String] = if series.len() > 1 { series } else { &[] };
    let mut s = figure(title, "grouped-bars", legend);
    for (label, bars) in rows {
        row_open(&mut s, label, bars.len() as f64 * bar_h);
        for (k, b) in bars.iter().enumerate() {
            let y = k as f64 * bar_h;
            let _ = write!(
                s,
                "<rect class=\"bar\" data-series=\"{}\" data-row=\"{}\" data-value=\"{:.6}\" x=\"0\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} · {}: {}</title></rect>",
                esc(&series[k]),
                esc(label),
                b.value,
                sx(b.value),
                bar_h - 1.5,
                PALETTE[k % PALETTE.len()],
                esc(label),
                esc(&series[k]),
                fmt(b.value)
            );
            if let Some((lo, hi)) = b.interval {
                let ym = y + (bar_h - 1.5) / 2.0;
                let _ = write!(
                    s,
                    "<line class=\"whisker\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{ym:.1}\" y2=\"{ym:.1}\" stroke=\"#222\" stroke-width=\"1\" vector-effect=\"non-scaling-stroke\"/>",
                    sx(lo),
                    sx(hi)
                );
            }
        }
        let single = (bars.len() == 1).then(|| fmt(bars[0].value));
        row_close(&mut s, single.as_deref());
    }
    s.push_str("</figure>");
    s
}

/// Dots with interval whiskers, one row per label (ROAS by group and model).
pub fn dot_intervals(title: &str, rows: &[(String, f64, (f64, f64))], fmt: fn(f64) -> String) -> String {
    let h = 14.0;
    let max = rows.iter().map(|r| r.2 .1.max(r.1)).fold(0.0f64, f64::max).max(1e-12);
    let sx = |v: f64| 6.0 + v.max(0.0) / max * (STRIP_W - 12.0);
    let mut s = figure(title, "dot-intervals", &[]);
    for (label, v, (lo, hi)) in rows {
        row_open(&mut s, label, h);
        let _ = write!(
            s,
            "<line class=\"whisker\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"7\" y2=\"7\" stroke=\"#0072B2\" stroke-width=\"2\" vector-effect=\"non-scaling-stroke\"/><line class=\"dot\" data-row=\"{}\" data-value=\"{v:.6}\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"1\" y2=\"13\" stroke=\"#0072B2\" stroke-width=\"6\" vector-effect=\"non-scaling-stroke\"><title>{}: {} ({} – {})</title></line>",
            sx(*lo),
            sx(*hi),
            esc(label),
            sx(*v),
            sx(*v),
            esc(label),
            fmt(*v),
            fmt(*lo),
            fmt(*hi)
        );
        row_close(&mut s, Some(&format!("{} ({} – {})", fmt(*v), fmt(*lo), fmt(*hi))));
    }
    s.push_str("</figure>");
    s
}

/// Horizontal stacked bars: each row's parts, one colour per part.
pub fn stacked_bars(title: &str, parts: &[String], rows: &[(String, Vec<f64>)]) -> String {
    let h = 14.0;
    let max = rows.iter().map(|r| r.1.iter().sum::<f64>()).fold(0.0f64, f64::max).max(1e-12);
    let mut s = figure(title, "stacked-bars", parts);
    for (label, xs) in rows {
        row_open(&mut s, label, h);
        let mut x = 0.0;
        for (k, v) in xs.iter().enumerate() {
            let w = v.max(0.0) / max * STRIP_W;
            let _ = write!(
                s,
                "<rect class=\"bar\" data-series=\"{}\" data-row=\"{}\" data-value=\"{v:.6}\" x=\"{x:.1}\" y=\"0\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{} · {}: {v:.1}</title></rect>",
                esc(&parts[k]),
                esc(label),
                PALETTE[k % PALETTE.len()],
                esc(label),
                esc(&parts[k])
            );
            x += w;
        }
        row_close(&mut s, None);
    }
    s.push_str("</figure>");
    s
}

/// A vertical histogram: one column per bin, its count above and its label below as HTML
/// text, the bar an SVG strip that stretches to the column; the columns share the width, so
/// it reflows at any width with labels at their size.
pub fn histogram(title: &str, bins: &[(String, f64)]) -> String {
    let h = 100.0;
    let max = bins.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-12);
    let mut s = format!(
        "<figure class=\"chart histogram\" role=\"img\" aria-label=\"{}\"><div class=\"bins\">",
        esc(title)
    );
    for (label, v) in bins {
        let bh = v / max * h;
        let _ = write!(
            s,
            "<div class=\"bin\"><span class=\"count\">{v:.0}</span><svg class=\"column\" aria-hidden=\"true\" viewBox=\"0 0 10 {h:.0}\" preserveAspectRatio=\"none\" xmlns=\"http://www.w3.org/2000/svg\"><rect class=\"bar\" data-row=\"{}\" data-value=\"{v:.6}\" x=\"0\" y=\"{:.1}\" width=\"10\" height=\"{bh:.1}\" fill=\"#0072B2\"><title>{}: {v:.0}</title></rect></svg><span class=\"label\">{}</span></div>",
            esc(label),
            h - bh,
            esc(label),
            esc(label)
        );
    }
    s.push_str("</div></figure>");
    s
}

/// The strongest transitions as a two-column graph: sources on the left, targets on the
/// right, one curve per transition, its width in proportion to the journeys that walk it.
pub fn transition_graph(title: &str, edges: &[(String, String, f64)]) -> String {
    let mut left: Vec<&str> = Vec::new();
    let mut right: Vec<&str> = Vec::new();
    for (a, b, _) in edges {
        if !left.contains(&a.as_str()) {
            left.push(a);
        }
        if !right.contains(&b.as_str()) {
            right.push(b);
        }
    }
    let row_h = 24.0;
    let h = 20.0 + left.len().max(right.len()) as f64 * row_h;
    let max = edges.iter().map(|e| e.2).fold(0.0f64, f64::max).max(1e-12);
    let (x1, x2) = (LABEL_W, LABEL_W + PLOT_W - 100.0);
    let y = |i: usize| 20.0 + i as f64 * row_h;
    let mut s = open(h, title, "transition-graph");
    for (a, b, c) in edges {
        let (ya, yb) = (
            y(left.iter().position(|x| x == a).unwrap_or(0)),
            y(right.iter().position(|x| x == b).unwrap_or(0)),
        );
        let xm = (x1 + x2) / 2.0;
        let _ = write!(
            s,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" data-value=\"{c:.6}\" d=\"M{x1:.1},{ya:.1} C{xm:.1},{ya:.1} {xm:.1},{yb:.1} {x2:.1},{yb:.1}\" fill=\"none\" stroke=\"#0072B2\" stroke-opacity=\"0.45\" stroke-width=\"{:.1}\"><title>{} → {}: {c:.0}</title></path>",
            esc(a),
            esc(b),
            1.0 + 11.0 * c / max,
            esc(a),
            esc(b)
        );
    }
    for (i, n) in left.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            x1 - 6.0,
            y(i) + 4.0,
            esc(n)
        );
    }
    for (i, n) in right.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            x2 + 6.0,
            y(i) + 4.0,
            esc(n)
        );
    }
    s.push_str("</svg>");
    s
}
