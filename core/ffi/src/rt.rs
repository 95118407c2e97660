//! The library's one tokio runtime, and running async work to completion from a foreign
//! thread.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::error::PerchError;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The process-wide runtime, made on first use; every exported call runs its async work here,
/// so no platform thread ever needs a runtime of its own.
pub(crate) fn runtime() -> Result<&'static Runtime, PerchError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("perch-ffi")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|reason| PerchError::Internal {
            reason: format!("cannot start the node runtime: {reason}"),
        })
}

/// Runs `fut` on the runtime and waits for it on the calling thread. Safe from any thread,
/// a runtime worker included (it waits on a std channel, never `block_on`).
pub(crate) fn wait_for<F>(fut: F) -> Result<F::Output, PerchError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| PerchError::Internal {
        reason: "the node runtime dropped a call".into(),
    })
}
