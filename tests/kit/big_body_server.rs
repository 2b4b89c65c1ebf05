//! A raw HTTP/1.1 server for oversized key sets, that counts what it managed to send.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A raw HTTP/1.1 server answering every request with a `total`-byte JSON-looking body,
/// either with `Content-Length` or chunked without it. The body is written in 16 KiB pieces,
/// paced (1 ms apart), and every piece the socket accepted is counted, so a test can tell
/// whether the client read it all or hung up early.
pub struct BigBodyServer {
    pub url: String,
    written: Arc<AtomicUsize>,
    finished: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for BigBodyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BigBodyServer {
    pub async fn start(total: usize, content_length: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("address"));
        let written = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (w, f, r) = (written.clone(), finished.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (w, f, r) = (w.clone(), f.clone(), r.clone());
                tokio::spawn(async move {
                    // Read the request head.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    let framing = if content_length {
                        format!("content-length: {total}\r\n")
                    } else {
                        "transfer-encoding: chunked\r\n".to_owned()
                    };
                    let response_head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{framing}\r\n"
                    );
                    if socket.write_all(response_head.as_bytes()).await.is_err() {
                        return;
                    }
                    // `{"keys":[` followed by spaces: valid JSON's beginning, never its end.
                    let piece = 16 * 1024;
                    let mut sent = 0;
                    while sent < total {
                        let n = piece.min(total - sent);
                        let mut data = vec![b' '; n];
                        if sent == 0 {
                            data[..9].copy_from_slice(b"{\"keys\":[");
                        }
                        let ok = if content_length {
                            socket.write_all(&data).await.is_ok()
                        } else {
                            let mut framed = format!("{n:x}\r\n").into_bytes();
                            framed.extend_from_slice(&data);
                            framed.extend_from_slice(b"\r\n");
                            socket.write_all(&framed).await.is_ok()
                        };
                        if !ok {
                            return;
                        }
                        sent += n;
                        w.fetch_add(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    if !content_length && socket.write_all(b"0\r\n\r\n").await.is_err() {
                        return;
                    }
                    f.store(true, Ordering::SeqCst);
                });
            }
        });
        Self {
            url,
            written,
            finished,
            requests,
            task,
        }
    }

    /// Body bytes the socket accepted so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Whether a whole body was ever sent.
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Requests received.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
