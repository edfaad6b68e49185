//! A strict parser for the Prometheus text exposition format (version 0.0.4), so tests can
//! assert exact values of exact series.

use std::collections::BTreeMap;

/// Label pairs, sorted by name.
pub type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Sorted by label name, so equal label sets compare equal.
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The value of one label, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Clone, Debug, Default)]
pub struct Metrics {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
    help: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    pub kind: ParseErrorKind,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseErrorKind {
    #[error("bad metric name")]
    BadName,
    #[error("bad label")]
    BadLabel,
    #[error("unknown escape \\{0} in a label value")]
    BadEscape(char),
    #[error("unterminated label set")]
    Unterminated,
    #[error("label {0:?} given twice")]
    DuplicateLabel(String),
    #[error("bad sample value {0:?}")]
    BadValue(String),
    #[error("bad timestamp {0:?}")]
    BadTimestamp(String),
    #[error("series given twice")]
    DuplicateSeries,
    #[error("bad # TYPE line")]
    BadType,
    #[error("bad # HELP line")]
    BadHelp,
}

impl Metrics {
    pub fn parse(text: &str) -> Result<Metrics, ParseError> {
        let mut metrics = Metrics::default();
        for (index, line) in text.lines().enumerate() {
            let at = |kind| ParseError {
                line: index + 1,
                kind,
            };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                metrics.parse_comment(comment).map_err(at)?;
                continue;
            }

            let sample = parse_sample(line).map_err(at)?;
            let duplicate = metrics
                .samples
                .iter()
                .any(|seen| seen.name == sample.name && seen.labels == sample.labels);
            if duplicate {
                return Err(at(ParseErrorKind::DuplicateSeries));
            }
            metrics.samples.push(sample);
        }
        Ok(metrics)
    }

    fn parse_comment(&mut self, comment: &str) -> Result<(), ParseErrorKind> {
        let mut words = comment.trim_start().splitn(3, ' ');
        match words.next() {
            Some("TYPE") => {
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    return Err(ParseErrorKind::BadType);
                };
                let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                if !is_metric_name(name) || !known.contains(&kind.trim()) {
                    return Err(ParseErrorKind::BadType);
                }
                self.types.insert(name.to_owned(), kind.trim().to_owned());
            }
            Some("HELP") => {
                let Some(name) = words.next().filter(|name| is_metric_name(name)) else {
                    return Err(ParseErrorKind::BadHelp);
                };
                let text = unescape_help(words.next().unwrap_or_default())?;
                self.help.insert(name.to_owned(), text);
            }
            // Any other comment carries nothing.
            _ => {}
        }
        Ok(())
    }

    /// The value of the series with exactly these labels (in any order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<(&str, &str)> = labels.to_vec();
        wanted.sort_unstable();
        self.series(name)
            .find(|sample| {
                sample.labels.len() == wanted.len()
                    && sample
                        .labels
                        .iter()
                        .zip(&wanted)
                        .all(|((k, v), (wk, wv))| k == wk && v == wv)
            })
            .map(|sample| sample.value)
    }

    /// The sum over every series of `name` that has at least these labels; 0 if none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.labels.iter().any(|(k, v)| k == key && v == value))
            })
            .map(|sample| sample.value)
            .sum()
    }

    /// Values of every series of `name` that has at least the `filter` labels, keyed by the
    /// value of label `by` (series without it are left out).
    pub fn by_label(&self, name: &str, filter: &[(&str, &str)], by: &str) -> BTreeMap<String, f64> {
        let mut values = BTreeMap::new();
        for sample in self.series(name) {
            let matches = filter
                .iter()
                .all(|(key, value)| sample.label(key) == Some(*value));
            if let (true, Some(key)) = (matches, sample.label(by)) {
                *values.entry(key.to_owned()).or_default() += sample.value;
            }
        }
        values
    }

    /// Every sample of `name`, in exposition order.
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |sample| sample.name == name)
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The `# TYPE` given for a metric family.
    pub fn type_of(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }

    /// The unescaped `# HELP` text of a metric family.
    pub fn help(&self, family: &str) -> Option<&str> {
        self.help.get(family).map(String::as_str)
    }
}

fn parse_sample(line: &str) -> Result<Sample, ParseErrorKind> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(ParseErrorKind::BadName);
    }

    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inside)?;
        labels = parsed;
        rest = after;
    }

    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next().unwrap_or_default();
    let value = value
        .parse::<f64>()
        .map_err(|_| ParseErrorKind::BadValue(value.to_owned()))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(ts) => Some(
            ts.parse()
                .map_err(|_| ParseErrorKind::BadTimestamp(ts.to_owned()))?,
        ),
    };
    if let Some(extra) = fields.next() {
        return Err(ParseErrorKind::BadTimestamp(extra.to_owned()));
    }

    labels.sort_unstable();
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Parses `a="x",b="y"}` and returns the labels and what follows the `}`.
fn parse_labels(mut rest: &str) -> Result<(Labels, &str), ParseErrorKind> {
    let mut labels: Labels = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }

        let (name, after) = rest.split_once('=').ok_or(ParseErrorKind::Unterminated)?;
        let name = name.trim();
        if !is_label_name(name) {
            return Err(ParseErrorKind::BadLabel);
        }
        let quoted = after
            .trim_start()
            .strip_prefix('"')
            .ok_or(ParseErrorKind::BadLabel)?;
        let (value, after) = unescape_label_value(quoted)?;
        if labels.iter().any(|(seen, _)| seen == name) {
            return Err(ParseErrorKind::DuplicateLabel(name.to_owned()));
        }
        labels.push((name.to_owned(), value));

        rest = after.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(ParseErrorKind::Unterminated);
        }
    }
}

/// Reads a label value up to its closing quote; returns it and what follows the quote.
fn unescape_label_value(quoted: &str) -> Result<(String, &str), ParseErrorKind> {
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &quoted[at + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => return Err(ParseErrorKind::BadEscape(other)),
                None => return Err(ParseErrorKind::Unterminated),
            },
            c => value.push(c),
        }
    }
    Err(ParseErrorKind::Unterminated)
}

/// HELP text escapes only backslash and newline.
fn unescape_help(text: &str) -> Result<String, ParseErrorKind> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            _ => return Err(ParseErrorKind::BadHelp),
        }
    }
    Ok(out)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = r#"# HELP gunicorn_worker_requests_total Requests a worker answered.\nBy status.
# TYPE gunicorn_worker_requests_total counter
gunicorn_worker_requests_total{app="app",method="GET",status="200",worker_id="0"} 7
gunicorn_worker_requests_total{app="app",method="GET",status="200",worker_id="1"} 3
gunicorn_worker_requests_total{app="app",method="POST",status="500",worker_id="1"} 2
# HELP gunicorn_worker_request_duration_seconds Time from first request byte to last response byte.
# TYPE gunicorn_worker_request_duration_seconds histogram
gunicorn_worker_request_duration_seconds_bucket{app="app",le="0.005"} 1
gunicorn_worker_request_duration_seconds_bucket{app="app",le="0.25"} 9
gunicorn_worker_request_duration_seconds_bucket{app="app",le="+Inf"} 12
gunicorn_worker_request_duration_seconds_sum{app="app"} 1.5e0
gunicorn_worker_request_duration_seconds_count{app="app"} 12
# a free comment
odd_labels{path="a\"b\\c\nd", empty=""} -Inf 1700000000000
up NaN
"#;

    fn parsed() -> Metrics {
        Metrics::parse(EXPOSITION).expect("valid exposition")
    }

    #[test]
    fn gets_a_series_by_its_exact_label_set_in_any_order() {
        let metrics = parsed();
        let name = "gunicorn_worker_requests_total";
        let labels = [
            ("worker_id", "1"),
            ("status", "200"),
            ("method", "GET"),
            ("app", "app"),
        ];
        assert_eq!(metrics.get(name, &labels), Some(3.0));
        // A subset of the labels is not the series.
        assert_eq!(metrics.get(name, &[("worker_id", "1")]), None);
        assert_eq!(metrics.get("missing_metric", &[]), None);
    }

    #[test]
    fn sums_series_matching_partial_labels() {
        let metrics = parsed();
        let name = "gunicorn_worker_requests_total";
        assert_eq!(metrics.sum(name, &[]), 12.0);
        assert_eq!(metrics.sum(name, &[("worker_id", "1")]), 5.0);
        assert_eq!(
            metrics.sum(name, &[("method", "GET"), ("status", "200")]),
            10.0
        );
        assert_eq!(metrics.sum(name, &[("status", "404")]), 0.0);
    }

    #[test]
    fn reads_histogram_buckets_sum_and_count() {
        let metrics = parsed();
        let family = "gunicorn_worker_request_duration_seconds";
        let bucket = format!("{family}_bucket");
        assert_eq!(
            metrics.get(&bucket, &[("app", "app"), ("le", "0.25")]),
            Some(9.0)
        );
        assert_eq!(
            metrics.get(&bucket, &[("le", "+Inf"), ("app", "app")]),
            Some(12.0)
        );
        assert_eq!(
            metrics.get(&format!("{family}_sum"), &[("app", "app")]),
            Some(1.5)
        );
        assert_eq!(
            metrics.get(&format!("{family}_count"), &[("app", "app")]),
            Some(12.0)
        );
        assert_eq!(metrics.type_of(family), Some("histogram"));
        assert_eq!(metrics.series(&bucket).count(), 3);
    }

    #[test]
    fn unescapes_label_values_and_help_and_reads_timestamps() {
        let metrics = parsed();
        let odd = metrics.series("odd_labels").next().expect("odd_labels");
        assert_eq!(
            odd.labels,
            vec![
                ("empty".to_owned(), String::new()),
                ("path".to_owned(), "a\"b\\c\nd".to_owned()),
            ]
        );
        assert_eq!(odd.value, f64::NEG_INFINITY);
        assert_eq!(odd.timestamp_ms, Some(1_700_000_000_000));
        assert!(metrics.get("up", &[]).expect("up").is_nan());
        assert_eq!(
            metrics.help("gunicorn_worker_requests_total"),
            Some("Requests a worker answered.\nBy status.")
        );
        assert_eq!(
            metrics.type_of("gunicorn_worker_requests_total"),
            Some("counter")
        );
        assert_eq!(metrics.samples().len(), 10);
    }

    #[test]
    fn rejects_malformed_lines_with_their_line_number() {
        let cases: [(&str, ParseErrorKind); 7] = [
            ("a 1\nb{x=\"\\t\"} 1", ParseErrorKind::BadEscape('t')),
            ("a 1\na 2", ParseErrorKind::DuplicateSeries),
            (
                "a{x=\"1\",x=\"2\"} 1",
                ParseErrorKind::DuplicateLabel("x".to_owned()),
            ),
            ("a{x=\"1\" 1", ParseErrorKind::Unterminated),
            ("a one", ParseErrorKind::BadValue("one".to_owned())),
            ("9a 1", ParseErrorKind::BadName),
            ("# TYPE a gauge\n# TYPE b countr", ParseErrorKind::BadType),
        ];
        for (text, kind) in cases {
            let line = text.lines().count();
            assert_eq!(
                Metrics::parse(text).unwrap_err(),
                ParseError { line, kind },
                "{text}"
            );
        }
    }
}
