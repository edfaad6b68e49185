//! Scans of fake proc trees with exactly known contents.

use std::path::Path;

use super::fake_proc::{FakeProc, TempDir};
use super::{
    ConfigReadError, NameSource, Registry, Role, ScanError, ScanStats, WorkerRef, master_app,
    read_process, scan,
};

/// `(master, app, source, workers)` for every instance found.
type Summary = Vec<(u32, String, NameSource, Vec<u32>)>;

fn summary(proc_root: &Path) -> (Summary, ScanStats) {
    let result = scan(proc_root).expect("scan");
    let instances = result.instances.iter().map(|found| {
        let workers = found.workers.iter().map(|w| w.pid).collect();
        let app = found.app.name.clone();
        (found.master.pid, app, found.app.source, workers)
    });
    (instances.collect(), result.stats)
}

const PLAIN: &[&str] = &[
    "/srv/v/bin/python3",
    "/srv/v/bin/gunicorn",
    "-w",
    "2",
    "app:app",
];

#[test]
fn plain_command_lines_group_by_parent() {
    let proc = FakeProc::new();
    proc.process(1, 0, 1, &["/sbin/init"]);
    proc.process(50, 1, 90, &["bash"]);
    proc.process(60, 50, 95, &["grep", "gunicorn"]);
    proc.process(100, 50, 1000, PLAIN);
    // The later-started worker has the lower pid: workers come oldest first.
    proc.process(101, 100, 1010, PLAIN);
    proc.process(102, 100, 1005, PLAIN);
    // A process forked by the app inside a worker is neither master nor worker.
    proc.process(110, 101, 1020, PLAIN);

    let (instances, stats) = summary(proc.root());
    let expected = vec![(
        100,
        "app:app".to_owned(),
        NameSource::AppUri,
        vec![102, 101],
    )];
    assert_eq!(instances, expected);
    let expected = ScanStats {
        processes: 7,
        nested: 1,
        ..ScanStats::default()
    };
    assert_eq!(stats, expected);
}

#[test]
fn setproctitle_titles() {
    let proc = FakeProc::new();
    let master = "gunicorn: master [shop]";
    proc.file(
        200,
        "stat",
        b"200 (gunicorn: maste) S 1 200 200 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0",
    );
    proc.file(
        200,
        "cmdline",
        format!("{master}\0\0\0\0\0\0\0\0").as_bytes(),
    );
    proc.file(200, "environ", &[0; 64]);
    proc.process(201, 200, 510, &["gunicorn: worker [shop]"]);
    // Forked a moment ago, not yet renamed: the parent's title, yet a worker.
    proc.process(202, 200, 520, &[master]);
    // Gunicorn's dirty arbiter and its workers are not HTTP workers.
    proc.process(203, 200, 505, &["gunicorn: dirty-arbiter"]);
    proc.process(204, 203, 506, &["gunicorn: dirty-worker [shop]"]);
    // A worker whose master died and which was reparented to init.
    proc.process(300, 1, 400, &["gunicorn: worker [old]"]);

    let (instances, stats) = summary(proc.root());
    let expected = vec![(200, "shop".to_owned(), NameSource::Title, vec![201, 202])];
    assert_eq!(instances, expected);
    let expected = ScanStats {
        processes: 6,
        orphan_workers: 1,
        ..ScanStats::default()
    };
    assert_eq!(stats, expected);
}

#[test]
fn reexec_masters_are_masters() {
    let proc = FakeProc::new();
    let module = ["python3", "-m", "gunicorn", "-n", "api", "app:app"];
    proc.process(400, 1, 100, &module);
    proc.process(403, 400, 110, &module);
    // USR2: the old master forked and exec'd a new one, telling it its pid.
    proc.process(401, 400, 200, &module);
    proc.environ(401, &["PATH=/bin", "GUNICORN_PID=400"]);
    proc.process(402, 401, 210, &module);
    // A worker with some other GUNICORN_PID in its environment stays a worker.
    proc.process(404, 400, 120, &module);
    proc.environ(404, &["GUNICORN_PID=9"]);

    // Under setproctitle the environment is gone, but the new master's title differs.
    proc.process(500, 1, 300, &["gunicorn: master [web]"]);
    proc.process(501, 500, 310, &["gunicorn: master [web.2]"]);
    proc.process(502, 501, 320, &["gunicorn: worker [web.2]"]);

    let (instances, _) = summary(proc.root());
    let flag = NameSource::NameFlag;
    let title = NameSource::Title;
    let expected = vec![
        (400, "api".to_owned(), flag, vec![403, 404]),
        (401, "api".to_owned(), flag, vec![402]),
        (500, "web".to_owned(), title, vec![]),
        (501, "web.2".to_owned(), title, vec![502]),
    ];
    assert_eq!(instances, expected);
}

#[test]
fn names_from_config_files_and_environment() {
    let proc = FakeProc::new();
    let files = TempDir::new("files");
    let cwd = files.path().join("app");
    files.write(
        "app/conf/g.py",
        "bind = 'unix:/x'\nproc_name = 'fromconf'\n",
    );
    files.write("app/gunicorn.conf.py", "proc_name = \"default-file\"\n");
    files.write("etc/g.py", "proc_name = 'absolute'\n");
    files.write("launch/rel.py", "proc_name = 'via-pwd'\n");

    // -c relative to the working directory.
    proc.process(600, 1, 10, &["gunicorn", "-c", "conf/g.py", "app:app"]);
    proc.cwd(600, &cwd);
    // No -c: gunicorn.conf.py in the working directory.
    proc.process(610, 1, 11, &["gunicorn", "app:app"]);
    proc.cwd(610, &cwd);
    // --name beats the config file.
    proc.process(
        620,
        1,
        12,
        &["gunicorn", "--name", "flag", "-c", "conf/g.py", "app:app"],
    );
    proc.cwd(620, &cwd);
    // GUNICORN_CMD_ARGS --name beats the config file too.
    proc.process(630, 1, 13, &["gunicorn", "app:app"]);
    proc.environ(630, &["GUNICORN_CMD_ARGS=-w 2 --name 'env name'"]);
    proc.cwd(630, &cwd);
    // GUNICORN_CMD_ARGS -c with an absolute path, read through the process's root.
    proc.process(640, 1, 14, &["gunicorn", "app:app"]);
    proc.environ(640, &["GUNICORN_CMD_ARGS=--config=file:/etc/g.py"]);
    proc.fs_root(640, files.path());
    // --chdir hides the launch directory from cwd; PWD still names it.
    proc.process(
        650,
        1,
        15,
        &["gunicorn", "--chdir", "/elsewhere", "-c", "rel.py", "x:y"],
    );
    proc.environ(650, &["PWD=/launch"]);
    proc.fs_root(650, files.path());
    proc.cwd(650, &cwd);
    // A named config file that is missing: counted, and the app argument stands.
    proc.process(660, 1, 16, &["gunicorn", "-c", "missing.py", "app:app"]);
    proc.cwd(660, &cwd);
    // A config module cannot be read without Python; not an error.
    proc.process(
        670,
        1,
        17,
        &["gunicorn", "-c", "python:settings", "app:app"],
    );
    proc.cwd(670, &cwd);

    let (instances, stats) = summary(proc.root());
    let names: Vec<(u32, &str, NameSource)> = instances
        .iter()
        .map(|(pid, name, source, _)| (*pid, name.as_str(), *source))
        .collect();
    let expected = vec![
        (600, "fromconf", NameSource::ConfigFile),
        (610, "default-file", NameSource::ConfigFile),
        (620, "flag", NameSource::NameFlag),
        (630, "env name", NameSource::EnvNameFlag),
        (640, "absolute", NameSource::ConfigFile),
        (650, "via-pwd", NameSource::ConfigFile),
        (660, "app:app", NameSource::AppUri),
        (670, "app:app", NameSource::AppUri),
    ];
    assert_eq!(names, expected);
    assert_eq!(stats.config_unreadable, 1);

    let result = scan(proc.root()).unwrap();
    let missing = ConfigReadError {
        path: "missing.py".into(),
        kind: std::io::ErrorKind::NotFound,
    };
    assert_eq!(
        result.instance(660).unwrap().app.config_error,
        Some(missing)
    );
    assert_eq!(result.instance(600).unwrap().app.config_error, None);
}

#[test]
fn worker_timeouts_from_arguments_environment_and_default() {
    let proc = FakeProc::new();
    proc.process(800, 1, 10, &["gunicorn", "-t", "7", "app:app"]);
    proc.process(810, 1, 11, &["gunicorn", "app:app"]);
    proc.environ(810, &["GUNICORN_CMD_ARGS=-w 2 --timeout 12"]);
    // The command line beats GUNICORN_CMD_ARGS.
    proc.process(820, 1, 12, &["gunicorn", "--timeout=5", "app:app"]);
    proc.environ(820, &["GUNICORN_CMD_ARGS=--timeout 12"]);
    proc.process(830, 1, 13, &["gunicorn", "--name", "plain", "app:app"]);
    // Not a number: Gunicorn refuses to start with it; the default stands meanwhile.
    proc.process(840, 1, 14, &["gunicorn", "-t", "soon", "app:app"]);
    // A setproctitle title hides the arguments.
    proc.process(850, 1, 15, &["gunicorn: master [titled]"]);

    let result = scan(proc.root()).unwrap();
    let timeout = |pid| result.instance(pid).unwrap().app.timeout_secs;
    assert_eq!(timeout(800), Some(7));
    assert_eq!(timeout(810), Some(12));
    assert_eq!(timeout(820), Some(5));
    assert_eq!(timeout(830), Some(30));
    assert_eq!(timeout(840), Some(30));
    assert_eq!(timeout(850), None);
}

#[test]
fn master_app_after_an_exec() {
    let proc = FakeProc::new();
    let files = TempDir::new("exec");
    files.write("gunicorn.conf.py", "proc_name = 'late'\n");
    proc.process(700, 1, 10, &["python3", "-m", "gunicorn", "app:app"]);
    proc.cwd(700, files.path());
    proc.process(701, 1, 11, &["sleep", "9"]);

    let info = read_process(proc.root(), 700).unwrap();
    let app = master_app(proc.root(), &info).unwrap();
    assert_eq!(
        (app.name.as_str(), app.source),
        ("late", NameSource::ConfigFile)
    );

    let other = read_process(proc.root(), 701).unwrap();
    assert_eq!(master_app(proc.root(), &other), None);
}

#[test]
fn per_process_failures_are_counted_not_fatal() {
    let proc = FakeProc::new();
    proc.process(100, 1, 1000, PLAIN);
    // Gone between listing and reading: the directory is there, the files are not.
    std::fs::create_dir(proc.pid_dir(70)).unwrap();
    // A stat that does not parse.
    proc.file(71, "cmdline", b"gunicorn\0app:app\0");
    proc.file(71, "stat", b"71 (gunicorn S");
    // A cmdline that cannot be read as a file.
    std::fs::create_dir_all(proc.pid_dir(72).join("cmdline")).unwrap();
    // A Gunicorn process whose environment cannot be read.
    proc.process(73, 1, 900, PLAIN);
    std::fs::remove_file(proc.pid_dir(73).join("environ")).unwrap();
    // Kernel threads and zombies have an empty command line.
    proc.process(2, 0, 1, &[]);

    let (instances, stats) = summary(proc.root());
    let masters: Vec<u32> = instances.iter().map(|i| i.0).collect();
    assert_eq!(masters, vec![73, 100]);
    let expected = ScanStats {
        processes: 6,
        gone: 1,
        unreadable: 1,
        malformed: 1,
        env_unreadable: 1,
        ..ScanStats::default()
    };
    assert_eq!(stats, expected);
}

#[test]
fn unlistable_root_is_an_error() {
    let missing = Path::new("/nonexistent-proc-root-for-test");
    assert!(matches!(scan(missing), Err(ScanError::List { .. })));
}

#[test]
fn read_process_reports_one_pid() {
    let proc = FakeProc::new();
    proc.process(100, 42, 1234, PLAIN);
    proc.environ(100, &["GUNICORN_PID=7", "PWD=/srv"]);
    proc.process(50, 1, 9, &["bash"]);

    let info = read_process(proc.root(), 100).unwrap();
    assert_eq!((info.pid, info.ppid, info.start_time), (100, 42, 1234));
    assert_eq!(info.argv, PLAIN);
    assert_eq!(
        info.cmd.as_ref().map(|cmd| cmd.app.as_str()),
        Some("app:app")
    );
    let env = info.env.unwrap();
    assert_eq!(
        (env.gunicorn_pid, env.pwd.as_deref()),
        (Some(7), Some("/srv"))
    );

    let other = read_process(proc.root(), 50).unwrap();
    assert_eq!((other.cmd, other.env, other.start_time), (None, None, 9));

    assert!(matches!(
        read_process(proc.root(), 999),
        Err(ScanError::Gone { pid: 999 })
    ));
}

#[test]
fn a_scan_fills_the_registry() {
    let proc = FakeProc::new();
    // Two instances under the same name: the older master keeps it.
    proc.process(300, 1, 2000, PLAIN);
    proc.process(301, 300, 2010, PLAIN);
    proc.process(100, 1, 1000, PLAIN);
    proc.process(101, 100, 1010, PLAIN);
    proc.process(102, 100, 1005, PLAIN);

    let result = scan(proc.root()).unwrap();
    let mut registry = Registry::new();
    let added = registry.add_scan(&result);
    let expected = vec![
        (100, Role::Master),
        (102, Role::Worker),
        (101, Role::Worker),
        (300, Role::Master),
        (301, Role::Worker),
    ];
    assert_eq!(added, expected);

    let worker = |master, slot, app: &str| {
        Some(WorkerRef {
            master,
            slot,
            app: app.into(),
        })
    };
    assert_eq!(registry.worker(102), worker(100, 0, "app:app"));
    assert_eq!(registry.worker(101), worker(100, 1, "app:app"));
    assert_eq!(registry.worker(301), worker(300, 0, "app:app#300"));
    assert_eq!(registry.is_same(101, 1010), Some(true));
    assert_eq!(registry.is_same(300, 2000), Some(true));

    // A second scan of the same tree adds nothing.
    assert_eq!(registry.add_scan(&result), vec![]);
}
