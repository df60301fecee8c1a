//! The load benchmark's baseline: our HTTPS stack (same TLS, same HTTP/1.1
//! server, same middleware-free router shape) answering `/mutate` with a
//! canned AdmissionReview response of the same size as the real one, so
//! the difference in a side-by-side run is what resolution itself costs.
//!
//! It also answers manifest `HEAD`s like a registry (a fixed digest), so
//! the benchmark can point a pinning record at it and warm the cache.
//!
//! `cargo run --release --example noop-responder -- LISTEN CERT KEY RESPONSE_FILE`

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use registry_resolver::server::{self, Readiness, ServeOptions};

const DIGEST: &str = "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, cert, key, response] = args.as_slice() else {
        return Err("usage: noop-responder LISTEN CERT KEY RESPONSE_FILE".into());
    };
    server::tls::install_crypto_provider();
    let canned = Bytes::from(std::fs::read(response)?);
    let https = Router::new()
        .route(
            "/mutate",
            post(move |_body: Bytes| {
                let canned = canned.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], canned) }
            }),
        )
        .route(
            "/v2/{*path}",
            axum::routing::head(|| async {
                (
                    [
                        ("docker-content-digest", DIGEST),
                        ("docker-distribution-api-version", "registry/2.0"),
                    ],
                    "",
                )
            }),
        );
    let options = ServeOptions {
        listen: listen.parse()?,
        admin_listen: "127.0.0.1:0".parse()?,
        cert_file: cert.into(),
        key_file: key.into(),
        cert_reload_interval: Duration::from_secs(3600),
        shutdown_timeout: Duration::from_secs(1),
        limits: Default::default(),
        metrics: None,
        webhook_client_ca: None,
    };
    let running = server::start_routers(
        https,
        Router::new(),
        Arc::new(Readiness::default()),
        &options,
    )
    .await?;
    eprintln!("noop-responder listening on {}", running.addr);
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
