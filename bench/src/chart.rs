//! The batch-scaling chart as a hand-written SVG: latency against batch size, log x axis.

use std::fmt::Write;

/// One measured batch size: median latency and its spread (min..max), in ms.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub batch: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// `points` (sorted by batch size) as measured; `ideal(n)` is the latency one wave of
/// `concurrency` connects predicts: ceil(n / concurrency) × the single connect's median.
pub fn batch_chart(points: &[Point], concurrency: usize, latency_ms: u64) -> String {
    let single = points.iter().find(|p| p.batch == 1).map_or(0.0, |p| p.median);
    let ideal = |n: usize| n.div_ceil(concurrency.max(1)) as f64 * single;
    let max_batch = points.iter().map(|p| p.batch).max().unwrap_or(1).max(2);
    let top_ms = points
        .iter()
        .map(|p| p.max.max(ideal(p.batch)))
        .fold(1.0, f64::max);
    let y_max = nice_ceiling(top_ms * 1.08);

    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |n: usize| LEFT + (n.max(1) as f64).ln() / (max_batch as f64).ln() * plot_w;
    let y = |ms: f64| TOP + plot_h - ms / y_max * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">connect: SQS batch latency against batch size ({latency_ms} ms per upstream call, BATCH_CONCURRENCY {concurrency})</text>"#,
        WIDTH / 2.0
    );
    // Grid and y labels.
    for i in 0..=5 {
        let ms = y_max * f64::from(i) / 5.0;
        let yy = y(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/>"##,
            WIDTH - RIGHT
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{ms:.0}</text>"#,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    // x ticks at the measured sizes.
    for p in points {
        let xx = x(p.batch);
        let _ = writeln!(
            svg,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#eee"/>"##,
            TOP + plot_h
        );
        let _ = writeln!(
            svg,
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h + 18.0,
            p.batch
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">messages in the batch (log scale)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 16.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency of the invocation (ms)</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );

    // The ideal: one wave of `concurrency` connects costs one single connect (a step line).
    let mut steps = String::new();
    let mut n = 1;
    while n <= max_batch {
        let wave_end = (n.div_ceil(concurrency.max(1)) * concurrency.max(1)).min(max_batch);
        let _ = write!(
            steps,
            "{:.1},{:.1} {:.1},{:.1} ",
            x(n),
            y(ideal(n)),
            x(wave_end),
            y(ideal(n))
        );
        n = wave_end + 1;
    }
    let _ = writeln!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="#999" stroke-dasharray="5,4" stroke-width="1.5"/>"##,
        steps.trim_end()
    );

    // Measured: spread bars and the median line.
    for p in points {
        let xx = x(p.batch);
        let _ = writeln!(
            svg,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#1f77b4" stroke-width="1"/>"##,
            y(p.min),
            y(p.max)
        );
    }
    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.batch), y(p.median)))
        .collect();
    let _ = writeln!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##,
        line.join(" ")
    );
    for p in points {
        let (xx, yy) = (x(p.batch), y(p.median));
        let _ = writeln!(
            svg,
            r##"<circle cx="{xx:.1}" cy="{yy:.1}" r="4" fill="#1f77b4"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11">{:.0}</text>"#,
            xx + 6.0,
            yy - 6.0,
            p.median
        );
    }

    // Legend.
    let (lx, ly) = (LEFT + 14.0, TOP + 16.0);
    let _ = writeln!(
        svg,
        r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="#1f77b4" stroke-width="2"/><circle cx="{}" cy="{ly}" r="4" fill="#1f77b4"/>"##,
        lx + 28.0,
        lx + 14.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}">measured median (bar: min to max)</text>"#,
        lx + 36.0,
        ly + 4.0
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="5,4" stroke-width="1.5"/>"##,
        ly + 18.0,
        lx + 28.0,
        ly + 18.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}">ideal: ceil(n / {concurrency}) waves x a single connect</text>"#,
        lx + 36.0,
        ly + 22.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × a power of ten) at least `value`.
fn nice_ceiling(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.max(1e-9).log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&v| v >= value * (1.0 - 1e-12))
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.9), 1.0);
        assert_eq!(nice_ceiling(130.0), 150.0);
        assert_eq!(nice_ceiling(1232.0), 1500.0);
        assert_eq!(nice_ceiling(240.0), 250.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
    }

    #[test]
    fn draws_every_point_in_a_well_formed_svg() {
        let points: Vec<Point> = [1usize, 2, 5, 10, 20, 50, 100]
            .iter()
            .map(|&n| {
                let median = 105.0 * n.div_ceil(10) as f64 + 3.0;
                Point {
                    batch: n,
                    median,
                    min: median - 2.0,
                    max: median + 5.0,
                }
            })
            .collect();
        let svg = batch_chart(&points, 10, 20);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(
            svg.matches("<circle").count(),
            points.len() + 1,
            "one per point, one in the legend"
        );
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
    }
}
