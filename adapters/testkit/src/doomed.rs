//! [`Doomed`]: a Tokio runtime of its own for work a test then kills, as a
//! kill -9 would: its tasks die mid-flight, no destructor or release runs,
//! and open connections simply drop.

use std::future::Future;

use tokio::runtime::Runtime;

/// A runtime on a thread of its own, and what was started on it.
pub struct Doomed<T> {
    runtime: Runtime,
    started: T,
}

impl<T: Send> Doomed<T> {
    /// Builds a one-worker runtime and runs `start` on it to completion;
    /// whatever `start` spawned keeps running there. From inside a test's
    /// own runtime too (the runtime is built and entered on another thread).
    pub fn start<F>(start: impl FnOnce() -> F + Send) -> Self
    where
        F: Future<Output = T>,
    {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                        .expect("a runtime for the doomed work");
                    let started = runtime.block_on(start());
                    Self { runtime, started }
                })
                .join()
                .expect("the doomed work started")
        })
    }

    /// What `start` returned, to look at before the kill.
    pub fn started(&self) -> &T {
        &self.started
    }

    /// Kills everything on the runtime at once. What `start` returned is
    /// leaked, not dropped, so no handle gets to stop its task politely.
    pub fn kill(self) {
        std::mem::forget(self.started);
        self.runtime.shutdown_background();
    }
}
