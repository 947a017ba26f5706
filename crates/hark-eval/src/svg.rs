//! Small self-contained SVG charts for reports: line charts (training
//! curves) and horizontal bar charts (WER per slice).
//!
//! Written by hand rather than with `plotters`: plotters lays text out with
//! system fonts (font-kit) or an embedded TTF, neither of which CI machines
//! can be assumed to have, while an SVG viewer (the browser) lays out
//! `<text>` itself. The output is plain SVG 1.1 with no scripts.

use std::fmt::Write;

/// One named series of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
    pub color: &'a str,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Round tick step for a span, 1/2/5 × 10^n, about `n` ticks.
fn tick_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag)
}

/// A line chart with its own y axis per chart; `log_y` plots log10(y).
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series], log_y: bool) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 320.0, 60.0, 20.0, 30.0, 40.0);
    let tf = |y: f64| if log_y { y.max(1e-6).log10() } else { y };
    let pts = series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(tf(y));
        y1 = y1.max(tf(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if !log_y {
        y0 = y0.min(0.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y1 = y0 + 1.0;
    }
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - (tf(y) - y0) / (y1 - y0) * (h - top - bottom);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><title>{t}</title><rect width="100%" height="100%" fill="white"/><text x="{cx}" y="18" text-anchor="middle" font-size="13">{t}</text>"#,
        t = escape(title),
        cx = w / 2.0
    );
    // Axes and ticks.
    let _ = write!(
        s,
        r##"<g stroke="#888"><line x1="{left}" y1="{b}" x2="{r}" y2="{b}"/><line x1="{left}" y1="{top}" x2="{left}" y2="{b}"/></g>"##,
        b = h - bottom,
        r = w - right
    );
    let xs = tick_step(x1 - x0, 6.0);
    let mut x = (x0 / xs).ceil() * xs;
    while x <= x1 + 1e-9 {
        let _ =
            write!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, px(x), h - bottom + 14.0, trim(x));
        x += xs;
    }
    let ys = tick_step(y1 - y0, 5.0);
    let mut y = (y0 / ys).ceil() * ys;
    while y <= y1 + 1e-9 {
        let label = if log_y { trim(10f64.powf(y)) } else { trim(y) };
        let yy = h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom);
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{r}" y2="{yy:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            left - 4.0,
            yy + 4.0,
            r = w - right
        );
        y += ys;
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (left + w - right) / 2.0,
        h - 6.0,
        escape(x_label),
        (top + h - bottom) / 2.0,
        escape(y_label)
    );
    for (i, series) in series.iter().enumerate() {
        let path: Vec<String> = series
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        if path.len() == 1 {
            let _ = write!(s, r#"<circle cx="{}" r="3" fill="{}"/>"#, path[0].replace(',', "\" cy=\""), series.color);
        }
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{p}"/><text x="{lx}" y="{ly}" fill="{c}">{n}</text>"#,
            c = series.color,
            p = path.join(" "),
            lx = w - right - 150.0,
            ly = top + 14.0 + 14.0 * i as f64,
            n = escape(series.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars, one per `(label, value)`, values in 0..=max.
pub fn bar_chart(title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    let (w, row, left, top) = (640.0, 18.0, 230.0, 30.0);
    let h = top + row * bars.len() as f64 + 10.0;
    let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-9);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><title>{t}</title><rect width="100%" height="100%" fill="white"/><text x="{cx}" y="18" text-anchor="middle" font-size="13">{t}</text>"#,
        t = escape(title),
        cx = w / 2.0
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = top + row * i as f64;
        let len = (value / max) * (w - left - 70.0);
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{left}" y="{y:.1}" width="{len:.1}" height="{:.1}" fill="#4a7ab5"/><text x="{:.1}" y="{:.1}">{}{unit}</text>"##,
            left - 6.0,
            y + 12.0,
            escape(label),
            row - 4.0,
            left + len + 4.0,
            y + 12.0,
            trim(*value)
        );
    }
    s.push_str("</svg>");
    s
}

fn trim(v: f64) -> String {
    let s = if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.3}") };
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chart_draws_every_series_in_bounds() {
        let svg = line_chart(
            "loss <train>",
            "step",
            "loss",
            &[
                Series { name: "train", points: vec![(0.0, 5.0), (10.0, 2.0), (20.0, 1.0)], color: "red" },
                Series { name: "dev", points: vec![(20.0, 1.5)], color: "blue" },
            ],
            false,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("loss &lt;train&gt;"), "titles are escaped");
        assert_eq!(svg.matches("<polyline").count(), 2);
        // Every plotted coordinate lies inside the 640 × 320 canvas.
        let points = svg.split("points=\"").skip(1).map(|p| p.split('"').next().unwrap());
        for p in points.flat_map(|p| p.split_whitespace().map(str::to_string).collect::<Vec<_>>()) {
            let (x, y) = p.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((0.0..=640.0).contains(&x) && (0.0..=320.0).contains(&y), "{p}");
        }
    }

    #[test]
    fn bar_lengths_follow_values() {
        let svg = bar_chart("WER", " %", &[("a".into(), 10.0), ("b".into(), 5.0)]);
        let widths: Vec<f64> =
            svg.split("width=\"").skip(2).filter_map(|p| p.split('"').next()?.parse().ok()).collect();
        assert_eq!(widths.len(), 2, "{svg}");
        assert!((widths[0] - 2.0 * widths[1]).abs() < 0.2, "{widths:?}");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(10.0, 5.0), 2.0);
        assert_eq!(tick_step(0.7, 6.0), 0.2);
        assert_eq!(tick_step(3000.0, 6.0), 500.0);
    }
}
