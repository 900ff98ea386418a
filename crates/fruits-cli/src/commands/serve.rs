//! `fruits serve`: the app's back end over HTTP.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use fruits_serve::ServeConfig;

use crate::args::ServeArgs;
use crate::context::Ctx;

/// Runs the service until Ctrl-C or SIGTERM, then finishes the requests in flight.
///
/// The service's log (listening, ready, each request with `--access-log`,
/// stopping) goes to standard output, as container platforms (SageMaker,
/// ECS, Kubernetes) collect it; errors go to standard error.
pub fn run(args: ServeArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let config = ServeConfig {
        max_body_bytes: (args.max_body_mib * 1024.0 * 1024.0) as usize,
        max_in_flight: args.max_in_flight.max(1),
        request_timeout: Duration::from_secs_f64(args.timeout),
        max_batch: args.max_batch.max(1),
        access_log: args.access_log,
        header_timeout: Duration::from_secs_f64(args.header_timeout),
        body_timeout: Duration::from_secs_f64(args.body_timeout),
        max_connections: args.max_connections,
        shutdown_grace: Duration::from_secs_f64(args.shutdown_grace),
        cors_origins: args.cors_origins.clone(),
        max_buffered_bytes: (args.max_buffered_mib * 1024.0 * 1024.0) as usize,
        errors_as_records: args.errors_as_records,
        ..ServeConfig::default()
    };
    // Refused before listening: nothing is printed as served that is not.
    config.check().context("cannot start the service")?;
    // SageMaker names the port its container must listen on.
    let port = args.sagemaker_port.unwrap_or(args.port);
    let classifier = args.classifier.clone();
    let ctx = ctx.clone();
    let max_megapixels = args.max_megapixels;
    let load = move || {
        let identifier = classifier
            .load(&ctx, max_megapixels)
            .map_err(|e| format!("{e:#}"))?;
        if identifier.classifier().file.training.augmented_rows == 0 {
            eprintln!(
                "note: this classifier has only seen studio photos (no augmented copies): photos \
                 taken in the wild score far lower; for the app, train it on `fruits run PHOTOS \
                 --out OUT --augment 4` (docs/service.md)"
            );
        }
        Ok::<_, String>(identifier)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), port))
            .await
            .with_context(|| format!("cannot listen on {}:{port}", args.host))?;
        let addr = listener.local_addr()?;
        println!("listening on http://{addr} (loading the model; Ctrl-C to stop)");
        fruits_serve::serve(listener, load, config, shutdown_signal()).await?;
        println!("stopped: every request in flight was answered");
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on Ctrl-C or SIGTERM (what SageMaker, ECS and Kubernetes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    println!("shutting down: finishing the requests in flight");
}
