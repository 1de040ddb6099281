//! The bandwidth plot of `mmc bench`: GB/s against object size, log-log,
//! one panel for the same-host path and one for the cross-host path, every
//! system's put (solid) and get (dashed). Plain SVG written by hand, no
//! dependencies.

use super::report::{fmt_size, Row};
use super::rows::{size_tag, At, Kind, RowId};
use std::collections::HashMap;
use std::fmt::Write;

struct Series {
    name: &'static str,
    color: &'static str,
    dash: bool,
    pts: Vec<(f64, f64)>,
}

const W: f64 = 1180.0;
const H: f64 = 560.0;

/// The points (size, GB/s) of every measured row of each kind in `specs`
/// at an object size. Sizes whose tag is not exact (`1.5MiB`) are left out,
/// as they always were when rows were matched by their id strings.
fn series(rows: &HashMap<RowId, &Row>, specs: &[(Kind, &'static str, &'static str, bool)]) -> Vec<Series> {
    specs
        .iter()
        .filter_map(|&(kind, name, color, dash)| {
            let mut pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|(id, r)| {
                    id.kind == kind
                        && matches!(id.at, At::Size(s) if !size_tag(s).contains('.'))
                        && r.size > 0
                        && r.m.ops > 0
                })
                .map(|(_, r)| (r.size as f64, r.gbps()))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (!pts.is_empty()).then_some(Series { name, color, dash, pts })
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn short(size: f64) -> String {
    fmt_size(size as u64)
        .replace(" KiB", "K")
        .replace(" MiB", "M")
        .replace(" GiB", "G")
}

/// One log-log panel at (x0, y0) of size (w, h).
/// Where a panel goes and what its axes span.
struct Frame {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    xr: (f64, f64),
    yr: (f64, f64),
}

fn panel(out: &mut String, f: &Frame, title: &str, ss: &[Series]) {
    let Frame { x0, y0, w, h, xr, yr } = *f;
    let (pl, pr, pt, pb) = (58.0, 12.0, 30.0, 44.0);
    let (ax, ay, aw, ah) = (x0 + pl, y0 + pt, w - pl - pr, h - pt - pb);
    let lx = |v: f64| ax + (v.log2() - xr.0.log2()) / (xr.1.log2() - xr.0.log2()).max(1e-9) * aw;
    let ly = |v: f64| ay + ah - (v.log10() - yr.0.log10()) / (yr.1.log10() - yr.0.log10()).max(1e-9) * ah;
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="15" font-weight="bold">{}</text>"#,
        ax,
        y0 + 18.0,
        esc(title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{ax:.1}" y="{ay:.1}" width="{aw:.1}" height="{ah:.1}" fill="none" stroke="#888"/>"##
    );
    // y grid: 1, 2, 5 per decade
    let mut d = yr.0;
    while d <= yr.1 * 1.0001 {
        for m in [1.0, 2.0, 5.0] {
            let v = d * m;
            if v < yr.0 * 0.9999 || v > yr.1 * 1.0001 {
                continue;
            }
            let y = ly(v);
            let (stroke, label) = if m == 1.0 { ("#ccc", true) } else { ("#eee", true) };
            let _ = writeln!(
                out,
                r#"<line x1="{ax:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{stroke}"/>"#,
                ax + aw
            );
            if label {
                let txt = if v >= 1.0 { format!("{v:.0}") } else { format!("{v}") };
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{txt}</text>"#,
                    ax - 5.0,
                    y + 4.0
                );
            }
        }
        d *= 10.0;
    }
    // x ticks at every measured size
    let mut xs: Vec<f64> = ss.iter().flat_map(|s| s.pts.iter().map(|p| p.0)).collect();
    xs.sort_by(|a, b| a.total_cmp(b));
    xs.dedup();
    for &v in &xs {
        let x = lx(v);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{ay:.1}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/>"##,
            ay + ah
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            ay + ah + 15.0,
            short(v)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">object size</text>"#,
        ax + aw / 2.0,
        ay + ah + 34.0
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">GB/s (10^9 B/s)</text>"#,
        x0 + 14.0,
        ay + ah / 2.0,
        x0 + 14.0,
        ay + ah / 2.0
    );
    for s in ss {
        let pts: Vec<String> = s
            .pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", lx(x), ly(y)))
            .collect();
        let dash = if s.dash { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            pts.join(" "),
            s.color
        );
        for &(x, y) in &s.pts {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{}: {} {:.2} GB/s</title></circle>"#,
                lx(x),
                ly(y),
                s.color,
                esc(s.name),
                short(x),
                y
            );
        }
    }
}

fn legend(out: &mut String, x: f64, y: f64, ss: &[Series]) {
    for (i, s) in ss.iter().enumerate() {
        let yy = y + i as f64 * 18.0;
        let dash = if s.dash { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{}" stroke-width="2"{dash}/>"#,
            x + 28.0,
            s.color
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            x + 34.0,
            yy + 4.0,
            esc(s.name)
        );
    }
}

/// The bandwidth-versus-size plot of the rows, or `None` when the run
/// measured no bandwidth series (the batch or scale workloads alone).
pub fn bandwidth_svg(rows: &[Row], machine: &str) -> Option<String> {
    let by: HashMap<RowId, &Row> = rows.iter().map(|r| (r.id, r)).collect();
    let same = series(
        &by,
        &[
            (Kind::ShmPut, "MemCache put_from (shm)", "#1f63b4", false),
            (Kind::ShmGet, "MemCache get_into (shm)", "#1f63b4", true),
            (Kind::ShmPutAc, "MemCache put_from, async_commit", "#17becf", false),
            (Kind::MemcpyWsWrite, "memcpy into working set", "#555555", false),
            (Kind::MemcpyWsRead, "memcpy out of working set", "#555555", true),
            (Kind::MemcpyHot, "memcpy hot (cache)", "#aaaaaa", true),
            (Kind::RedisSet, "Redis SET", "#d62728", false),
            (Kind::RedisGet, "Redis GET", "#d62728", true),
            (Kind::MooncakePut, "Mooncake put_from", "#2ca02c", false),
            (Kind::MooncakeGet, "Mooncake get_into", "#2ca02c", true),
        ],
    );
    let cross = series(
        &by,
        &[
            (Kind::CrossPut, "MemCache put_from (tcp)", "#1f63b4", false),
            (Kind::CrossGet, "MemCache get_into (tcp)", "#1f63b4", true),
            (Kind::CrossRawSend, "raw TCP stream B -> A", "#555555", false),
            (Kind::CrossRawRecv, "raw TCP stream A -> B", "#555555", true),
            (Kind::CrossRedisSet, "Redis SET", "#d62728", false),
            (Kind::CrossRedisGet, "Redis GET", "#d62728", true),
            (Kind::CrossMooncakePut, "Mooncake put_from", "#2ca02c", false),
            (Kind::CrossMooncakeGet, "Mooncake get_into", "#2ca02c", true),
        ],
    );
    let all: Vec<&(f64, f64)> = same.iter().chain(&cross).flat_map(|s| s.pts.iter()).collect();
    // Without a finite positive point there is no axis to draw (and the
    // decade grid below would never reach an infinite end).
    if !all.iter().any(|p| p.0.is_finite() && p.1.is_finite() && p.1 > 0.0) {
        return None;
    }
    let xmin = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min).min(4096.0);
    let xmax = all.iter().map(|p| p.0).fold(0.0, f64::max).max(1048576.0);
    let ymin = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min).max(1e-4);
    let ymax = all.iter().map(|p| p.1).fold(0.0, f64::max).max(ymin * 10.0);
    let yr = (10f64.powf(ymin.log10().floor()), 10f64.powf(ymax.log10().ceil()));
    let xr = (xmin / 1.3, xmax * 1.3);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="20" y="22" font-size="16" font-weight="bold">mmc bench: bandwidth against object size (one client, one run; solid = put, dashed = get)</text>"#
    );
    let _ = writeln!(
        out,
        r##"<text x="20" y="40" font-size="12" fill="#555">{}</text>"##,
        esc(machine)
    );
    let pw = 410.0;
    let frame = |x0: f64| Frame {
        x0,
        y0: 50.0,
        w: pw,
        h: H - 60.0,
        xr,
        yr,
    };
    panel(&mut out, &frame(10.0), "Same host: shared memory", &same);
    let cx = 10.0 + pw + 10.0;
    if cross.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="120" font-size="13">cross-host workload not in this run</text>"#,
            cx + 60.0
        );
    } else {
        panel(&mut out, &frame(cx), "Cross host: TCP over veth", &cross);
    }
    let lx = cx + pw + 16.0;
    let _ = writeln!(
        out,
        r#"<text x="{lx:.1}" y="92" font-size="13" font-weight="bold">same host</text>"#
    );
    legend(&mut out, lx, 110.0, &same);
    let ly = 110.0 + same.len() as f64 * 18.0 + 24.0;
    if !cross.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{lx:.1}" y="{:.1}" font-size="13" font-weight="bold">cross host</text>"#,
            ly - 18.0
        );
        legend(&mut out, lx, ly, &cross);
    }
    out.push_str("</svg>\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::measure::Measured;
    use super::*;

    #[test]
    fn plots_series_of_rows() {
        let m = |ops| Measured {
            ops,
            busy_s: 1.0,
            wall_s: 1.0,
            p50_us: None,
            p99_us: None,
            faults: 0,
            cpu_pct: None,
        };
        let rows = vec![
            Row::new(Kind::ShmPut.size(4096), "shm", "put", 4096, 1, m(1000)),
            Row::new(Kind::ShmPut.size(1 << 20), "shm", "put", 1 << 20, 1, m(1000)),
            Row::new(Kind::CrossPut.procs(2), "cross", "put", 1 << 20, 1, m(10)),
        ];
        let svg = bandwidth_svg(&rows, "test").expect("bandwidth rows give a plot");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("MemCache put_from (shm)"));
        assert!(
            svg.contains("cross-host workload not in this run"),
            "n2 rows are not sizes"
        );
    }

    #[test]
    fn rows_without_bandwidth_give_no_plot() {
        let m = Measured {
            ops: 1000,
            busy_s: 1.0,
            wall_s: 1.0,
            p50_us: None,
            p99_us: None,
            faults: 0,
            cpu_pct: None,
        };
        let rows = vec![Row::new(Kind::BatchPut.size(4096), "batch", "put", 4096, 32, m)];
        assert!(bandwidth_svg(&rows, "test").is_none());
        assert!(bandwidth_svg(&[], "test").is_none());
    }
}
