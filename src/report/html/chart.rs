//! Charts as inline SVG, drawn by plotters' SVG backend: a small model of what to draw
//! (lines, dashed lines, segments, points, a marked point, horizontal rules) on linear axes,
//! and [`Chart::to_svg`]. Legends are HTML (see [`Chart::legend`]) so that they never hide
//! the data.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::markup::escape;
use crate::report::ReportError;

/// Categorical colours (Tableau 10), as `#RRGGBB`.
pub const PALETTE: [&str; 10] = [
    "#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1", "#FF9DA7",
    "#9C755F", "#BAB0AC",
];

/// The colour of a marked point (the knee) and of failed requests.
pub const ALERT: &str = "#D62728";

/// How a line is stroked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    /// Solid, with a dot at every point.
    SolidWithPoints,
    /// Solid, no dots (dense lines such as CDFs).
    Solid,
    /// Long dashes.
    Dashed,
    /// Short dashes.
    Dotted,
}

/// What a chart draws, in drawing order.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// A polyline through `points` (drawn in x order as given).
    Line {
        /// Legend text.
        label: String,
        /// Data points.
        points: Vec<(f64, f64)>,
        /// A [`PALETTE`] colour index (wraps around).
        color: usize,
        /// Line style.
        stroke: Stroke,
    },
    /// Separate straight segments (one per request in a timeline).
    Segments {
        /// Legend text.
        label: String,
        /// Start and end of each segment.
        segments: Vec<((f64, f64), (f64, f64))>,
        /// A [`PALETTE`] colour index.
        color: usize,
    },
    /// Dots.
    Points {
        /// Legend text.
        label: String,
        /// Where.
        points: Vec<(f64, f64)>,
        /// A colour, `#RRGGBB`.
        color: &'static str,
    },
    /// One point ringed and labelled on the chart (the knee).
    Mark {
        /// Text beside the ring (also the legend text).
        label: String,
        /// Where.
        at: (f64, f64),
    },
    /// A horizontal line across the chart (a threshold, a baseline).
    Rule {
        /// Legend text.
        label: String,
        /// Its height.
        y: f64,
        /// A [`PALETTE`] colour index.
        color: usize,
    },
}

impl Layer {
    fn label(&self) -> &str {
        match self {
            Layer::Line { label, .. }
            | Layer::Segments { label, .. }
            | Layer::Points { label, .. }
            | Layer::Mark { label, .. }
            | Layer::Rule { label, .. } => label,
        }
    }

    /// Every coordinate the layer puts on the chart (a rule contributes only its height).
    fn coordinates(&self) -> Vec<(Option<f64>, f64)> {
        match self {
            Layer::Line { points, .. } | Layer::Points { points, .. } => {
                points.iter().map(|&(x, y)| (Some(x), y)).collect()
            }
            Layer::Segments { segments, .. } => segments
                .iter()
                .flat_map(|&(a, b)| [(Some(a.0), a.1), (Some(b.0), b.1)])
                .collect(),
            Layer::Mark { at, .. } => vec![(Some(at.0), at.1)],
            Layer::Rule { y, .. } => vec![(None, *y)],
        }
    }

    /// The legend swatch: colour and whether it is a dot, a dashed line or a line.
    fn swatch(&self) -> (&str, &'static str) {
        match self {
            Layer::Line { color, stroke, .. } => (
                palette(*color),
                match stroke {
                    Stroke::Dashed | Stroke::Dotted => "dashed",
                    _ => "line",
                },
            ),
            Layer::Segments { color, .. } => (palette(*color), "line"),
            Layer::Rule { color, .. } => (palette(*color), "dashed"),
            Layer::Points { color, .. } => (color, "dot"),
            Layer::Mark { .. } => (ALERT, "ring"),
        }
    }
}

fn palette(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// `#RRGGBB` as a plotters colour (black when malformed).
fn rgb(hex: &str) -> RGBColor {
    let channel = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
    };
    match (
        hex.len(),
        hex.starts_with('#'),
        channel(1),
        channel(3),
        channel(5),
    ) {
        (7, true, Some(r), Some(g), Some(b)) => RGBColor(r, g, b),
        _ => BLACK,
    }
}

/// One chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// A stable name, unique in the page (the figure's `data-plot` attribute).
    pub id: String,
    /// Caption.
    pub title: String,
    /// What the x axis shows, with its unit.
    pub x_label: String,
    /// What the y axis shows, with its unit.
    pub y_label: String,
    /// What is drawn.
    pub layers: Vec<Layer>,
    /// Whether the y axis starts at zero (throughputs) rather than at the smallest value.
    pub y_from_zero: bool,
    /// Whether x values are whole numbers (concurrency, tokens): ticks between them are not
    /// labelled.
    pub x_integer: bool,
    /// The same for y values (request numbers).
    pub y_integer: bool,
}

/// A tick label: at most three decimals, trailing zeros dropped (`700`, `0.45`, `1.5`).
fn tick(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// Width and height of every chart, px.
pub const SIZE: (u32, u32) = (720, 360);

/// An axis range around `values`, padded by 5 % (a single value gets ±10 %, or ±1 at 0).
fn axis_range(values: impl Iterator<Item = f64>, from_zero: bool) -> Option<(f64, f64)> {
    let (mut lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return None;
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if hi == 0.0 { 1.0 } else { hi.abs() * 0.1 };
        return Some((lo - pad, hi + pad));
    }
    let pad = (hi - lo) * 0.05;
    let lo = if from_zero && lo >= 0.0 { lo } else { lo - pad };
    Some((lo, hi + pad))
}

impl Chart {
    /// Whether there is anything to draw.
    pub fn is_empty(&self) -> bool {
        self.layers.iter().all(|l| {
            l.coordinates()
                .iter()
                .all(|(x, y)| !y.is_finite() || x.is_some_and(|x| !x.is_finite()))
        })
    }

    /// The chart as an `<svg>` element. A chart with nothing to draw is an error.
    pub fn to_svg(&self) -> Result<String, ReportError> {
        let coordinates: Vec<(Option<f64>, f64)> =
            self.layers.iter().flat_map(Layer::coordinates).collect();
        let x = axis_range(coordinates.iter().filter_map(|c| c.0), false);
        let y = axis_range(coordinates.iter().map(|c| c.1), self.y_from_zero);
        let (Some(x), Some(y)) = (x, y) else {
            return Err(self.error("nothing to draw"));
        };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            self.draw(&root, x, y).map_err(|e| self.error(e))?;
            root.present().map_err(|e| self.error(e))?;
        }
        Ok(svg)
    }

    fn error(&self, message: impl ToString) -> ReportError {
        ReportError::Plot {
            plot: self.id.clone(),
            message: message.to_string(),
        }
    }

    fn draw(
        &self,
        root: &DrawingArea<SVGBackend<'_>, Shift>,
        x: (f64, f64),
        y: (f64, f64),
    ) -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
        let integer_ticks = |v: &f64| {
            if (v - v.round()).abs() < 1e-9 {
                tick(*v)
            } else {
                String::new()
            }
        };
        let any_ticks = |v: &f64| tick(*v);
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_label_formatter(if self.x_integer {
                &integer_ticks
            } else {
                &any_ticks
            })
            .y_label_formatter(if self.y_integer {
                &integer_ticks
            } else {
                &any_ticks
            })
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        for layer in &self.layers {
            match layer {
                Layer::Line {
                    points,
                    color,
                    stroke,
                    ..
                } => {
                    let color = rgb(palette(*color));
                    let points: Vec<(f64, f64)> = points
                        .iter()
                        .copied()
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                        .collect();
                    let style = color.stroke_width(2);
                    match stroke {
                        Stroke::Solid | Stroke::SolidWithPoints => {
                            chart.draw_series([PathElement::new(points.clone(), style)])?;
                        }
                        Stroke::Dashed => {
                            chart.draw_series([DashedPathElement::new(
                                points.clone(),
                                8,
                                5,
                                style,
                            )])?;
                        }
                        Stroke::Dotted => {
                            chart.draw_series([DashedPathElement::new(
                                points.clone(),
                                3,
                                4,
                                style,
                            )])?;
                        }
                    }
                    if *stroke == Stroke::SolidWithPoints {
                        chart.draw_series(
                            points
                                .iter()
                                .map(|&p| Circle::new(p, 3, color.filled().stroke_width(1))),
                        )?;
                    }
                }
                Layer::Segments {
                    segments, color, ..
                } => {
                    let style = rgb(palette(*color)).mix(0.6).stroke_width(2);
                    chart.draw_series(
                        segments
                            .iter()
                            .map(|&(a, b)| PathElement::new(vec![a, b], style)),
                    )?;
                }
                Layer::Points { points, color, .. } => {
                    let style = rgb(color).filled();
                    chart.draw_series(points.iter().map(|&p| Circle::new(p, 2, style)))?;
                }
                Layer::Mark { label, at } => {
                    let color = rgb(ALERT);
                    chart.draw_series([EmptyElement::at(*at)
                        + Circle::new((0, 0), 9, color.stroke_width(2))
                        + Text::new(label.clone(), (12, -20), ("sans-serif", 14).into_font())])?;
                }
                Layer::Rule { y, color, .. } => {
                    chart.draw_series([DashedPathElement::new(
                        vec![(x.0, *y), (x.1, *y)],
                        6,
                        4,
                        rgb(palette(*color)).stroke_width(2),
                    )])?;
                }
            }
        }
        Ok(())
    }

    /// The chart's legend as HTML: one swatch and label per layer.
    pub fn legend(&self) -> String {
        let mut out = String::from("<ul class=\"legend\">");
        for layer in &self.layers {
            let (color, shape) = layer.swatch();
            out.push_str(&format!(
                "<li><span class=\"swatch {shape}\" style=\"--c:{color}\"></span>{}</li>",
                escape(layer.label())
            ));
        }
        out.push_str("</ul>");
        out
    }

    /// The chart as an HTML figure: caption, SVG, legend.
    pub fn figure(&self) -> Result<String, ReportError> {
        Ok(format!(
            "<figure class=\"plot\" data-plot=\"{}\"><figcaption>{}</figcaption>{}{}</figure>\n",
            escape(&self.id),
            escape(&self.title),
            self.to_svg()?,
            self.legend()
        ))
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn line(points: Vec<(f64, f64)>) -> Chart {
        Chart {
            id: "t".into(),
            title: "throughput <&>".into(),
            x_label: "concurrency".into(),
            y_label: "output tok/s".into(),
            layers: vec![
                Layer::Line {
                    label: "perf ISL 128".into(),
                    points,
                    color: 0,
                    stroke: Stroke::SolidWithPoints,
                },
                Layer::Mark {
                    label: "knee: 2".into(),
                    at: (2.0, 64.0),
                },
            ],
            y_from_zero: true,
            x_integer: true,
            y_integer: false,
        }
    }

    #[rstest]
    #[case(700.0, "700")]
    #[case(0.45, "0.45")]
    #[case(1.5, "1.5")]
    #[case(-0.0001, "0")]
    #[case(1234.5678, "1234.568")]
    fn ticks_are_short(#[case] value: f64, #[case] text: &str) {
        assert_eq!(tick(value), text);
    }

    #[test]
    fn a_chart_is_an_svg_with_its_data_and_labels() {
        let svg = line(vec![(1.0, 59.0), (2.0, 64.0), (4.0, 65.0)])
            .to_svg()
            .expect("draws");
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        assert!(svg.contains("concurrency"), "{svg}");
        assert!(svg.contains("knee: 2"), "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(svg.contains("<circle"), "{svg}");
    }

    #[test]
    fn the_figure_escapes_its_caption_and_legend() {
        let figure = line(vec![(1.0, 1.0)]).figure().expect("draws");
        assert!(figure.contains("throughput &lt;&amp;&gt;"), "{figure}");
        assert!(
            figure.contains("<li><span class=\"swatch line\""),
            "{figure}"
        );
        assert!(figure.contains("perf ISL 128</li>"), "{figure}");
    }

    #[test]
    fn nothing_to_draw_is_an_error_not_a_panic() {
        let mut chart = line(vec![(f64::NAN, 1.0)]);
        chart.layers.truncate(1);
        assert!(chart.is_empty());
        let error = chart.to_svg().expect_err("empty").to_string();
        assert!(error.contains("plot `t`"), "{error}");
    }

    #[rstest]
    #[case(&[1.0, 2.0, 3.0], false, (0.9, 3.1))]
    #[case(&[1.0, 2.0, 3.0], true, (0.0, 3.15))]
    #[case(&[5.0], false, (4.5, 5.5))]
    #[case(&[0.0], true, (-1.0, 1.0))]
    #[case(&[-2.0, 2.0], true, (-2.2, 2.2))]
    fn axes_are_padded_and_never_empty(
        #[case] values: &[f64],
        #[case] from_zero: bool,
        #[case] expected: (f64, f64),
    ) {
        let (lo, hi) = axis_range(values.iter().copied(), from_zero).expect("range");
        assert!(
            (lo - expected.0).abs() < 1e-9 && (hi - expected.1).abs() < 1e-9,
            "{lo}..{hi}"
        );
    }

    #[test]
    fn colours_parse_from_the_palette() {
        assert_eq!(rgb("#4E79A7"), RGBColor(0x4E, 0x79, 0xA7));
        assert_eq!(rgb("bad"), RGBColor(0, 0, 0));
    }
}
