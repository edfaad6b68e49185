//! Gunicorn's access log in the one format the harness configures, the ground truth the
//! observer's counts are checked against.

/// `--access-logformat` given to every Gunicorn the harness starts: method, path, status,
/// response body bytes and request time in microseconds.
pub const FORMAT: &str = "%(m)s %(U)s %(s)s %(b)s %(D)s";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    pub method: String,
    /// As Gunicorn logs it; `None` (the word) when the app raised before Gunicorn kept it.
    pub path: String,
    pub status: u16,
    /// Response body bytes; Gunicorn logs `-` when it sent none.
    pub bytes: Option<u64>,
    pub duration_us: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("access log line {line}: {text:?} does not match `{FORMAT}`")]
pub struct AccessLogError {
    /// 1-based.
    pub line: usize,
    pub text: String,
}

/// Parses every complete (newline-terminated) line; a last line still being written is
/// left for the next read.
pub fn parse(text: &str) -> Result<Vec<AccessEntry>, AccessLogError> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end + 1],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .map(|(index, line)| {
            parse_line(line).ok_or_else(|| AccessLogError {
                line: index + 1,
                text: line.to_owned(),
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Option<AccessEntry> {
    // The path is the only field that can hold a space, so it is what lies between the
    // method and the last three fields.
    let (method, rest) = line.split_once(' ')?;
    let mut tail = rest.rsplitn(4, ' ');
    let duration_us = tail.next()?.parse().ok()?;
    let bytes = match tail.next()? {
        "-" => None,
        bytes => Some(bytes.parse().ok()?),
    };
    let status = tail.next()?.parse().ok()?;
    let path = tail.next()?;
    Some(AccessEntry {
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        bytes,
        duration_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(method: &str, path: &str, status: u16, bytes: Option<u64>, us: u64) -> AccessEntry {
        AccessEntry {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            bytes,
            duration_us: us,
        }
    }

    #[test]
    fn parses_complete_lines_only() {
        let text = "GET / 200 5 2154\nGET None 500 0 1509\nPOST /a b 204 - 17\nGET /sl";
        assert_eq!(
            parse(text),
            Ok(vec![
                entry("GET", "/", 200, Some(5), 2154),
                entry("GET", "None", 500, Some(0), 1509),
                entry("POST", "/a b", 204, None, 17),
            ])
        );
    }

    #[test]
    fn reports_the_line_that_does_not_match() {
        assert_eq!(
            parse("GET / 200 5 1\nGET / ok 5 1\n"),
            Err(AccessLogError {
                line: 2,
                text: "GET / ok 5 1".to_owned()
            })
        );
    }
}
