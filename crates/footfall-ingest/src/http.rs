//! The operations endpoint: `/metrics` (Prometheus text) and `/health`.
//!
//! A minimal HTTP/1.1 responder: one request per connection, `GET` and
//! `HEAD` only, request heads up to 8 KiB read within 5 seconds.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the endpoint reports.
pub trait Status: Send + Sync + 'static {
    /// The metrics page.
    fn metrics(&self) -> String;
    /// `Ok(text)` when healthy, `Err(text)` when not.
    fn health(&self) -> Result<String, String>;
}

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serve until `stop` is cancelled.
pub async fn serve(listener: TcpListener, status: Arc<dyn Status>, stop: CancellationToken) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.cancelled() => break,
        };
        match accepted {
            Ok((stream, _)) => {
                let status = status.clone();
                conns.spawn(async move {
                    if let Err(e) = respond(stream, &*status).await {
                        tracing::debug!("http connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("http accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while conns.try_join_next().is_some() {}
    }
    conns.shutdown().await;
}

async fn respond(mut stream: TcpStream, status: &dyn Status) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Ok(true);
            }
            if head.len() > MAX_HEAD {
                return Ok(false);
            }
        }
    })
    .await;
    let complete = match complete {
        Ok(r) => r?,
        Err(_) => return Ok(()),
    };
    if !complete {
        return write(
            &mut stream,
            400,
            "Bad Request",
            "text/plain",
            "bad request\n",
            false,
        )
        .await;
    }
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let body_wanted = method != "HEAD";
    if method != "GET" && method != "HEAD" {
        return write(
            &mut stream,
            405,
            "Method Not Allowed",
            "text/plain",
            "only GET and HEAD\n",
            body_wanted,
        )
        .await;
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            let body = status.metrics();
            write(
                &mut stream,
                200,
                "OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
                body_wanted,
            )
            .await
        }
        "/health" | "/healthz" => match status.health() {
            Ok(text) => write(&mut stream, 200, "OK", "text/plain", &text, body_wanted).await,
            Err(text) => {
                write(
                    &mut stream,
                    503,
                    "Service Unavailable",
                    "text/plain",
                    &text,
                    body_wanted,
                )
                .await
            }
        },
        "/" => {
            write(
                &mut stream,
                200,
                "OK",
                "text/plain",
                "footfall ingest: /metrics /health\n",
                body_wanted,
            )
            .await
        }
        _ => {
            write(
                &mut stream,
                404,
                "Not Found",
                "text/plain",
                "not found\n",
                body_wanted,
            )
            .await
        }
    }
}

async fn write(
    stream: &mut TcpStream,
    code: u16,
    reason: &str,
    ctype: &str,
    body: &str,
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// A tiny client for tests and probes: `GET path` → (status code, body).
pub async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Fake(AtomicBool);
    impl Status for Fake {
        fn metrics(&self) -> String {
            "footfall_ingest_queue_depth 7\n".into()
        }
        fn health(&self) -> Result<String, String> {
            if self.0.load(Ordering::Relaxed) {
                Ok("ok\n".into())
            } else {
                Err("kafka unreachable\n".into())
            }
        }
    }

    #[tokio::test]
    async fn routes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Arc::new(Fake(AtomicBool::new(true)));
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, fake.clone(), stop.clone()));
        assert_eq!(
            get(addr, "/metrics").await.unwrap(),
            (200, "footfall_ingest_queue_depth 7\n".into())
        );
        assert_eq!(get(addr, "/health").await.unwrap(), (200, "ok\n".into()));
        fake.0.store(false, Ordering::Relaxed);
        assert_eq!(
            get(addr, "/health").await.unwrap(),
            (503, "kafka unreachable\n".into())
        );
        assert_eq!(get(addr, "/nope").await.unwrap().0, 404);
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 405"), "{out}");
        stop.cancel();
        server.await.unwrap();
    }
}
