//! The gunicorn-observer daemon.

use std::{
    io::IsTerminal as _,
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context as _;
use clap::Parser as _;
use prometheus::Registry;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};
use tracing::info;
use tracing_subscriber::EnvFilter;

use gunicorn_observer::{
    aggregate::Stats,
    cli::Args,
    discover::kube::{Endpoint, KubeMetrics, Refresher},
    export::{GunicornCollector, ObserverMetrics, QueueCollector, RequestLog, server, web::Web},
    load::Probes,
    pipeline::{self, Intervals, Pipeline, Recorder},
    preflight,
    sample::Sampler,
};

fn main() -> ExitCode {
    gunicorn_observer::heap::use_one_arena();
    let args = Args::parse();
    let filter = match EnvFilter::try_new(&args.log) {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!(
                "gunicorn-observer: invalid --log filter {:?}: {err}",
                args.log
            );
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in a pod's log they are noise.
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = runtime
        .context("starting the async runtime")
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // One plain line, not a log record: this is what a person reads when it won't start.
        Err(err) => {
            eprintln!("gunicorn-observer: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    preflight::check()?;
    let buckets = args.buckets().map_err(anyhow::Error::msg)?;
    let kube_endpoint = args
        .kube_pods_url
        .as_deref()
        .map(|url| Endpoint::parse(url, args.kube_token_file.clone()))
        .transpose()
        .context("--kube-pods-url")?;

    // Like the port, a bad web config stops the start before the kernel is touched.
    let web = match &args.web_config_file {
        Some(path) => Web::load(path).context("--web.config.file")?,
        None => Web::default(),
    };
    // Bind before loading anything, so a busy port fails fast and leaves the kernel untouched.
    let listener = server::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;

    let mut probes = Probes::load_with_ring(Some(args.ring_buffer_bytes))
        .context("loading the eBPF programs")?;
    let ring = probes
        .take_events()
        .context("opening the event ring buffer")?;
    info!(programs = probes.attached(), "kernel programs attached");

    let registry = Registry::new();
    let stats = Stats::new(&buckets).with_route_limit(args.max_routes);
    let stats = Arc::new(Mutex::new(stats));
    registry
        .register(Box::new(GunicornCollector::new(Arc::clone(&stats))))
        .context("registering the Gunicorn metrics")?;
    registry
        .register(Box::new(QueueCollector::new(Arc::clone(&stats))))
        .context("registering the listen-queue metrics")?;
    let metrics = ObserverMetrics::register(&registry).context("registering self-metrics")?;
    let kube_metrics = KubeMetrics::register(&registry).context("registering kube metrics")?;
    web.metrics
        .register(&registry)
        .context("registering web metrics")?;

    let sampler = Sampler::new().context("reading the clock tick and page size")?;
    let mut pipeline = Pipeline::new(
        probes,
        Arc::clone(&stats),
        metrics,
        sampler,
        args.proc_root.clone(),
    )
    .with_route_mode(args.route_label);
    if let Some(path) = &args.record {
        pipeline.record_to(Recorder::create(path).context("starting --record")?);
    }
    if let Some(path) = &args.request_log {
        let log = RequestLog::open(path, &registry).context("starting --request-log")?;
        info!(path = %path.display(), "writing the request log");
        pipeline.log_requests_to(log);
    }
    pipeline.scan();
    // Loading parsed the kernel's whole BTF and the first scan read every process on the
    // node: over ten MiB, all freed by now, that the allocator would otherwise keep.
    gunicorn_observer::heap::release_free_pages();

    let ready = Arc::new(AtomicBool::new(true));
    let (stop, stopped) = watch::channel(false);
    let (drain_before_scrape, scrapes) = pipeline::scrape_channel();
    let state = server::ServerState {
        registry,
        ready: Arc::clone(&ready),
        web: Arc::new(web),
        drain: Some(drain_before_scrape),
    };
    let (state_tls, state_auth) = (state.web.tls.is_some(), state.web.auth.is_some());
    let server = tokio::spawn(server::serve(listener, state, stopped.clone()));
    info!(
        listen = %args.listen,
        tls = state_tls,
        basic_auth = state_auth,
        "serving /metrics"
    );

    let intervals = Intervals {
        drain: args.drain_interval(),
        rescan: args.rescan_interval(),
        sample: args.sample_interval(),
    };
    if let Some(endpoint) = kube_endpoint {
        info!(
            url = args.kube_pods_url.as_deref(),
            "labelling instances with their pods"
        );
        let refresher = Refresher::new(
            endpoint,
            Arc::clone(&stats),
            kube_metrics,
            args.kube_refresh_interval(),
        );
        tokio::spawn(refresher.run(stopped.clone()));
    }
    let events = tokio::spawn(pipeline::run(pipeline, ring, intervals, scrapes, stopped));

    wait_for_signal().await?;
    info!("shutting down");
    ready.store(false, Ordering::Release);
    let _ = stop.send(true);

    // The pipeline owns the probes; when it returns they are dropped and detached.
    events.await.context("event loop panicked")??;
    server.await.context("metrics server panicked")?;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
