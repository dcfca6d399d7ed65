//! The embedded server on a thread and runtime of its own, as a separate server process would
//! be: its work does not queue behind the client's on the client's runtime, so the client's
//! timestamps measure the server, not the two sharing one scheduler.

use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::answers::AnswerKey;
use super::{EmbeddedError, EmbeddedServer};
use crate::case::EmbeddedSpec;

/// An embedded server running on its own thread until shut down.
#[derive(Debug)]
pub struct ServerThread {
    base_url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Starts the server on a new thread with a single-threaded runtime, on a free port,
    /// answering the questions of `key`.
    pub async fn start(
        spec: EmbeddedSpec,
        served_model: String,
        key: Arc<AnswerKey>,
    ) -> Result<ServerThread, EmbeddedError> {
        Self::start_with(move || EmbeddedServer::start_answering(spec, served_model, 0, key)).await
    }

    /// Starts the server that `start` makes, on a new thread with a single-threaded runtime
    /// (`start` runs there).
    pub async fn start_with<S, F>(start: S) -> Result<ServerThread, EmbeddedError>
    where
        S: FnOnce() -> F + Send + 'static,
        F: Future<Output = Result<EmbeddedServer, EmbeddedError>>,
    {
        let (ready_tx, ready_rx) = oneshot::channel::<Result<String, EmbeddedError>>();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(EmbeddedError::Listen { port: 0, source: e }));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match start().await {
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                        Ok(server) => {
                            let _ = ready_tx.send(Ok(server.base_url()));
                            let _ = stopped.await;
                            server.shutdown().await;
                        }
                    }
                });
            })
            .map_err(EmbeddedError::ServerThread)?;
        match ready_rx.await {
            Ok(Ok(base_url)) => Ok(ServerThread {
                base_url,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(EmbeddedError::ThreadEnded),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stops the server (open responses get up to a second) and waits for its thread.
    pub async fn shutdown(mut self) {
        self.stop_and_join().await;
    }

    async fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        // Dropping the sender stops the server; the thread ends on its own.
        self.stop.take();
    }
}
