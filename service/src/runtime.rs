//! Process plumbing shared by the binaries: the runtime, shutdown, logging.

use std::io::IsTerminal;

use tokio_util::sync::CancellationToken;

/// A multi-threaded tokio runtime with I/O and timers.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// A token that is cancelled on Ctrl-C (SIGINT) or SIGTERM. Call it inside a runtime; the
/// program's long-running parts take the token and stop cleanly when it fires.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
        trigger.cancel();
    });
    token
}

/// Logs to stderr with the filter from `DSI_LOG`, else `RUST_LOG`, else `default`
/// (for example `info,sqlx=warn`); colours only on a terminal.
pub fn init_logging(default: &str) {
    let filter = std::env::var("DSI_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
