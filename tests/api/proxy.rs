//! Proxies the tests put between Latchkey and what it talks to.
//!
//! [`FaultProxy`] is a TCP proxy in front of PostgreSQL or Redis that injects the faults a real
//! network produces: slow replies, dropped connections, a dependency that is gone (existing
//! connections closed, new ones refused) and comes back. It knows nothing about the protocols,
//! except that it can cut the moment a given byte string (a statement's text) is sent.
//! [`round_robin`] is an HTTP proxy on the issuer's port that alternates between replicas.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{body::Body, extract::Request, response::Response};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::{AbortHandle, JoinHandle},
    time::Instant,
};

/// A TCP proxy with switchable faults; everything is torn down when it is dropped.
pub struct FaultProxy {
    shared: Arc<Shared>,
}

struct Shared {
    /// The proxy's own port, kept across a cut so that restoring it brings the same address back.
    port: u16,
    /// Where connections go (`host:port`).
    target: String,
    /// Delay added to every chunk the target sends back.
    latency_ms: AtomicU64,
    /// When armed, the first chunk sent towards the target containing these bytes cuts instead.
    trigger: Mutex<Option<Vec<u8>>>,
    accept: Mutex<Option<JoinHandle<()>>>,
    connections: Mutex<Vec<AbortHandle>>,
}

impl FaultProxy {
    /// A proxy on a free local port in front of the service `url` names (`redis://…`, `postgres://…`).
    pub async fn start(url: &str) -> FaultProxy {
        let parsed = url::Url::parse(url).expect("a service URL");
        let target = format!("{}:{}", parsed.host_str().expect("a host"), parsed.port().expect("an explicit port"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            port,
            target,
            latency_ms: AtomicU64::new(0),
            trigger: Mutex::new(None),
            accept: Mutex::new(None),
            connections: Mutex::new(Vec::new()),
        });
        shared.serve(listener);
        FaultProxy { shared }
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).expect("a service URL");
        parsed.set_host(Some("127.0.0.1")).unwrap();
        parsed.set_port(Some(self.shared.port)).unwrap();
        parsed.to_string()
    }

    /// Delays every reply by `latency` (zero removes the delay for replies read from now on).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.latency_ms.store(u64::try_from(latency.as_millis()).unwrap(), Ordering::SeqCst);
    }

    /// Closes every open connection; new ones are still accepted.
    pub fn drop_connections(&self) {
        self.shared.drop_connections();
    }

    /// The dependency is gone: open connections are closed and new ones refused.
    pub async fn cut(&self) {
        let accept = self.shared.accept.lock().unwrap().take();
        self.shared.drop_connections();
        if let Some(accept) = accept {
            accept.abort();
            // The listener is closed once the aborted task has been dropped.
            let _ = accept.await;
        }
    }

    /// Cuts (as [`FaultProxy::cut`]) at the moment `bytes` are sent towards the target, instead
    /// of sending them.
    pub fn cut_when_sent(&self, bytes: &[u8]) {
        *self.shared.trigger.lock().unwrap() = Some(bytes.to_vec());
    }

    /// Accepts connections again, on the same port.
    pub async fn restore(&self) {
        let address = format!("127.0.0.1:{}", self.shared.port);
        for _ in 0..100 {
            // A cut from inside a connection closes the old listener asynchronously.
            if let Ok(listener) = TcpListener::bind(&address).await {
                self.shared.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the proxy port {} could not be bound again", self.shared.port);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop_accepting();
        self.shared.drop_connections();
    }
}

impl Shared {
    fn serve(self: &Arc<Self>, listener: TcpListener) {
        let shared = self.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let connection = tokio::spawn(shared.clone().relay(client));
                let mut connections = shared.connections.lock().unwrap();
                connections.retain(|c| !c.is_finished());
                connections.push(connection.abort_handle());
            }
        });
        *self.accept.lock().unwrap() = Some(accept);
    }

    fn stop_accepting(&self) {
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
    }

    fn drop_connections(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn trips(&self, chunk: &[u8]) -> bool {
        let mut trigger = self.trigger.lock().unwrap();
        let tripped = trigger.as_ref().is_some_and(|t| chunk.windows(t.len()).any(|w| w == t.as_slice()));
        if tripped {
            *trigger = None;
        }
        tripped
    }

    /// Copies bytes both ways; replies pass through a delay line, so a latency delays each
    /// reply by that much without the delays adding up.
    async fn relay(self: Arc<Self>, client: TcpStream) {
        let Ok(server) = TcpStream::connect(&self.target).await else { return };
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        let upstream = async {
            let mut buffer = vec![0; 64 * 1024];
            loop {
                let n = match from_client.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if self.trips(&buffer[..n]) {
                    self.stop_accepting();
                    self.drop_connections();
                    return;
                }
                if to_server.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        };
        let (replies, mut delayed) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        let latency_ms = &self.latency_ms;
        let read_replies = async move {
            let mut buffer = vec![0; 64 * 1024];
            while let Ok(n @ 1..) = from_server.read(&mut buffer).await {
                let due = Instant::now() + Duration::from_millis(latency_ms.load(Ordering::SeqCst));
                if replies.send((due, buffer[..n].to_vec())).is_err() {
                    return;
                }
            }
        };
        let write_replies = async move {
            while let Some((due, bytes)) = delayed.recv().await {
                tokio::time::sleep_until(due).await;
                if to_client.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            () = upstream => {}
            _ = async { tokio::join!(read_replies, write_replies) } => {}
        }
    }
}

/// An HTTP proxy on `listener` that passes each request on to the next of `targets` in turn,
/// so consecutive requests of one browser land on alternating replicas.
pub fn round_robin(listener: TcpListener, targets: Vec<String>) {
    let targets = Arc::new(targets);
    let turn = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let router = axum::Router::new().fallback(move |request: Request| {
        let target = targets[turn.fetch_add(1, Ordering::SeqCst) % targets.len()].clone();
        forward(http.clone(), target, request)
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
}

/// Passes a request on to `target` unchanged and hands back the answer.
async fn forward(http: reqwest::Client, target: String, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 10 << 20).await.unwrap();
    let url = format!("{target}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut headers = parts.headers.clone();
    headers.remove(reqwest::header::HOST);
    let answer = http.request(parts.method, url).headers(headers).body(body).send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != reqwest::header::TRANSFER_ENCODING && name != reqwest::header::CONNECTION {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(answer.bytes().await.unwrap())).unwrap()
}
