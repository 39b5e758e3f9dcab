//! The machine's raw ceiling: a trivial hyper server in this process that answers every request
//! with a fixed body of the scenario's response size. The same client and concurrency against it
//! give the best a broker could do on this machine in this run.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::load::{self, Measured, Req};

/// A running ceiling server; stops when dropped.
pub struct Ceiling {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a server on a free loopback port answering `status` with `size` bytes of JSON.
pub async fn start(size: usize, status: u16) -> std::io::Result<Ceiling> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let body = Bytes::from(json_of_size(size));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        let mut resp = Response::new(Full::new(body));
                        *resp.status_mut() =
                            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
                        resp.headers_mut().insert(
                            "content-type",
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Ceiling { addr, task })
}

/// The ceiling of a scenario: its requests (unchecked), with the same client and concurrency,
/// against a server answering `status` with a body of the scenario's mean response size.
pub async fn measure(
    client: &reqwest::Client,
    requests: usize,
    concurrency: usize,
    status: u16,
    mean_body: usize,
    make: Arc<dyn Fn(usize) -> Req + Send + Sync>,
) -> std::io::Result<Measured> {
    let c = start(mean_body, status).await?;
    let strip: Arc<dyn Fn(usize) -> Req + Send + Sync> = Arc::new(move |i| {
        let mut r = make(i);
        r.check = None;
        r.count = None;
        r
    });
    let base = format!("http://{}", c.addr);
    Ok(load::run(
        client,
        &base,
        requests,
        concurrency,
        Arc::new([status]),
        strip,
    )
    .await)
}

/// A JSON document of exactly `size` bytes (at least `[]`).
fn json_of_size(size: usize) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    if size < 8 {
        return b"[]".to_vec();
    }
    let mut s = String::with_capacity(size);
    s.push_str("{\"p\":\"");
    while s.len() < size - 2 {
        s.push('x');
    }
    s.push_str("\"}");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bodies_have_the_asked_size() {
        for n in [8, 100, 1234] {
            let b = super::json_of_size(n);
            assert_eq!(b.len(), n);
            serde_json::from_slice::<serde_json::Value>(&b).unwrap();
        }
    }
}
