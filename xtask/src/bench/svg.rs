//! The scaling runs as one SVG: observer CPU and RSS against request rate, workers and
//! open connections, three points each. Written by hand; no plotting crate needed.

use std::fmt::Write as _;

use super::Results;

const PANEL_W: f64 = 260.0;
const PANEL_H: f64 = 180.0;
const MARGIN: f64 = 45.0;

/// One panel: a title, axis names and its points.
struct Panel<'a> {
    title: &'a str,
    x_name: &'a str,
    y_name: &'a str,
    points: Vec<(f64, f64)>,
}

pub fn scaling(results: &Results) -> String {
    let rate = |f: fn(&super::cpu::RatePoint) -> f64| -> Vec<(f64, f64)> {
        results
            .cpu
            .points
            .iter()
            .map(|p| (p.achieved, f(p)))
            .collect()
    };
    let workers = |f: fn(&super::memory::SizePoint) -> f64| -> Vec<(f64, f64)> {
        let all = &results.memory.by_workers;
        all.iter().map(|p| (f64::from(p.workers), f(p))).collect()
    };
    let conns = |f: fn(&super::memory::SizePoint) -> f64| -> Vec<(f64, f64)> {
        let all = &results.memory.by_connections;
        all.iter().map(|p| (p.connections as f64, f(p))).collect()
    };
    let panels = [
        Panel {
            title: "CPU vs request rate",
            x_name: "req/s",
            y_name: "millicores",
            points: rate(|p| p.millicores),
        },
        Panel {
            title: "CPU vs workers",
            x_name: "workers",
            y_name: "millicores",
            points: workers(|p| p.millicores),
        },
        Panel {
            title: "CPU vs open connections",
            x_name: "connections",
            y_name: "millicores",
            points: conns(|p| p.millicores),
        },
        Panel {
            title: "RSS vs request rate",
            x_name: "req/s",
            y_name: "MiB",
            points: rate(|p| p.rss_mib),
        },
        Panel {
            title: "RSS vs workers",
            x_name: "workers",
            y_name: "MiB",
            points: workers(|p| p.rss_mib),
        },
        Panel {
            title: "RSS vs open connections",
            x_name: "connections",
            y_name: "MiB",
            points: conns(|p| p.rss_mib),
        },
    ];

    let cell_w = PANEL_W + 2.0 * MARGIN;
    let cell_h = PANEL_H + 2.0 * MARGIN;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        3.0 * cell_w,
        2.0 * cell_h
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, panel) in panels.iter().enumerate() {
        let left = (i % 3) as f64 * cell_w + MARGIN;
        let top = (i / 3) as f64 * cell_h + MARGIN;
        draw(&mut svg, panel, left, top);
    }
    svg.push_str("</svg>\n");
    svg
}

fn draw(svg: &mut String, panel: &Panel<'_>, left: f64, top: f64) {
    let (bottom, right) = (top + PANEL_H, left + PANEL_W);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"#,
        left + PANEL_W / 2.0,
        top - 15.0,
        panel.title
    );
    let _ = writeln!(
        svg,
        r#"<path d="M{left},{top} V{bottom} H{right}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        left + PANEL_W / 2.0,
        bottom + 32.0,
        panel.x_name
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">{}</text>"#,
        left - 32.0,
        top + PANEL_H / 2.0,
        left - 32.0,
        top + PANEL_H / 2.0,
        panel.y_name
    );
    if panel.points.is_empty() {
        return;
    }

    // Both axes start at zero so growth reads honestly.
    let x_max = panel
        .points
        .iter()
        .map(|p| p.0)
        .fold(0.0, f64::max)
        .max(1e-9);
    let y_max = panel
        .points
        .iter()
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    let at = |(x, y): (f64, f64)| (left + x / x_max * PANEL_W, bottom - y / y_max * PANEL_H);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
        left - 4.0,
        top + 4.0,
        short(y_max)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">0</text>"#,
        left - 4.0,
        bottom
    );
    let mut path = String::new();
    for (i, point) in panel.points.iter().enumerate() {
        let (x, y) = at(*point);
        let _ = write!(path, "{}{x:.1},{y:.1} ", if i == 0 { "M" } else { "L" });
        let _ = writeln!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="steelblue"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y - 7.0,
            short(point.1)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 14.0,
            short(point.0)
        );
    }
    let _ = writeln!(
        svg,
        r#"<path d="{}" fill="none" stroke="steelblue" stroke-width="2"/>"#,
        path.trim_end()
    );
}

/// A number in at most four characters or so: 12.3, 950, 10k.
fn short(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short(12.34), "12.3");
        assert_eq!(short(950.2), "950");
        assert_eq!(short(10_000.0), "10k");
    }
}
