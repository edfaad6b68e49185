//! `proc_name` from a Gunicorn config file, found by reading lines, never by running Python.

/// The file Gunicorn reads from its working directory when no `-c` is given.
pub const DEFAULT_CONFIG_FILE: &str = "gunicorn.conf.py";

/// The value of the last top-level `proc_name = "..."` assignment in a config file.
///
/// Only a plain string literal counts. When the last assignment is anything else
/// (`proc_name = None`, an f-string, an expression) the name cannot be known without running
/// the file, so the answer is `None` and the caller falls back to the next source, as
/// Gunicorn would for `None`.
pub fn proc_name_from_config(text: &str) -> Option<String> {
    let mut last = None;
    for line in text.lines() {
        // Indented assignments sit inside a block (an `if`, a function) and may not run.
        let Some(rest) = line.strip_prefix("proc_name") else {
            continue;
        };
        let Some(value) = assigned_value(rest) else {
            continue;
        };
        last = Some(string_literal(value));
    }
    last.flatten()
}

/// The right-hand side after `proc_name`, allowing an annotation: `proc_name: str = "x"`.
fn assigned_value(rest: &str) -> Option<&str> {
    let rest = rest.trim_start();
    let rest = match rest.strip_prefix(':') {
        Some(annotated) => &annotated[annotated.find('=')?..],
        None => rest,
    };
    let value = rest.strip_prefix('=')?;
    // `proc_name == "x"` is a comparison, not an assignment.
    if value.starts_with('=') {
        return None;
    }
    Some(value.trim_start())
}

/// A one-line string literal standing alone (a trailing comment is fine).
fn string_literal(value: &str) -> Option<String> {
    let value = value.strip_prefix(['r', 'R', 'u', 'U']).unwrap_or(value);
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;

    let body = &value[1..];
    let end = body.find(quote)?;
    let (content, after) = (&body[..end], &body[end + 1..]);

    // Escapes and concatenations would need Python to evaluate them.
    let after = after.trim_start();
    let stands_alone = after.is_empty() || after.starts_with('#') || after == ";";
    (stands_alone && !content.contains('\\')).then(|| content.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_simple_assignments() {
        assert_eq!(
            proc_name_from_config("proc_name = \"shop\"\n"),
            Some("shop".to_owned())
        );
        assert_eq!(
            proc_name_from_config("proc_name='shop'"),
            Some("shop".to_owned())
        );
        assert_eq!(
            proc_name_from_config("bind = '0:80'\nproc_name: str = 'shop'  # label\nworkers = 2"),
            Some("shop".to_owned())
        );
        assert_eq!(
            proc_name_from_config("proc_name = r'a-b'"),
            Some("a-b".to_owned())
        );
    }

    #[test]
    fn the_last_top_level_assignment_wins() {
        let text =
            "proc_name = 'first'\nif DEBUG:\n    proc_name = 'debug'\nproc_name = 'second'\n";
        assert_eq!(proc_name_from_config(text), Some("second".to_owned()));

        // A later assignment that cannot be read hides the earlier literal.
        let text = "proc_name = 'first'\nproc_name = os.environ['NAME']\n";
        assert_eq!(proc_name_from_config(text), None);
    }

    #[test]
    fn ignores_lookalikes() {
        for text in [
            "",
            "proc_name_prefix = 'x'",
            "proc_name == 'x'",
            "# proc_name = 'x'",
            "    proc_name = 'x'",
            "proc_name = None",
            "proc_name = f'shop-{n}'",
            "proc_name = 'a' + 'b'",
            "proc_name = 'unterminated",
            "proc_name = 'esc\\'aped'",
        ] {
            assert_eq!(proc_name_from_config(text), None, "{text:?}");
        }
    }
}
