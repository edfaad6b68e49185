//! Recognising a Gunicorn server from its command line alone.
//!
//! Three shapes reach `/proc/<pid>/cmdline`: the `gunicorn` entry script (run directly or
//! through its interpreter), `python -m gunicorn`, and the title the `setproctitle` package
//! writes over the arguments (`gunicorn: master [name]`), which is also what Gunicorn passes
//! to its workers when the package is installed.

use super::options::{self, Options};

/// What the command line says about the process's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleHint {
    /// A `gunicorn: master [name]` title.
    Master,
    /// A `gunicorn: worker [name]` title.
    Worker,
    /// A plain command line. Workers are forks of the master and carry the same one, so
    /// only the process tree can tell them apart.
    Unknown,
}

/// Where an instance's app name came from, strongest first. Gunicorn's own precedence is
/// command line, then `GUNICORN_CMD_ARGS`, then the config file, then the app argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameSource {
    /// The bracketed name of a setproctitle title: already Gunicorn's final `proc_name`.
    Title,
    /// `-n/--name` on the command line.
    NameFlag,
    /// `--name` inside the `GUNICORN_CMD_ARGS` environment variable.
    EnvNameFlag,
    /// `proc_name = "..."` in the config file.
    ConfigFile,
    /// The WSGI app argument (or `--paste` file), Gunicorn's `default_proc_name`.
    AppUri,
    /// Nothing said: Gunicorn then names itself `gunicorn`.
    Default,
}

impl NameSource {
    /// Whether a config file's `proc_name` can still override this name.
    pub fn config_overrides(self) -> bool {
        matches!(self, Self::AppUri | Self::Default)
    }
}

/// The name Gunicorn uses when neither `proc_name` nor an app argument is given.
pub const DEFAULT_PROC_NAME: &str = "gunicorn";

/// A command line recognised as a Gunicorn server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterCmd {
    pub role: RoleHint,
    /// The app name as far as the command line tells it (see `source`).
    pub app: String,
    pub source: NameSource,
    /// `-c/--config`, when given.
    pub config: Option<String>,
    /// `--chdir`, when given: relative config paths then refer to the launch directory.
    pub chdir: Option<String>,
    /// `-t/--timeout` in whole seconds, when given and valid.
    pub timeout: Option<u32>,
}

/// Recognises a Gunicorn master (or, from a title, worker) command line.
///
/// Returns `None` for anything else, including short-lived `gunicorn --version` runs and the
/// titles of Gunicorn's non-HTTP helpers (`dirty-arbiter`, `dirty-worker`).
pub fn classify(argv: &[&str]) -> Option<MasterCmd> {
    if let Some(title) = title_of(argv) {
        return classify_title(&title);
    }

    let opts = options::parse(gunicorn_args(argv)?);
    if opts.exits_at_once {
        return None;
    }

    let (app, source) = name_from_options(&opts);
    Some(MasterCmd {
        role: RoleHint::Unknown,
        app,
        source,
        config: opts.config.map(str::to_owned),
        chdir: opts.chdir.map(str::to_owned),
        timeout: opts.timeout.and_then(parse_timeout),
    })
}

/// The `-c/--config` value of a Gunicorn command line, if any.
pub fn config_path<'a>(argv: &[&'a str]) -> Option<&'a str> {
    options::parse(gunicorn_args(argv)?).config
}

/// Gunicorn's `--timeout` value: a non-negative integer (its validator is `int()`); zero
/// is valid and means no timeout check.
pub fn parse_timeout(value: &str) -> Option<u32> {
    value.trim().parse().ok()
}

/// The app name a plain command line implies, before any config file is read.
fn name_from_options(opts: &Options<'_>) -> (String, NameSource) {
    if let Some(name) = opts.name {
        return (name.to_owned(), NameSource::NameFlag);
    }
    if let Some(app) = opts.app_uri {
        return (app.to_owned(), NameSource::AppUri);
    }
    if let Some(paste) = opts.paste {
        // Gunicorn names the instance after the file, without the `#section` part.
        let file = paste.split('#').next().unwrap_or(paste);
        return (file.to_owned(), NameSource::AppUri);
    }
    (DEFAULT_PROC_NAME.to_owned(), NameSource::Default)
}

/// The setproctitle title, when there is one. The title replaces the whole argument area and
/// is padded with NULs (sometimes spaces), so it may arrive split over several entries.
fn title_of(argv: &[&str]) -> Option<String> {
    let first = argv.first()?;
    if !first.starts_with("gunicorn: ") {
        return None;
    }
    let joined = argv.join(" ");
    Some(joined.trim_end_matches([' ', '\0']).to_owned())
}

fn classify_title(title: &str) -> Option<MasterCmd> {
    let body = title.strip_prefix("gunicorn: ")?;
    let (role, rest) = if let Some(rest) = body.strip_prefix("master ") {
        (RoleHint::Master, rest)
    } else if let Some(rest) = body.strip_prefix("worker ") {
        (RoleHint::Worker, rest)
    } else {
        return None;
    };

    // The name may itself contain brackets: take everything up to the last `]`, or to the
    // end when a long title was cut short.
    let inner = rest.trim().strip_prefix('[')?;
    let name = inner.rfind(']').map_or(inner, |end| &inner[..end]);
    Some(MasterCmd {
        role,
        app: name.to_owned(),
        source: NameSource::Title,
        config: None,
        chdir: None,
        // A title replaced the arguments, so the timeout is not visible.
        timeout: None,
    })
}

/// Gunicorn's own arguments, after the entry script or `-m gunicorn`.
fn gunicorn_args<'a, 'b>(argv: &'b [&'a str]) -> Option<&'b [&'a str]> {
    let program = basename(argv.first()?);
    if is_gunicorn_script(program) {
        return Some(&argv[1..]);
    }
    if !program.starts_with("python") {
        return None;
    }

    // Walk the interpreter's own options up to the script or module.
    let mut at = 1;
    while let Some(arg) = argv.get(at) {
        at += 1;
        if *arg == "--" {
            let script = argv.get(at)?;
            return is_gunicorn_script(basename(script)).then(|| &argv[at + 1..]);
        }
        if *arg == "--check-hash-based-pycs" {
            at += 1;
            continue;
        }
        if arg.starts_with("--") {
            // `--help`, `--version` and friends: the interpreter runs nothing.
            return None;
        }
        if arg.len() < 2 || !arg.starts_with('-') {
            return is_gunicorn_script(basename(arg)).then(|| &argv[at..]);
        }

        match python_option(&arg[1..]) {
            PythonOption::Flags => {}
            PythonOption::SkipNext => at += 1,
            PythonOption::Module(Some(module)) => {
                return is_gunicorn_module(module).then(|| &argv[at..]);
            }
            PythonOption::Module(None) => {
                let module = argv.get(at)?;
                return is_gunicorn_module(module).then(|| &argv[at + 1..]);
            }
            PythonOption::Command => return None,
        }
    }
    None
}

enum PythonOption<'a> {
    /// Only flags, like `-u` or `-OO`.
    Flags,
    /// `-W` or `-X` with its value in the next argument.
    SkipNext,
    /// `-m`, with the module attached (`-mgunicorn`) or in the next argument.
    Module(Option<&'a str>),
    /// `-c`: the interpreter runs a command string, not Gunicorn.
    Command,
}

/// One cluster of interpreter options, e.g. `u`, `OO`, `Wignore`, `um`.
fn python_option(cluster: &str) -> PythonOption<'_> {
    for (at, letter) in cluster.char_indices() {
        let attached = &cluster[at + letter.len_utf8()..];
        match letter {
            'W' | 'X' if attached.is_empty() => return PythonOption::SkipNext,
            'W' | 'X' => return PythonOption::Flags,
            'm' if attached.is_empty() => return PythonOption::Module(None),
            'm' => return PythonOption::Module(Some(attached)),
            'c' => return PythonOption::Command,
            _ => {}
        }
    }
    PythonOption::Flags
}

fn is_gunicorn_script(name: &str) -> bool {
    // Debian once shipped the Python 3 script as `gunicorn3`.
    name == "gunicorn" || name == "gunicorn3"
}

fn is_gunicorn_module(name: &str) -> bool {
    name == "gunicorn" || name == "gunicorn.app.wsgiapp"
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<&str> {
        line.split(' ').filter(|w| !w.is_empty()).collect()
    }

    fn app(line: &str) -> Option<(RoleHint, String, NameSource)> {
        classify(&words(line)).map(|cmd| (cmd.role, cmd.app, cmd.source))
    }

    fn plain(name: &str, source: NameSource) -> Option<(RoleHint, String, NameSource)> {
        Some((RoleHint::Unknown, name.to_owned(), source))
    }

    #[test]
    fn entry_script_forms() {
        let expected = plain("app:application", NameSource::AppUri);
        assert_eq!(app("gunicorn app:application"), expected);
        assert_eq!(app("/srv/venv/bin/gunicorn -w 4 app:application"), expected);
        assert_eq!(
            app("/srv/venv/bin/python3 /srv/venv/bin/gunicorn -b :80 app:application"),
            expected
        );
        assert_eq!(
            app("python3.11 -u -X dev /v/bin/gunicorn app:application"),
            expected
        );
        assert_eq!(app("python -- /v/bin/gunicorn3 app:application"), expected);
    }

    #[test]
    fn module_forms() {
        let expected = plain("myproj.wsgi:application", NameSource::AppUri);
        assert_eq!(app("python -m gunicorn myproj.wsgi:application"), expected);
        assert_eq!(
            app("/usr/bin/python3 -mgunicorn myproj.wsgi:application"),
            expected
        );
        assert_eq!(
            app("python3.12 -W ignore -um gunicorn myproj.wsgi:application"),
            expected
        );
        assert_eq!(
            app("python3 -m gunicorn.app.wsgiapp myproj.wsgi:application"),
            expected
        );
    }

    #[test]
    fn name_flag_beats_app_argument() {
        let expected = plain("shop", NameSource::NameFlag);
        assert_eq!(app("gunicorn -n shop app:app"), expected);
        assert_eq!(app("gunicorn --name shop app:app"), expected);
        assert_eq!(app("python -m gunicorn app:app --name=shop"), expected);
    }

    #[test]
    fn missing_app_falls_back_like_gunicorn() {
        assert_eq!(
            app("gunicorn -c gunicorn.conf.py"),
            plain("gunicorn", NameSource::Default)
        );
        assert_eq!(
            app("gunicorn --paste /srv/prod.ini#main"),
            plain("/srv/prod.ini", NameSource::AppUri)
        );
    }

    #[test]
    fn setproctitle_titles() {
        assert_eq!(
            classify(&["gunicorn: master [app:app]"]).map(|c| (c.role, c.app, c.source)),
            Some((RoleHint::Master, "app:app".to_owned(), NameSource::Title))
        );
        assert_eq!(
            classify(&["gunicorn: worker [shop]   "]).map(|c| (c.role, c.app)),
            Some((RoleHint::Worker, "shop".to_owned()))
        );
        // Padding that survived splitting, and a name holding brackets and a space.
        assert_eq!(
            classify(&["gunicorn: master [a [b]]", "", "\0"]).map(|c| c.app),
            Some("a [b]".to_owned())
        );
        assert_eq!(
            classify(&["gunicorn: master [my", "app]"]).map(|c| c.app),
            Some("my app".to_owned())
        );
        assert_eq!(
            classify(&["gunicorn: master [cut-sh"]).map(|c| c.app),
            Some("cut-sh".to_owned())
        );
    }

    #[test]
    fn helper_titles_are_not_servers() {
        assert_eq!(classify(&["gunicorn: dirty-arbiter"]), None);
        assert_eq!(classify(&["gunicorn: dirty-worker [shop]"]), None);
    }

    #[test]
    fn not_gunicorn() {
        for line in [
            "grep gunicorn",
            "vim gunicorn.conf.py",
            "python3 -c import gunicorn",
            "python3 gunicorn_helper.py app:app",
            "python3 -m pip install gunicorn",
            "python3",
            "python3 --version",
            "/v/bin/gunicornc status",
            "bash -c gunicorn app:app",
            "gunicorn --version",
            "gunicorn --check-config app:app",
        ] {
            assert_eq!(classify(&words(line)), None, "{line}");
        }
        assert_eq!(classify(&[]), None);
        assert_eq!(classify(&[""]), None);
    }

    #[test]
    fn config_and_chdir_are_kept() {
        let cmd = classify(&words("gunicorn -c conf/g.py --chdir /srv app:app")).unwrap();
        assert_eq!(cmd.config.as_deref(), Some("conf/g.py"));
        assert_eq!(cmd.chdir.as_deref(), Some("/srv"));

        assert_eq!(
            config_path(&words("gunicorn --config=/etc/g.py app:app")),
            Some("/etc/g.py")
        );
        assert_eq!(
            config_path(&words("python -m gunicorn -c g.py")),
            Some("g.py")
        );
        assert_eq!(config_path(&words("gunicorn app:app")), None);
        assert_eq!(config_path(&words("vim -c g.py")), None);
    }
}
