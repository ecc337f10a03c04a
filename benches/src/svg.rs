//! Minimal SVG charts for the report: a CDF line chart and a bar chart. Hand-written so
//! the report needs no plotting dependency.

use std::fmt::Write;

const W: f64 = 860.0;
const H: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 12] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f", "#393b79", "#ad494a",
];

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points, in x order.
    pub points: Vec<(f64, f64)>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="28" font-size="16" text-anchor="middle">{}</text>
"#,
        W / 2.0,
        escape(title)
    );
}

fn nice_ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    if log {
        let mut ticks = Vec::new();
        let mut t = 10f64.powf(lo.log10().floor());
        while t <= hi * 1.0001 {
            for m in [1.0, 2.0, 5.0] {
                let v = t * m;
                if v >= lo * 0.9999 && v <= hi * 1.0001 {
                    ticks.push(v);
                }
            }
            t *= 10.0;
        }
        return ticks;
    }
    let span = (hi - lo).max(1e-9);
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 7.0)
        .unwrap_or(mag * 10.0);
    let mut ticks = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-6 {
        ticks.push(v);
        v += step;
    }
    ticks
}

fn label(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A line chart of fractions (y from 0 to 1), with a logarithmic x axis when `log_x`.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> String {
    line_chart_in(title, x_label, y_label, series, log_x, None)
}

/// A line chart on a linear x axis whose y axis spans the data (from 0 to a little above
/// the largest value).
pub fn line_chart_values(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    line_chart_in(title, x_label, y_label, series, false, Some((0.0, top)))
}

fn line_chart_in(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    y_range: Option<(f64, f64)>,
) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (mut x_lo, mut x_hi) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if x_lo > x_hi {
        (x_lo, x_hi) = (1.0, 10.0);
    }
    if log_x {
        x_lo = 10f64.powf(x_lo.max(1e-3).log10().floor());
        x_hi = 10f64.powf(x_hi.max(x_lo * 10.0).log10().ceil());
    }
    let (y_lo, y_hi) = y_range.unwrap_or((0.0, 1.0));
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let fx = |x: f64| {
        let t = if log_x {
            (x.max(x_lo).log10() - x_lo.log10()) / (x_hi.log10() - x_lo.log10())
        } else {
            (x - x_lo) / (x_hi - x_lo).max(1e-9)
        };
        LEFT + t * pw
    };
    let fy = |y: f64| TOP + ph - (y - y_lo) / (y_hi - y_lo) * ph;
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    for t in nice_ticks(x_lo, x_hi, log_x) {
        let x = fx(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            label(t)
        );
    }
    let y_ticks: Vec<f64> = if y_range.is_some() {
        nice_ticks(y_lo, y_hi, false)
    } else {
        (0..=5).map(|i| i as f64 / 5.0).collect()
    };
    for v in y_ticks {
        let y = fy(v);
        let text = if y_range.is_some() && v.abs() >= 10.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        };
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{text}</text>"##,
            LEFT + pw,
            LEFT - 8.0,
            y + 4.0
        );
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", fx(x), fy(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let ly = TOP + 16.0 + i as f64 * 20.0;
        let lx = LEFT + pw + 14.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    axis_labels(&mut out, x_label, y_label);
    out.push_str("</svg>\n");
    out
}

fn axis_labels(out: &mut String, x_label: &str, y_label: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="20" y="{:.1}" text-anchor="middle" transform="rotate(-90 20 {:.1})">{}</text>"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 15.0,
        escape(x_label),
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0,
        escape(y_label)
    );
}

/// A bar chart of (label, value) pairs.
pub fn bar_chart(title: &str, y_label: &str, bars: &[(String, f64)]) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let pw = W - LEFT - 40.0;
    let ph = H - TOP - BOTTOM - 80.0;
    let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1.0);
    let ticks = nice_ticks(0.0, max, false);
    let top_val = ticks.last().copied().unwrap_or(max).max(max);
    let fy = |v: f64| TOP + ph - v / top_val * ph;
    for t in ticks {
        let y = fy(t);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 8.0,
            y + 4.0,
            label(t)
        );
    }
    let n = bars.len().max(1) as f64;
    let slot = pw / n;
    for (i, (name, v)) in bars.iter().enumerate() {
        let x = LEFT + i as f64 * slot + slot * 0.15;
        let y = fy(*v);
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
            slot * 0.7,
            TOP + ph - y
        );
        let cx = x + slot * 0.35;
        let ly = TOP + ph + 12.0;
        let _ = writeln!(
            out,
            r#"<text x="{cx:.1}" y="{ly:.1}" font-size="10" text-anchor="end" transform="rotate(-45 {cx:.1} {ly:.1})">{}</text>"#,
            escape(name)
        );
    }
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#444"/>"##,
        TOP + ph,
        LEFT + pw,
        TOP + ph
    );
    let _ = writeln!(
        out,
        r#"<text x="20" y="{:.1}" text-anchor="middle" transform="rotate(-90 20 {:.1})">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(y_label)
    );
    out.push_str("</svg>\n");
    out
}

/// The empirical CDF of `samples` as chart points.
pub fn cdf(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len() as f64;
    s.iter()
        .enumerate()
        .map(|(i, &x)| (x, (i + 1) as f64 / n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed() {
        let svg = line_chart(
            "t",
            "x",
            "y",
            &[Series {
                name: "a<b".into(),
                points: cdf(&[3.0, 1.0, 2.0]),
            }],
            true,
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a&lt;b"));
        let bars = bar_chart("t", "y", &[("one".into(), 5.0), ("two".into(), 10.0)]);
        assert_eq!(bars.matches("<rect").count(), 3, "background and two bars");
        assert_eq!(cdf(&[2.0, 1.0]), vec![(1.0, 0.5), (2.0, 1.0)]);
    }
}
