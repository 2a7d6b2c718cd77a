//! The swarm bench's picture: `benches/swarm/run.sh` results (JSON lines)
//! in, an SVG document out (`ringseed-bench plot`).
//!
//! Each input line is one run: `seeder`, `peers`, `round`, ... and either
//! `report` (the generator's `--json` report) or `error`. Plotted: the
//! runs with a report whose `mode` is absent or `"peers"` and whose
//! `delay_ms` is absent or 0 (other modes and delayed runs measure other
//! things), grouped by seeder and peer count, the median over rounds. Three
//! panels side by side, the peer count on a log axis: goodput (GB/s),
//! seeder CPU (user + system s/GiB) and seeder peak RSS (MiB); one line
//! with markers per seeder, and a legend.
//!
//! Boundary: pure (text in, text out; the binary reads and writes the
//! files). Limits: [`LINES_MAX`] input lines, [`LINE_BYTES_MAX`] bytes a
//! line, [`SERIES_MAX`] seeders, [`POINTS_MAX`] peer counts a seeder.

use std::collections::BTreeMap;

use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;
use serde_json::Value;

/// Most input lines read.
pub const LINES_MAX: usize = 100_000;
/// Longest input line, in bytes.
pub const LINE_BYTES_MAX: usize = 1 << 20;
/// Most seeders (lines) in a picture.
pub const SERIES_MAX: usize = 16;
/// Most peer counts (points) per seeder.
pub const POINTS_MAX: usize = 64;
/// Picture size in pixels.
const WIDTH_PX: u32 = 1500;
const HEIGHT_PX: u32 = 560;
/// Height of the legend strip under the panels, in pixels.
const LEGEND_PX: u32 = 44;
/// Width of one legend entry, in pixels.
const LEGEND_ENTRY_PX: i32 = 190;
const FONT: &str = "sans-serif";
const MIB: f64 = (1u64 << 20) as f64;
/// The `mode` of runs that vary the peer count.
const MODE_PEERS: &str = "peers";

/// Why the results cannot be plotted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlotError {
    #[error("line {line}: not a JSON object: {reason}")]
    Json { line: usize, reason: String },
    #[error("line {line}: field {field}: expected {expected}")]
    Field {
        line: usize,
        field: &'static str,
        expected: &'static str,
    },
    #[error("line {line}: {bytes} bytes, over the limit of {max}")]
    LineTooLong {
        line: usize,
        bytes: usize,
        max: usize,
    },
    #[error("more than {max} lines")]
    TooManyLines { max: usize },
    #[error("{found} {what}, over the limit of {max}")]
    TooMany {
        what: &'static str,
        found: usize,
        max: usize,
    },
    #[error("no run to plot: no line has a report of mode \"peers\" without delay")]
    NoData,
    #[error("drawing: {0}")]
    Draw(String),
}

/// One run's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seeder: String,
    pub peers: u32,
    pub round: u32,
    pub goodput_gb_s: f64,
    /// Seeder user + system CPU per GiB, when the report has it.
    pub seeder_cpu_s_per_gib: Option<f64>,
    pub seeder_rss_mib: Option<f64>,
}

/// Medians over the rounds of one seeder at one peer count.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub peers: u32,
    pub rounds: usize,
    pub goodput_gb_s: f64,
    pub seeder_cpu_s_per_gib: Option<f64>,
    pub seeder_rss_mib: Option<f64>,
}

/// One seeder's points, by peer count.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub seeder: String,
    pub points: Vec<Point>,
}

/// The runs worth plotting in `text` (JSON lines; blank lines skipped).
/// A line that is not a JSON object, or a plotted run without `seeder`,
/// `peers` or a numeric goodput, is an error naming the line (from 1).
pub fn parse_results(text: &str) -> Result<Vec<Record>, PlotError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if line > LINES_MAX {
            return Err(PlotError::TooManyLines { max: LINES_MAX });
        }
        if raw.len() > LINE_BYTES_MAX {
            return Err(PlotError::LineTooLong {
                line,
                bytes: raw.len(),
                max: LINE_BYTES_MAX,
            });
        }
        if raw.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(raw).map_err(|e| PlotError::Json {
            line,
            reason: e.to_string(),
        })?;
        let Some(obj) = v.as_object() else {
            return Err(PlotError::Json {
                line,
                reason: "not an object".into(),
            });
        };
        let mode_ok = match obj.get("mode") {
            None | Some(Value::Null) => true,
            Some(m) => m.as_str() == Some(MODE_PEERS),
        };
        let delay_ok = match obj.get("delay_ms") {
            None | Some(Value::Null) => true,
            Some(d) => d.as_f64() == Some(0.0),
        };
        let Some(report) = obj.get("report").filter(|r| r.is_object()) else {
            continue;
        };
        if !mode_ok || !delay_ok {
            continue;
        }
        let field = |field: &'static str, expected: &'static str| PlotError::Field {
            line,
            field,
            expected,
        };
        let seeder = obj
            .get("seeder")
            .and_then(Value::as_str)
            .ok_or_else(|| field("seeder", "a string"))?
            .to_string();
        let peers = obj
            .get("peers")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| field("peers", "a count from 1"))?;
        let round = match obj.get("round") {
            None | Some(Value::Null) => 1,
            Some(r) => r
                .as_u64()
                .and_then(|r| u32::try_from(r).ok())
                .ok_or_else(|| field("round", "a count"))?,
        };
        let goodput_gb_s = report
            .get("goodput_mb_per_s")
            .and_then(Value::as_f64)
            .filter(|g| g.is_finite() && *g >= 0.0)
            .ok_or_else(|| field("report.goodput_mb_per_s", "a number >= 0"))?
            / 1e3;
        let seeder_cost = report.get("seeder").filter(|s| s.is_object());
        let num = |key: &str| {
            seeder_cost
                .and_then(|s| s.get(key))
                .and_then(Value::as_f64)
                .filter(|x| x.is_finite())
        };
        let seeder_cpu_s_per_gib = num("cpu_user_s_per_gib")
            .zip(num("cpu_system_s_per_gib"))
            .map(|(u, s)| u + s);
        let seeder_rss_mib = num("peak_rss_bytes").map(|b| b / MIB);
        out.push(Record {
            seeder,
            peers,
            round,
            goodput_gb_s,
            seeder_cpu_s_per_gib,
            seeder_rss_mib,
        });
    }
    Ok(out)
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty. NaNs sort last.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    let mid = values.get(n / 2).copied()?;
    if n % 2 == 1 {
        return Some(mid);
    }
    values.get(n / 2 - 1).map(|lo| (lo + mid) / 2.0)
}

/// The records grouped by seeder (in order of first appearance) and peer
/// count (ascending), each figure the median over the rounds that have it.
pub fn group(records: &[Record]) -> Result<Vec<Series>, PlotError> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<(usize, u32), Vec<&Record>> = BTreeMap::new();
    for r in records {
        let i = match order.iter().position(|s| *s == r.seeder) {
            Some(i) => i,
            None => {
                order.push(r.seeder.clone());
                order.len() - 1
            }
        };
        by.entry((i, r.peers)).or_default().push(r);
    }
    if order.len() > SERIES_MAX {
        return Err(PlotError::TooMany {
            what: "seeders",
            found: order.len(),
            max: SERIES_MAX,
        });
    }
    let mut out: Vec<Series> = order
        .into_iter()
        .map(|seeder| Series {
            seeder,
            points: Vec::new(),
        })
        .collect();
    for ((i, peers), runs) in by {
        let pick = |f: fn(&Record) -> Option<f64>| {
            let mut v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
            median(&mut v)
        };
        let point = Point {
            peers,
            rounds: runs.len(),
            goodput_gb_s: pick(|r| Some(r.goodput_gb_s)).unwrap_or(0.0),
            seeder_cpu_s_per_gib: pick(|r| r.seeder_cpu_s_per_gib),
            seeder_rss_mib: pick(|r| r.seeder_rss_mib),
        };
        if let Some(s) = out.get_mut(i) {
            if s.points.len() >= POINTS_MAX {
                return Err(PlotError::TooMany {
                    what: "peer counts",
                    found: s.points.len() + 1,
                    max: POINTS_MAX,
                });
            }
            s.points.push(point);
        }
    }
    Ok(out)
}

/// One panel: its caption, axis label and figure.
struct Panel {
    caption: &'static str,
    unit: &'static str,
    /// Decimals of the y axis labels.
    decimals: usize,
    value: fn(&Point) -> Option<f64>,
}

const PANELS: [Panel; 3] = [
    Panel {
        caption: "Goodput",
        unit: "GB/s",
        decimals: 1,
        value: |p| Some(p.goodput_gb_s),
    },
    Panel {
        caption: "Seeder CPU per GiB (user + system)",
        unit: "CPU s/GiB",
        decimals: 2,
        value: |p| p.seeder_cpu_s_per_gib,
    },
    Panel {
        caption: "Seeder peak RSS",
        unit: "MiB",
        decimals: 0,
        value: |p| p.seeder_rss_mib,
    },
];

/// Line colours, one per seeder (cycled past the end).
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn draw_error(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// The SVG document of `series` under `title`.
pub fn render_svg(series: &[Series], title: &str) -> Result<String, PlotError> {
    let peers: Vec<u32> = {
        let mut p: Vec<u32> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.peers))
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let (Some(&lo), Some(&hi)) = (peers.first(), peers.last()) else {
        return Err(PlotError::NoData);
    };
    // Half an octave of room either side on the log axis.
    let x_range = (f64::from(lo) / 1.5)..(f64::from(hi) * 1.5);
    let keys: Vec<f64> = peers.iter().map(|&p| f64::from(p)).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let root = root.titled(title, (FONT, 28)).map_err(draw_error)?;
        let (charts, legend) =
            root.split_vertically(root.dim_in_pixel().1.saturating_sub(LEGEND_PX));
        draw_legend(&legend, series)?;
        let areas = charts.split_evenly((1, PANELS.len()));
        for (area, panel) in areas.iter().zip(PANELS.iter()) {
            let y_max = series
                .iter()
                .flat_map(|s| s.points.iter().filter_map(panel.value))
                .fold(0.0f64, f64::max);
            let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
            let mut chart = ChartBuilder::on(area)
                .caption(panel.caption, (FONT, 22))
                .margin(14)
                .x_label_area_size(50)
                .y_label_area_size(75)
                .build_cartesian_2d(
                    x_range.clone().log_scale().with_key_points(keys.clone()),
                    0.0..y_max,
                )
                .map_err(draw_error)?;
            chart
                .configure_mesh()
                .x_desc("peers (log scale)")
                .y_desc(panel.unit)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.*}", panel.decimals))
                .label_style((FONT, 17))
                .axis_desc_style((FONT, 18))
                .light_line_style(WHITE)
                .draw()
                .map_err(draw_error)?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .filter_map(|p| (panel.value)(p).map(|v| (f64::from(p.peers), v)))
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(draw_error)?;
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))
                    .map_err(draw_error)?;
            }
        }
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

/// One entry per seeder (line, marker, name), centred in `area`.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[Series],
) -> Result<(), PlotError> {
    let (w, h) = area.dim_in_pixel();
    let n = i32::try_from(series.len()).unwrap_or(i32::MAX);
    let mut x = (i32::try_from(w).unwrap_or(0) - n.saturating_mul(LEGEND_ENTRY_PX)) / 2;
    let y = i32::try_from(h / 2).unwrap_or(0);
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        area.draw(&PathElement::new(
            vec![(x, y), (x + 36, y)],
            color.stroke_width(3),
        ))
        .map_err(draw_error)?;
        area.draw(&Circle::new((x + 18, y), 5, color.filled()))
            .map_err(draw_error)?;
        let style =
            TextStyle::from((FONT, 19).into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            ));
        area.draw(&Text::new(s.seeder.clone(), (x + 44, y), style))
            .map_err(draw_error)?;
        x = x.saturating_add(LEGEND_ENTRY_PX);
    }
    Ok(())
}

/// [`parse_results`], [`group`] and [`render_svg`] in one step.
pub fn plot_results(text: &str, title: &str) -> Result<String, PlotError> {
    let records = parse_results(text)?;
    if records.is_empty() {
        return Err(PlotError::NoData);
    }
    render_svg(&group(&records)?, title)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seeder: &str, peers: u32, round: u32, mb_s: f64, cpu: f64, extra: &str) -> String {
        format!(
            r#"{{"seeder":"{seeder}","peers":{peers},"round":{round},"size":"1G"{extra},"report":{{"goodput_mb_per_s":{mb_s},"seeder":{{"cpu_user_s_per_gib":0.0,"cpu_system_s_per_gib":{cpu},"peak_rss_bytes":{rss}}}}}}}"#,
            rss = 64u64 << 20
        )
    }

    fn sample() -> String {
        [
            line("ringseed", 16, 1, 3000.0, 0.30, ""),
            line("ringseed", 16, 2, 3400.0, 0.34, ""),
            line("ringseed", 16, 3, 9000.0, 0.90, ""),
            line("libtorrent", 16, 1, 2000.0, 0.70, ""),
            line(
                "ringseed",
                256,
                1,
                2500.0,
                0.40,
                r#","mode":"peers","delay_ms":0"#,
            ),
            line("libtorrent", 256, 1, 1500.0, 0.80, ""),
            // Not plotted: another mode, a delay, a failed run.
            line("ringseed", 256, 2, 1.0, 9.0, r#","mode":"torrents""#),
            line("ringseed", 256, 3, 1.0, 9.0, r#","delay_ms":20"#),
            r#"{"seeder":"ringseed","peers":2048,"round":1,"error":"no start"}"#.to_string(),
            String::new(),
        ]
        .join("\n")
    }

    #[test]
    fn parses_reports_and_skips_other_runs() {
        let r = parse_results(&sample()).unwrap();
        assert_eq!(r.len(), 6);
        assert_eq!(r[0].seeder, "ringseed");
        assert_eq!(r[0].peers, 16);
        assert!((r[0].goodput_gb_s - 3.0).abs() < 1e-12);
        assert_eq!(r[0].seeder_cpu_s_per_gib, Some(0.30));
        assert_eq!(r[0].seeder_rss_mib, Some(64.0));
        assert!(r.iter().all(|x| x.goodput_gb_s > 0.5));
    }

    #[test]
    fn missing_seeder_cost_is_none() {
        let t = r#"{"seeder":"x","peers":4,"report":{"goodput_mb_per_s":10,"seeder":null}}"#;
        let r = parse_results(t).unwrap();
        assert_eq!(r[0].round, 1);
        assert_eq!(r[0].seeder_cpu_s_per_gib, None);
        assert_eq!(r[0].seeder_rss_mib, None);
    }

    #[test]
    fn bad_lines_are_typed_errors_naming_the_line() {
        let ok = line("a", 16, 1, 1.0, 0.1, "");
        let cases: [(String, PlotError); 6] = [
            (
                format!("{ok}\nnot json"),
                PlotError::Json {
                    line: 2,
                    reason: String::new(),
                },
            ),
            (
                format!("{ok}\n\n[1,2]"),
                PlotError::Json {
                    line: 3,
                    reason: "not an object".into(),
                },
            ),
            (
                r#"{"peers":16,"report":{"goodput_mb_per_s":1}}"#.into(),
                PlotError::Field {
                    line: 1,
                    field: "seeder",
                    expected: "a string",
                },
            ),
            (
                r#"{"seeder":"a","peers":0,"report":{"goodput_mb_per_s":1}}"#.into(),
                PlotError::Field {
                    line: 1,
                    field: "peers",
                    expected: "a count from 1",
                },
            ),
            (
                r#"{"seeder":"a","peers":3,"round":"x","report":{"goodput_mb_per_s":1}}"#.into(),
                PlotError::Field {
                    line: 1,
                    field: "round",
                    expected: "a count",
                },
            ),
            (
                r#"{"seeder":"a","peers":3,"report":{"goodput_mb_per_s":-1}}"#.into(),
                PlotError::Field {
                    line: 1,
                    field: "report.goodput_mb_per_s",
                    expected: "a number >= 0",
                },
            ),
        ];
        for (text, want) in cases {
            let got = parse_results(&text).unwrap_err();
            match (&got, &want) {
                (PlotError::Json { line: a, .. }, PlotError::Json { line: b, .. }) => {
                    assert_eq!(a, b, "{text}")
                }
                _ => assert_eq!(got, want, "{text}"),
            }
            assert!(got.to_string().starts_with("line "), "{got}");
        }
        let long = "x".repeat(LINE_BYTES_MAX + 1);
        assert_eq!(
            parse_results(&long).unwrap_err(),
            PlotError::LineTooLong {
                line: 1,
                bytes: LINE_BYTES_MAX + 1,
                max: LINE_BYTES_MAX
            }
        );
        let many = "\n".repeat(LINES_MAX + 1);
        assert_eq!(
            parse_results(&many).unwrap_err(),
            PlotError::TooManyLines { max: LINES_MAX }
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [9.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn groups_by_seeder_and_peers_with_medians_over_rounds() {
        let s = group(&parse_results(&sample()).unwrap()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].seeder, "ringseed");
        assert_eq!(s[1].seeder, "libtorrent");
        let p16 = &s[0].points[0];
        assert_eq!((p16.peers, p16.rounds), (16, 3));
        assert!((p16.goodput_gb_s - 3.4).abs() < 1e-9, "median, not mean");
        assert_eq!(p16.seeder_cpu_s_per_gib, Some(0.34));
        assert_eq!(s[0].points[1].peers, 256);
        assert_eq!(s[0].points[1].rounds, 1);
        assert_eq!(s[1].points.len(), 2);
        let too_many: Vec<Record> = (0..=SERIES_MAX)
            .map(|i| Record {
                seeder: format!("s{i}"),
                peers: 1,
                round: 1,
                goodput_gb_s: 1.0,
                seeder_cpu_s_per_gib: None,
                seeder_rss_mib: None,
            })
            .collect();
        assert!(matches!(
            group(&too_many),
            Err(PlotError::TooMany {
                what: "seeders",
                ..
            })
        ));
    }

    #[test]
    fn svg_has_every_series_and_panel() {
        let svg = plot_results(&sample(), "swarm bench: test").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in [
            "swarm bench: test",
            "ringseed",
            "libtorrent",
            "Goodput",
            "Seeder CPU per GiB",
            "Seeder peak RSS",
            "\n16\n",
            "\n256\n",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        // Lines (polylines) for 2 seeders in 3 panels, markers for each point.
        assert!(svg.matches("<polyline").count() >= 6);
        assert!(svg.matches("<circle").count() >= 12);
    }

    #[test]
    fn nothing_to_plot_is_an_error() {
        assert_eq!(plot_results("", "t").unwrap_err(), PlotError::NoData);
        let only_errors = r#"{"seeder":"a","peers":1,"error":"x"}"#;
        assert_eq!(
            plot_results(only_errors, "t").unwrap_err(),
            PlotError::NoData
        );
        assert_eq!(render_svg(&[], "t").unwrap_err(), PlotError::NoData);
    }
}
