//! The worker pool every call runs on, rebuilt in a forked child.
//!
//! Rayon's global pool lives in threads that a `fork` does not copy: a child process
//! (multiprocessing, gunicorn, Celery) that used it would wait forever for workers that
//! do not exist. Calls run on this pool instead, and a process whose id changed since
//! the pool was built gets a fresh one (the parent's is leaked, never touched again).

use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Result, TesseraError};

static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);

/// This process's pool (sized by `RAYON_NUM_THREADS`, else one thread per core).
pub fn pool() -> Result<Arc<ThreadPool>> {
    let pid = std::process::id();
    // A lock poisoned by a panic elsewhere still holds a usable pool.
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, pool)) = slot.as_ref() {
        if *owner == pid {
            return Ok(pool.clone());
        }
    }
    if let Some((_, inherited)) = slot.take() {
        // Its threads belong to the parent: dropping it would signal workers that are
        // not there.
        std::mem::forget(inherited);
    }
    let pool = Arc::new(
        ThreadPoolBuilder::new()
            .thread_name(|i| format!("tessera-{i}"))
            .build()
            .map_err(|e| TesseraError::Device(format!("cannot start worker threads: {e}")))?,
    );
    *slot = Some((pid, pool.clone()));
    Ok(pool)
}
