//! `fruits serve`: the app's back end over HTTP.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use fruits_serve::ServeConfig;

use super::model_args::ClassifierArgs;

/// Flags of `fruits serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub classifier: ClassifierArgs,

    /// Address to listen on (0.0.0.0 for every interface, as in a SageMaker container).
    #[arg(
        long,
        env = "FRUITS_HOST",
        default_value = "127.0.0.1",
        value_name = "ADDR"
    )]
    pub host: String,

    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, env = "FRUITS_PORT", default_value_t = 8080, value_name = "PORT")]
    pub port: u16,

    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 10.0, value_name = "MIB")]
    pub max_body_mib: f64,

    /// Refuse photos larger than this many megapixels (checked before decoding).
    #[arg(long, default_value_t = 40.0, value_name = "MP")]
    pub max_megapixels: f64,

    /// Requests handled at once; more are answered 503 at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_in_flight: usize,

    /// Seconds a request may take before it is answered 503.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub timeout: f64,

    /// Most photos per model call (micro-batching of concurrent requests).
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_batch: usize,
}

/// Runs the service until Ctrl-C or SIGTERM, then finishes the requests in flight.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if !(args.max_megapixels > 0.0 && args.max_body_mib > 0.0 && args.timeout > 0.0) {
        anyhow::bail!("--max-megapixels, --max-body-mib and --timeout must be positive");
    }
    let identifier = args.classifier.load(args.max_megapixels)?;
    let config = ServeConfig {
        max_body_bytes: (args.max_body_mib * 1024.0 * 1024.0) as usize,
        max_in_flight: args.max_in_flight.max(1),
        request_timeout: Duration::from_secs_f64(args.timeout),
        max_batch: args.max_batch.max(1),
        ..ServeConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let addr = listener.local_addr()?;
        eprintln!("listening on http://{addr} (Ctrl-C to stop)");
        fruits_serve::serve(listener, identifier, config, shutdown_signal())
            .await
            .context("the server failed")?;
        eprintln!("stopped: every request in flight was answered");
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
    eprintln!("shutting down: finishing the requests in flight");
}
