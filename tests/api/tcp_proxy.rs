//! A TCP proxy on loopback for fault tests: it forwards to an upstream (PostgreSQL,
//! Redis) and can cut every connection and refuse new ones (an outage that heals with
//! [`TcpProxy::restore`]), close its port for good ([`TcpProxy::close`]: the address
//! refuses connections), or delay every chunk it forwards (a slow network).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::{AbortHandle, JoinHandle},
};

#[derive(Default)]
struct State {
    /// While set, live connections are cut and new ones are closed at once.
    down: AtomicBool,
    /// Added before each forwarded chunk, in both directions.
    delay_ms: AtomicU64,
    live: Mutex<Vec<AbortHandle>>,
}

pub struct TcpProxy {
    port: u16,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listen on 127.0.0.1:0 and forward to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let accept = tokio::spawn({
            let state = Arc::clone(&state);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if state.down.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(forward(client, upstream, Arc::clone(&state)));
                    let mut live = state.live.lock().unwrap();
                    live.retain(|t| !t.is_finished());
                    live.push(task.abort_handle());
                }
            }
        });
        Self {
            port,
            state,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The outage begins: every connection is cut, new ones are closed at once.
    pub fn cut(&self) {
        self.state.down.store(true, Ordering::SeqCst);
        for task in self.state.live.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Close the port and every connection through it: connecting is refused from now on.
    pub async fn close(&self) {
        self.accept.abort();
        self.cut();
        // Let the aborted tasks drop their sockets.
        tokio::task::yield_now().await;
    }

    /// The outage ends.
    pub fn restore(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// Delay every forwarded chunk by `delay` (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap();
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, state: Arc<State>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = pipe(&mut client_read, &mut server_write, &state);
    let down = pipe(&mut server_read, &mut client_write, &state);
    // Either side closing ends the connection.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

async fn pipe(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    state: &State,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
