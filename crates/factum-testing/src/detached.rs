//! Async code run from a guard's `drop`, inside a test's runtime or outside any.

use std::future::Future;

/// Runs the future `make` returns to its end on a thread of its own, with a runtime of its
/// own; an error when the thread panicked.
pub fn block_on_detached<T, F>(make: impl FnOnce() -> F + Send + 'static) -> Result<T, String>
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|runtime| runtime.block_on(make()))
            .map_err(|e| format!("no runtime: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("the detached thread panicked".to_owned()))
}
