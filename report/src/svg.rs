//! Small inline SVG charts: bars (new bytes per backup) and a stepped area (the repository's
//! size over time). Plain markup, no script; every label is escaped.

use std::fmt::Write;

use crate::text::{bytes, esc};

/// One bar.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Shown on hover.
    pub label: String,
    /// Its height, relative to the largest.
    pub value: u64,
    /// Drawn in the warning colour (an incomplete snapshot).
    pub flagged: bool,
}

/// One point of a time series.
#[derive(Debug, Clone)]
pub struct Point {
    /// Seconds since the epoch.
    pub t: i64,
    /// The value (bytes).
    pub value: u64,
    /// Shown on hover.
    pub label: String,
}

const AXIS_LEFT: f64 = 64.0;
const AXIS_BOTTOM: f64 = 18.0;

fn open(width: u32, height: u32, title: &str, class: &str) -> String {
    format!(
        r#"<svg class="{class}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    )
}

/// Bars scaled to the largest value. With `axis`, the largest value is written on the left and
/// `first`/`last` under the ends (a chart); without, it is a sparkline for a table cell.
pub fn bars(
    items: &[Bar],
    width: u32,
    height: u32,
    title: &str,
    axis: Option<(&str, &str)>,
) -> String {
    let class = if axis.is_some() { "chart" } else { "spark" };
    let mut out = open(width, height, title, class);
    let (left, bottom) = if axis.is_some() {
        (AXIS_LEFT, AXIS_BOTTOM)
    } else {
        (0.0, 0.0)
    };
    let plot_w = f64::from(width) - left;
    let plot_h = f64::from(height) - bottom - 2.0;
    let max = items.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    if let Some((first, last)) = axis {
        axis_marks(&mut out, width, height, max, first, last);
    }
    let n = items.len().max(1) as f64;
    let slot = plot_w / n;
    let gap = if slot > 4.0 { slot * 0.2 } else { 0.0 };
    for (i, b) in items.iter().enumerate() {
        let h = (b.value as f64 / max as f64 * plot_h).max(if b.value > 0 { 1.0 } else { 0.0 });
        let x = left + i as f64 * slot + gap / 2.0;
        let y = 2.0 + plot_h - h;
        let class = if b.flagged { "bar warn" } else { "bar" };
        let _ = write!(
            out,
            r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}"><title>{t}</title></rect>"#,
            w = (slot - gap).max(0.5),
            t = esc(&b.label)
        );
    }
    out.push_str("</svg>");
    out
}

/// The value axis and the two end labels.
fn axis_marks(out: &mut String, width: u32, height: u32, max: u64, first: &str, last: &str) {
    let base = f64::from(height) - AXIS_BOTTOM;
    let _ = write!(
        out,
        r#"<line class="axis" x1="{AXIS_LEFT}" y1="2" x2="{AXIS_LEFT}" y2="{base}"/><line class="axis" x1="{AXIS_LEFT}" y1="{base}" x2="{width}" y2="{base}"/><text class="tick" x="{x}" y="12" text-anchor="end">{m}</text><text class="tick" x="{x}" y="{base}" text-anchor="end">0</text><text class="tick" x="{AXIS_LEFT}" y="{h}">{f}</text><text class="tick" x="{width}" y="{h}" text-anchor="end">{l}</text>"#,
        x = AXIS_LEFT - 4.0,
        m = esc(&bytes(max)),
        h = f64::from(height) - 4.0,
        f = esc(first),
        l = esc(last),
    );
}

/// A stepped area over time, scaled from zero to the largest value, with the value axis and the
/// first and last dates.
pub fn area(points: &[Point], width: u32, height: u32, title: &str, ends: (&str, &str)) -> String {
    let mut out = open(width, height, title, "chart");
    let max = points.iter().map(|p| p.value).max().unwrap_or(0).max(1);
    axis_marks(&mut out, width, height, max, ends.0, ends.1);
    let plot_w = f64::from(width) - AXIS_LEFT;
    let base = f64::from(height) - AXIS_BOTTOM;
    let plot_h = base - 2.0;
    let t0 = points.first().map_or(0, |p| p.t);
    let t1 = points.last().map_or(0, |p| p.t);
    let span = (t1 - t0).max(0) as f64;
    let x_of = |i: usize, t: i64| {
        if span > 0.0 {
            AXIS_LEFT + (t - t0) as f64 / span * plot_w
        } else {
            AXIS_LEFT + (i as f64 + 1.0) / points.len().max(1) as f64 * plot_w
        }
    };
    let y_of = |v: u64| 2.0 + plot_h - v as f64 / max as f64 * plot_h;
    let mut path = format!("M{AXIS_LEFT:.1},{base:.1}");
    let mut y_prev = base;
    for (i, p) in points.iter().enumerate() {
        let x = x_of(i, p.t);
        let y = y_of(p.value);
        let _ = write!(path, " L{x:.1},{y_prev:.1} L{x:.1},{y:.1}");
        y_prev = y;
    }
    let _ = write!(
        path,
        " L{w:.1},{y_prev:.1} L{w:.1},{base:.1} Z",
        w = f64::from(width)
    );
    let _ = write!(out, r#"<path class="area" d="{path}"/>"#);
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            out,
            r#"<circle class="dot" cx="{x:.1}" cy="{y:.1}" r="2.5"><title>{t}</title></circle>"#,
            x = x_of(i, p.t),
            y = y_of(p.value),
            t = esc(&p.label)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let items = [
            Bar {
                label: "<b>".into(),
                value: 50,
                flagged: false,
            },
            Bar {
                label: "b".into(),
                value: 100,
                flagged: true,
            },
            Bar {
                label: "c".into(),
                value: 0,
                flagged: false,
            },
        ];
        let svg = bars(&items, 30, 22, "new <bytes>", None);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title>&lt;b&gt;</title>"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
        // The plot is 20 high: 100 fills it, 50 half of it, 0 nothing.
        assert!(svg.contains(r#"height="20.0""#), "{svg}");
        assert!(svg.contains(r#"height="10.0""#), "{svg}");
        assert!(svg.contains(r#"height="0.0""#), "{svg}");
        assert_eq!(svg.matches("bar warn").count(), 1);
    }

    #[test]
    fn the_area_steps_up_through_every_point() {
        let points = [
            Point {
                t: 0,
                value: 10,
                label: "a".into(),
            },
            Point {
                t: 100,
                value: 20,
                label: "b".into(),
            },
        ];
        let svg = area(&points, 164, 118, "size", ("d0", "d1"));
        // Plot: x from 64 to 164, y from 100 (zero) up to 2 (the largest, 20).
        assert!(svg.contains("L64.0,51.0"), "{svg}");
        assert!(svg.contains("L164.0,2.0"), "{svg}");
        assert!(svg.contains(">20 B</text>"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 2);
    }
}
