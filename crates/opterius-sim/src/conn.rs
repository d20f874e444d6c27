//! The accept loop: plain HTTP or self-signed TLS, with a per-connection handle
//! that lets a handler hang or drop the connection without answering.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// Lets a handler end its connection without an answer.
#[derive(Clone)]
pub(crate) struct Kill(Arc<Notify>);

impl Kill {
    /// Closes the TCP connection now; the client sees it drop with no answer.
    pub(crate) async fn drop_now(&self) -> Response {
        self.0.notify_one();
        std::future::pending().await
    }

    /// Never answers (bounded to an hour so a forgotten request cannot pile up).
    pub(crate) async fn hang(&self) -> Response {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        self.drop_now().await
    }
}

/// Serves `app` on `listener` until the task is aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let kill = Kill(Arc::new(Notify::new()));
            let conn_kill = kill.clone();
            let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(kill.clone());
                let app = app.clone();
                async move {
                    Ok::<_, Infallible>(
                        app.oneshot(req.map(axum::body::Body::new))
                            .await
                            .unwrap_or_else(|e| match e {}),
                    )
                }
            });
            let service = TowerToHyperService::new(service);
            let builder = Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! { _ = conn => {}, () = conn_kill.0.notified() => {} }
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                    else {
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! { _ = conn => {}, () = conn_kill.0.notified() => {} }
                }
            }
        });
    }
}

/// A TLS acceptor with a fresh self-signed certificate for localhost/127.0.0.1.
/// A fresh self-signed certificate for localhost and 127.0.0.1, and its DER.
pub(crate) fn self_signed() -> anyhow::Result<(tokio_rustls::TlsAcceptor, Vec<u8>)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let der_cert = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("self-signed key: {e}"))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der_cert.clone()], key)?;
    Ok((
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        der_cert.to_vec(),
    ))
}
