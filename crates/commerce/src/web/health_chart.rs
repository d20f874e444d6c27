//! A server's recent health as a small inline SVG (latency line, offline
//! results as red marks), drawn by a template on the server: no JS library.

use crate::app::servers::HealthPoint;

const W: f64 = 320.0;
const H: f64 = 64.0;

/// What `servers/health_chart.html` draws: numbers only, nothing from the user.
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub points: usize,
    pub online: usize,
    pub offline: usize,
    pub max_ms: i64,
    /// The latency polyline, `x,y` pairs.
    pub line: String,
    /// The x of each offline result's mark.
    pub offline_x: Vec<String>,
}

impl Chart {
    /// The chart of `points`, oldest first; `None` before the first test.
    pub fn of(points: &[HealthPoint]) -> Option<Self> {
        if points.is_empty() {
            return None;
        }
        let max = points
            .iter()
            .filter_map(|p| p.latency_ms)
            .max()
            .unwrap_or(1)
            .max(1);
        let step = if points.len() > 1 {
            W / (points.len() - 1) as f64
        } else {
            0.0
        };
        let mut line = Vec::new();
        let mut offline_x = Vec::new();
        for (i, p) in points.iter().enumerate() {
            let x = i as f64 * step;
            if p.status == "offline" {
                offline_x.push(format!("{:.1}", (x - 1.5).max(0.0)));
            } else if let Some(ms) = p.latency_ms {
                let y = H - 4.0 - (f64::from(ms) / max as f64) * (H - 8.0);
                line.push(format!("{x:.1},{y:.1}"));
            }
        }
        let online = points.iter().filter(|p| p.status == "online").count();
        Some(Self {
            width: W,
            height: H,
            points: points.len(),
            online,
            offline: points.len() - online,
            max_ms: i64::from(max),
            line: line.join(" "),
            offline_x,
        })
    }
}
