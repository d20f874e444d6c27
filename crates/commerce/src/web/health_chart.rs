//! A server's recent health as a small inline SVG (latency line, offline
//! results as red marks), rendered on the server: no JS library.

use std::fmt::Write as _;

use crate::app::servers::HealthPoint;

const W: f64 = 320.0;
const H: f64 = 64.0;

/// The chart's SVG markup (numbers only, nothing from the user), or "" when
/// the server has no history yet.
pub fn svg(points: &[HealthPoint]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let max = points
        .iter()
        .filter_map(|p| p.latency_ms)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let step = if points.len() > 1 {
        W / (points.len() - 1) as f64
    } else {
        0.0
    };
    let mut line = String::new();
    let mut marks = String::new();
    for (i, p) in points.iter().enumerate() {
        let x = i as f64 * step;
        if p.status == "offline" {
            let _ = write!(
                marks,
                r##"<rect class="offline" x="{:.1}" y="0" width="3" height="{H}" fill="#d33"><title>offline</title></rect>"##,
                (x - 1.5).max(0.0)
            );
        } else if let Some(ms) = p.latency_ms {
            let y = H - 4.0 - (f64::from(ms) / max) * (H - 8.0);
            let _ = write!(line, "{x:.1},{y:.1} ");
        }
    }
    let online = points.iter().filter(|p| p.status == "online").count();
    format!(
        r##"<svg class="health-chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="last {n} results: {online} online, {offline} offline; latency up to {max} ms" data-points="{n}" data-offline="{offline}"><polyline fill="none" stroke="#2a7" stroke-width="2" points="{line}"/>{marks}</svg>"##,
        n = points.len(),
        offline = points.len() - online,
        line = line.trim_end(),
    )
}
