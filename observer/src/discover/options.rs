//! The few Gunicorn command-line settings discovery needs, read the way Gunicorn's argparse
//! parser reads them, so that an option's value is never mistaken for the WSGI app argument.

/// Settings picked out of Gunicorn's arguments; everything else is skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// `-n/--name`: Gunicorn's `proc_name`.
    pub name: Option<&'a str>,
    /// `-c/--config`: the configuration file (or `python:module`).
    pub config: Option<&'a str>,
    /// `--chdir`: the directory Gunicorn moves to after reading its configuration.
    pub chdir: Option<&'a str>,
    /// `--paste/--paster`: a PasteDeploy file that stands in for the app argument.
    pub paste: Option<&'a str>,
    /// `-t/--timeout`: seconds of worker silence before the arbiter kills it.
    pub timeout: Option<&'a str>,
    /// The first positional argument: the WSGI app, e.g. `myproj.wsgi:application`.
    pub app_uri: Option<&'a str>,
    /// `--version`, `--help`, `--check-config` or `--print-config`: the process exits
    /// without serving, so it is not an instance.
    pub exits_at_once: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Arity {
    Flag,
    Value,
    /// `--proxy-protocol` takes its value only when one of its modes follows.
    OptionalMode,
}

/// Gunicorn 27's long options and whether they take a value. Unknown long options are taken
/// as flags: guessing a value for them would more often eat the app argument.
const LONG_OPTIONS: &[(&str, Arity)] = &[
    ("--access-logfile", Arity::Value),
    ("--access-logformat", Arity::Value),
    ("--asgi-disconnect-grace-period", Arity::Value),
    ("--asgi-lifespan", Arity::Value),
    ("--asgi-loop", Arity::Value),
    ("--backlog", Arity::Value),
    ("--bind", Arity::Value),
    ("--ca-certs", Arity::Value),
    ("--capture-output", Arity::Flag),
    ("--casefold-http-method", Arity::Flag),
    ("--cert-reqs", Arity::Value),
    ("--certfile", Arity::Value),
    ("--chdir", Arity::Value),
    ("--check-config", Arity::Flag),
    ("--ciphers", Arity::Value),
    ("--config", Arity::Value),
    ("--control-socket", Arity::Value),
    ("--control-socket-mode", Arity::Value),
    ("--daemon", Arity::Flag),
    ("--dirty-app", Arity::Value),
    ("--dirty-graceful-timeout", Arity::Value),
    ("--dirty-threads", Arity::Value),
    ("--dirty-timeout", Arity::Value),
    ("--dirty-workers", Arity::Value),
    ("--disable-redirect-access-to-syslog", Arity::Flag),
    ("--do-handshake-on-connect", Arity::Flag),
    ("--dogstatsd-tags", Arity::Value),
    ("--enable-backlog-metric", Arity::Flag),
    ("--enable-stdio-inheritance", Arity::Flag),
    ("--env", Arity::Value),
    ("--error-logfile", Arity::Value),
    ("--forwarded-allow-ips", Arity::Value),
    ("--forwarder-headers", Arity::Value),
    ("--graceful-timeout", Arity::Value),
    ("--group", Arity::Value),
    ("--header-map", Arity::Value),
    ("--help", Arity::Flag),
    ("--http-parser", Arity::Value),
    ("--http-protocols", Arity::Value),
    ("--http2-cleartext", Arity::Value),
    ("--http2-initial-window-size", Arity::Value),
    ("--http2-max-concurrent-streams", Arity::Value),
    ("--http2-max-frame-size", Arity::Value),
    ("--http2-max-header-list-size", Arity::Value),
    ("--initgroups", Arity::Flag),
    ("--keep-alive", Arity::Value),
    ("--keyfile", Arity::Value),
    ("--limit-request-field_size", Arity::Value),
    ("--limit-request-fields", Arity::Value),
    ("--limit-request-line", Arity::Value),
    ("--log-config", Arity::Value),
    ("--log-config-json", Arity::Value),
    ("--log-file", Arity::Value),
    ("--log-level", Arity::Value),
    ("--log-syslog", Arity::Flag),
    ("--log-syslog-facility", Arity::Value),
    ("--log-syslog-prefix", Arity::Value),
    ("--log-syslog-to", Arity::Value),
    ("--logger-class", Arity::Value),
    ("--max-requests", Arity::Value),
    ("--max-requests-jitter", Arity::Value),
    ("--name", Arity::Value),
    ("--no-control-socket", Arity::Flag),
    ("--no-sendfile", Arity::Flag),
    ("--paste", Arity::Value),
    ("--paste-global", Arity::Value),
    ("--paster", Arity::Value),
    ("--permit-obsolete-folding", Arity::Flag),
    ("--permit-unconventional-http-method", Arity::Flag),
    ("--permit-unconventional-http-version", Arity::Flag),
    ("--pid", Arity::Value),
    ("--preload", Arity::Flag),
    ("--print-config", Arity::Flag),
    ("--protocol", Arity::Value),
    ("--proxy-allow-from", Arity::Value),
    ("--proxy-protocol", Arity::OptionalMode),
    ("--pythonpath", Arity::Value),
    ("--reload", Arity::Flag),
    ("--reload-engine", Arity::Value),
    ("--reload-extra-file", Arity::Value),
    ("--reuse-port", Arity::Flag),
    ("--root-path", Arity::Value),
    ("--spew", Arity::Flag),
    ("--ssl-version", Arity::Value),
    ("--statsd-host", Arity::Value),
    ("--statsd-prefix", Arity::Value),
    ("--strip-header-spaces", Arity::Flag),
    ("--suppress-ragged-eofs", Arity::Flag),
    ("--threads", Arity::Value),
    ("--timeout", Arity::Value),
    ("--umask", Arity::Value),
    ("--user", Arity::Value),
    ("--uwsgi-allow-from", Arity::Value),
    ("--version", Arity::Flag),
    ("--websocket-max-message-size", Arity::Value),
    ("--worker-class", Arity::Value),
    ("--worker-connections", Arity::Value),
    ("--worker-tmp-dir", Arity::Value),
    ("--workers", Arity::Value),
];

/// Short options that take a value, with the long option each one stands for.
const SHORT_VALUES: &[(char, &str)] = &[
    ('b', "--bind"),
    ('c', "--config"),
    ('e', "--env"),
    ('g', "--group"),
    ('k', "--worker-class"),
    ('m', "--umask"),
    ('n', "--name"),
    ('p', "--pid"),
    ('t', "--timeout"),
    ('u', "--user"),
    ('w', "--workers"),
];

/// Short flags: `-D` daemon, `-R` stdio inheritance, `-v` version, `-h` help.
const SHORT_FLAGS: &[(char, &str)] = &[
    ('D', "--daemon"),
    ('R', "--enable-stdio-inheritance"),
    ('v', "--version"),
    ('h', "--help"),
];

const PROXY_PROTOCOL_MODES: &[&str] = &["off", "v1", "v2", "auto"];

/// Reads Gunicorn's arguments (everything after the `gunicorn` script or module).
pub fn parse<'a>(args: &[&'a str]) -> Options<'a> {
    let mut opts = Options::default();
    let mut rest = args.iter().copied();

    while let Some(arg) = rest.next() {
        if arg == "--" {
            // argparse: everything after `--` is positional.
            if opts.app_uri.is_none() {
                opts.app_uri = rest.next();
            }
            break;
        }

        if let Some(body) = arg.strip_prefix("--") {
            let (key, inline) = match body.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (body, None),
            };
            let Some((long, arity)) = lookup_long(key) else {
                continue;
            };
            let value = match arity {
                Arity::Flag => None,
                Arity::Value => inline.or_else(|| rest.next()),
                Arity::OptionalMode => inline.or_else(|| {
                    let next = rest.clone().next()?;
                    PROXY_PROTOCOL_MODES.contains(&next).then(|| rest.next())?
                }),
            };
            opts.record(long, value);
            continue;
        }

        if arg.len() > 1 && arg.starts_with('-') {
            parse_short_cluster(&arg[1..], &mut rest, &mut opts);
            continue;
        }

        // Gunicorn takes any number of positionals and uses the first as the app.
        if opts.app_uri.is_none() {
            opts.app_uri = Some(arg);
        }
    }
    opts
}

/// `-Dn name`, `-w4`, `-n=name`: argparse lets flags be grouped and values be attached.
fn parse_short_cluster<'a>(
    cluster: &'a str,
    rest: &mut impl Iterator<Item = &'a str>,
    opts: &mut Options<'a>,
) {
    for (at, letter) in cluster.char_indices() {
        if let Some(&(_, long)) = SHORT_FLAGS.iter().find(|(c, _)| *c == letter) {
            opts.record(long, None);
            continue;
        }

        if let Some(&(_, long)) = SHORT_VALUES.iter().find(|(c, _)| *c == letter) {
            let attached = &cluster[at + letter.len_utf8()..];
            let attached = attached.strip_prefix('=').unwrap_or(attached);
            let value = if attached.is_empty() {
                rest.next()
            } else {
                Some(attached)
            };
            opts.record(long, value);
        }

        // Either the value took the rest of the cluster, or the letter is unknown and
        // argparse would refuse the command line; in both cases stop here.
        return;
    }
}

/// An exact long option, or a unique prefix of one (argparse's `allow_abbrev`).
fn lookup_long(key: &str) -> Option<(&'static str, Arity)> {
    let key = format!("--{key}");
    if let Some(&(long, arity)) = LONG_OPTIONS.iter().find(|(long, _)| *long == key) {
        return Some((long, arity));
    }

    let mut matches = LONG_OPTIONS
        .iter()
        .filter(|(long, _)| long.starts_with(&key));
    match (matches.next(), matches.next()) {
        (Some(&(long, arity)), None) => Some((long, arity)),
        _ => None,
    }
}

impl<'a> Options<'a> {
    fn record(&mut self, long: &str, value: Option<&'a str>) {
        match long {
            // Later occurrences win, as with argparse's default `store` action.
            "--name" => self.name = value.or(self.name),
            "--config" => self.config = value.or(self.config),
            "--chdir" => self.chdir = value.or(self.chdir),
            "--paste" | "--paster" => self.paste = value.or(self.paste),
            "--timeout" => self.timeout = value.or(self.timeout),
            "--version" | "--help" | "--check-config" | "--print-config" => {
                self.exits_at_once = true;
            }
            _ => {}
        }
    }
}

/// Splits `GUNICORN_CMD_ARGS` into words the way Python's `shlex.split` does for the
/// common cases: blanks separate, single quotes are literal, double quotes and backslashes
/// escape.
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();

    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        other => word.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(line: &str) -> Options<'_> {
        let args: Vec<&str> = line.split(' ').filter(|a| !a.is_empty()).collect();
        parse(&args)
    }

    #[test]
    fn value_options_do_not_become_the_app() {
        let o = opts("-b 127.0.0.1:8000 -w 4 -k gthread --threads 8 -t 30 myproj.wsgi:application");
        assert_eq!(o.app_uri, Some("myproj.wsgi:application"));
        assert_eq!(o.name, None);

        let o =
            opts("--access-logfile - --error-logfile - --log-level debug --pid /run/g.pid app:app");
        assert_eq!(o.app_uri, Some("app:app"));

        let o = opts(
            "-e A=1 --env B=2 --chdir /srv -u www -g www --backlog 64 \
                      --worker-connections 10 --max-requests 5 --max-requests-jitter 2 \
                      --graceful-timeout 3 --keep-alive 2 -p x.pid \
                      --access-logformat %(h)s wsgi:app",
        );
        assert_eq!(o.app_uri, Some("wsgi:app"));
        assert_eq!(o.chdir, Some("/srv"));
    }

    #[test]
    fn equals_and_attached_forms() {
        let o = opts("--bind=0:80 --workers=2 --name=shop -w3 app:app");
        assert_eq!((o.name, o.app_uri), (Some("shop"), Some("app:app")));

        let o = opts("-nshop -c/etc/g.py app:app");
        assert_eq!((o.name, o.config), (Some("shop"), Some("/etc/g.py")));

        let o = opts("-n=shop app:app");
        assert_eq!(o.name, Some("shop"));

        // `-D` is a flag, so `n` in the same cluster takes the next word.
        let o = opts("-Dn shop app:app");
        assert_eq!((o.name, o.app_uri), (Some("shop"), Some("app:app")));
    }

    #[test]
    fn timeout_in_every_form() {
        assert_eq!(opts("-t 7 app:app").timeout, Some("7"));
        assert_eq!(opts("-t7 app:app").timeout, Some("7"));
        assert_eq!(opts("--timeout=45 app:app").timeout, Some("45"));
        assert_eq!(opts("--time 9 -w 2 app:app").timeout, Some("9"));
        assert_eq!(opts("-t 5 --timeout 6 app:app").timeout, Some("6"));
        assert_eq!(opts("app:app").timeout, None);
    }

    #[test]
    fn flags_take_no_value() {
        let o = opts("--preload --reload -D -R --capture-output app:app");
        assert_eq!(o.app_uri, Some("app:app"));
        assert!(!o.exits_at_once);
    }

    #[test]
    fn abbreviated_long_options_resolve_like_argparse() {
        // `--threa` is a unique prefix of `--threads`; `--log` is ambiguous and ignored.
        let o = opts("--threa 3 --na shop app:app");
        assert_eq!((o.name, o.app_uri), (Some("shop"), Some("app:app")));
        let o = opts("--log app:app");
        assert_eq!(o.app_uri, Some("app:app"));
    }

    #[test]
    fn proxy_protocol_takes_only_a_mode() {
        assert_eq!(opts("--proxy-protocol app:app").app_uri, Some("app:app"));
        assert_eq!(opts("--proxy-protocol v2 app:app").app_uri, Some("app:app"));
        assert_eq!(opts("--proxy-protocol=v1 app:app").app_uri, Some("app:app"));
    }

    #[test]
    fn later_names_win_and_double_dash_ends_options() {
        let o = opts("-n a --name b app:app");
        assert_eq!(o.name, Some("b"));
        let o = opts("-w 2 -- -odd:app");
        assert_eq!(o.app_uri, Some("-odd:app"));
    }

    #[test]
    fn one_shot_commands_are_noticed() {
        assert!(opts("--version").exits_at_once);
        assert!(opts("-v").exits_at_once);
        assert!(opts("--check-config app:app").exits_at_once);
        assert!(opts("--print-config app:app").exits_at_once);
    }

    #[test]
    fn paste_and_config() {
        let o = opts("--paste /srv/prod.ini#main --config=python:conf");
        assert_eq!(o.paste, Some("/srv/prod.ini#main"));
        assert_eq!(o.config, Some("python:conf"));
        assert_eq!(o.app_uri, None);
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            split_words(r#"  --name 'my app' -w 2 --bind="a b" x\ y "#),
            vec!["--name", "my app", "-w", "2", "--bind=a b", "x y"]
        );
        assert_eq!(split_words(""), Vec::<String>::new());
        assert_eq!(split_words("''"), vec![""]);
    }
}
