//! Charts of a bench run, as SVG: a latency histogram, echoes per second
//! over the run, latency percentiles over the run, or the percentile
//! spectrum.
//!
//! SVG only: plotters draws text into a bitmap through a system font
//! library, while an SVG carries its text as text. Convert to PNG with any
//! SVG tool (`rsvg-convert`, ImageMagick's `convert`).

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::load::Interval;

/// Bars of the latency histogram.
const BARS: u64 = 50;
const SIZE: (u32, u32) = (900, 520);

/// Refuses a path the tool cannot draw, before the run starts.
///
/// # Errors
/// The file name does not end in `.svg`.
pub fn check_path(path: &Path) -> Result<(), String> {
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    match svg {
        true => Ok(()),
        false => Err(format!(
            "--plot {}: charts are drawn as .svg (convert to PNG with rsvg-convert or ImageMagick)",
            path.display()
        )),
    }
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Histogram of round-trip times in microseconds, up to p99.9 (the rest
/// is named in the caption).
///
/// # Errors
/// The file cannot be written, or the histogram is empty.
pub fn latency(path: &Path, h: &Histogram<u64>, title: &str) -> Drawn {
    if h.is_empty() {
        return Err("no round trip was measured".into());
    }
    let (low, high) = (h.min(), h.value_at_quantile(0.999).max(h.min() + 1));
    let step = ((high - low) / BARS).max(1);
    let mut bars = Vec::new();
    let mut start = low - low % step;
    while start <= high {
        let count = h.count_between(start, start + step - 1);
        bars.push((start, start + step, count));
        start += step;
    }
    let top = bars.iter().map(|b| b.2).max().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!(
        "round trips, {title}: p50 {} µs, p99 {} µs, max {} µs ({} beyond p99.9 not drawn)",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max(),
        h.count_between(start, u64::MAX),
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 16))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(bars[0].0..start, 0u64..top + top / 10)?;
    chart
        .configure_mesh()
        .x_desc("round trip (µs)")
        .y_desc("echoes")
        .disable_x_mesh()
        .draw()?;
    chart.draw_series(bars.iter().map(|&(from, to, count)| {
        Rectangle::new([(from, 0), (to, count)], BLUE.mix(0.7).filled())
    }))?;
    root.present()?;
    Ok(())
}

/// Echoes per second between successive samples of `timeline` (seconds
/// since the start, echoes so far).
///
/// # Errors
/// The file cannot be written, or there are fewer than two samples.
pub fn throughput(path: &Path, timeline: &[(f64, u64)], title: &str) -> Drawn {
    let points: Vec<(f64, f64)> = timeline
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| {
            let rate = (w[1].1 - w[0].1) as f64 / (w[1].0 - w[0].0);
            (w[1].0, rate)
        })
        .collect();
    if points.is_empty() {
        return Err("the run was too short to chart".into());
    }
    let end = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let top = points.iter().map(|p| p.1).fold(1.0, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("echoes per second, {title}"), ("sans-serif", 16))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..end, 0.0..top * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("echoes/s")
        .draw()?;
    chart.draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

/// One of an interval's latency figures.
type Percentile = fn(&Interval) -> u64;

/// p50, p99, p99.9 and the maximum of each interval of the run, on a
/// logarithmic scale: a stall shows where it happened.
///
/// # Errors
/// The file cannot be written, or no interval was measured.
pub fn over_time(path: &Path, intervals: &[Interval], title: &str) -> Drawn {
    let measured: Vec<&Interval> = intervals.iter().filter(|i| i.messages > 0).collect();
    if measured.is_empty() {
        return Err("no interval had a round trip".into());
    }
    let end = measured.iter().map(|i| i.end_secs).fold(0.0, f64::max);
    let top = measured
        .iter()
        .map(|i| i.latency.max)
        .max()
        .unwrap_or(1)
        .max(2);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("round trips over the run, {title}"),
            ("sans-serif", 16),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..end, (1u64..top * 2).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds into the measured window")
        .y_desc("round trip (µs)")
        .draw()?;
    let lines: [(&str, Percentile, RGBColor); 4] = [
        ("p50", |i| i.latency.p50, BLUE),
        ("p99", |i| i.latency.p99, GREEN),
        ("p99.9", |i| i.latency.p999, MAGENTA),
        ("max", |i| i.latency.max, RED),
    ];
    for (name, value, color) in lines {
        let points = measured.iter().map(|i| (i.end_secs, value(i).max(1)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The percentile spectrum: the round trip at each percentile, with the
/// x axis spread as 1/(1 - q) so that p99, p99.9 and p99.99 get equal room
/// (the way HdrHistogram's plots show it).
///
/// # Errors
/// The file cannot be written, or the histogram is empty.
pub fn spectrum(path: &Path, h: &Histogram<u64>, title: &str) -> Drawn {
    if h.is_empty() {
        return Err("no round trip was measured".into());
    }
    // x = log10(1 / (1 - q)): 0 at p0, 2 at p99, 5 at p99.999.
    let points: Vec<(f64, u64)> = (0..=500)
        .map(|k| {
            let x = f64::from(k) / 100.0;
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q).max(1))
        })
        .collect();
    let top = h.max().max(2);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!(
        "round trip by percentile, {title}: p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 16))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..5.0, (1u64..top * 2).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .x_label_formatter(&|x: &f64| match x.round() as i32 {
            0 => "0".into(),
            1 => "90".into(),
            2 => "99".into(),
            3 => "99.9".into(),
            4 => "99.99".into(),
            _ => "99.999".into(),
        })
        .x_labels(6)
        .y_desc("round trip (µs)")
        .draw()?;
    chart.draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_svg_paths() {
        assert!(check_path(Path::new("a.svg")).is_ok());
        assert!(check_path(Path::new("a.SVG")).is_ok());
        assert!(check_path(Path::new("a.png")).is_err());
        assert!(check_path(Path::new("a")).is_err());
    }
}
