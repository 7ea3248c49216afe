//! Clean-up from a fixture's `Drop`: the PostgreSQL database and the NATS
//! stream a test made are removed before the test process exits.

use std::future::Future;

/// Runs a fixture's clean-up from its `Drop`, and waits for it. Drop runs
/// inside the test's runtime, which cannot be blocked on; a thread with its
/// own runtime can, and joining it means the clean-up is done before the
/// test process exits. `what` names it in the warning when it fails.
pub fn clean_up<F>(what: &str, clean_up: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = Result<(), String>>,
{
    let cleanup = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(clean_up())
    });
    match cleanup.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("warning: {what} failed: {e}"),
        Err(_) => eprintln!("warning: {what} panicked"),
    }
}
