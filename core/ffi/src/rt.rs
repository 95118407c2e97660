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

/// Runs `fut` on the runtime and awaits it from whichever executor polls the returned future
/// (the app's: Kotlin coroutines, Swift tasks, asyncio), so async exports need no runtime of
/// their caller. Dropping it before it finishes (the caller cancelled) aborts the work.
pub(crate) async fn on_runtime<F, T>(fut: F) -> Result<T, PerchError>
where
    F: Future<Output = Result<T, PerchError>> + Send + 'static,
    T: Send + 'static,
{
    /// Aborts the spawned task when the awaiting future is dropped.
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let task = runtime()?.spawn(fut);
    let _abort = AbortOnDrop(task.abort_handle());
    task.await.map_err(|e| PerchError::Internal {
        reason: format!("the node runtime dropped a call: {e}"),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_dropped_call_stops_its_work_and_a_finished_one_answers() {
        // Polled by a runtime that is not the library's, as a foreign executor would.
        let outside = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(outside.block_on(on_runtime(async { Ok(7) })), Ok(7));
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let slow = on_runtime(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        let cancelled =
            outside.block_on(async { tokio::time::timeout(Duration::from_millis(50), slow).await });
        assert!(cancelled.is_err(), "the caller gave up");
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !finished.load(Ordering::SeqCst),
            "the work was aborted with it"
        );
    }
}
