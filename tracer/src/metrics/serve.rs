//! Serving the metrics: HTTP/1 by hyper, `GET /metrics` only.
use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use anyhow::{Context as _, Result};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{encoding::text::encode, registry::Registry};

/// Where `--metrics` without an address listens: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9477";

/// `--metrics` values: `HOST:PORT`, `[V6]:PORT` or a bare port (loopback).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    // A host name (localhost:9477): its first address.
    use std::net::ToSocketAddrs;
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{s:?}: the host name has no address")),
        Err(e) => Err(format!(
            "{s:?} is not HOST:PORT or a port (e.g. 127.0.0.1:9477, localhost:9477): {e}"
        )),
    }
}

/// Bind now (so a busy port fails before anything is attached) and serve in
/// the background.
pub async fn start(addr: SocketAddr, registry: Arc<Registry>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on --metrics {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, registry.clone()));
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    log::debug!("metrics connection: {e}");
                }
            });
        }
    });
    Ok(bound)
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    registry: Arc<Registry>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status, ctype: &str, body: String| {
        Ok(Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid"))
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "tracer serves /metrics only\n".into(),
        );
    }
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".into(),
        );
    }
    let mut body = String::new();
    if let Err(e) = encode(&mut body, &registry) {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("encoding metrics: {e}\n"),
        );
    }
    reply(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body,
    )
}

#[cfg(test)]
mod addr_tests {
    use super::parse_addr;

    #[test]
    fn ports_addresses_and_host_names() {
        assert_eq!(parse_addr("9477").unwrap().to_string(), "127.0.0.1:9477");
        assert_eq!(parse_addr("[::1]:9477").unwrap().to_string(), "[::1]:9477");
        let local = parse_addr("localhost:9477").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 9477, "{local}");
        let e = parse_addr("no port").unwrap_err();
        assert!(e.contains("is not HOST:PORT"), "{e}");
    }
}
