//! Slow clients (slowloris): a connection whose request head never completes is closed after
//! `LATCHKEY_HEADER_READ_TIMEOUT`, while the server keeps answering everyone else; a complete
//! request on the same kind of connection is answered as usual.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn an_unfinished_request_head_is_cut_off() {
    let app = TestApp::spawn_with(Backend::Embedded, &[("LATCHKEY_HEADER_READ_TIMEOUT", "1s")]).await;
    let address = app.base.trim_start_matches("http://localhost:").to_owned();
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(format!("127.0.0.1:{address}")).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
        slow.push(stream);
    }
    let started = Instant::now();

    // Meanwhile everyone else is served.
    let healthy = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(healthy.status(), reqwest::StatusCode::OK);

    for mut stream in slow {
        let mut buffer = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await;
        // Closed by the server: end of stream (hyper may first answer 408), never a hang.
        let closed = match read.expect("the server closes a connection whose headers never end") {
            Ok(0) | Err(_) => true,
            Ok(n) => String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 408"),
        };
        assert!(closed, "closed, not answered as if complete");
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "not before the deadline: {waited:?}");

    // A complete request on a raw connection is answered as usual.
    let mut stream = TcpStream::connect(format!("127.0.0.1:{address}")).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
