//! The worker pool every call runs on, rebuilt in a forked child.
//!
//! Rayon's global pool lives in threads that a `fork` does not copy: a child process
//! (multiprocessing, gunicorn, Celery) that used it would wait forever for workers that
//! do not exist. Calls run on this pool instead, and a process whose id changed since
//! the pool was built gets a fresh one (the parent's is leaked, never touched again).

use std::sync::atomic::{AtomicBool, Ordering};
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

/// Runs `work` while the pool's other threads poll for its tasks instead of sleeping.
///
/// A forward pass is a chain of short parallel regions (tens of microseconds for one
/// text). A worker that went to sleep between two of them must be woken by the kernel,
/// which costs about as much as the region saves, and more in a virtual machine; a worker
/// kept polling picks the next region's tasks up at once. The polling stops when `work`
/// returns (or unwinds), so idle pools still sleep.
pub fn with_busy_helpers<T>(work: impl FnOnce() -> T) -> T {
    // No more pollers than other cores: a pool larger than the machine keeps its extra
    // threads asleep rather than spinning against the work.
    let helpers = rayon::current_num_threads().min(cores()).saturating_sub(1);
    if helpers == 0 {
        return work();
    }
    let done = AtomicBool::new(false);
    rayon::in_place_scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| {
                let mut idle = 0u32;
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() == Some(rayon::Yield::Executed) {
                        idle = 0;
                    } else if idle < SPINS_BEFORE_YIELDING {
                        idle += 1;
                        std::hint::spin_loop();
                    } else {
                        // Long idle (a serial stretch of the pass): let other processes'
                        // threads have the core.
                        std::thread::yield_now();
                    }
                }
            });
        }
        // Set on return and on unwinding alike: the scope waits for the pollers.
        let _stop = StopOnDrop(&done);
        work()
    })
}

/// The cores this process may run on, read once (the query reads cgroup files).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Idle polls a helper makes before it starts offering its core to the OS scheduler.
const SPINS_BEFORE_YIELDING: u32 = 1 << 10;

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn two_threads() -> ThreadPool {
        ThreadPoolBuilder::new().num_threads(2).build().unwrap()
    }

    #[test]
    fn busy_helpers_return_the_work_and_run_its_tasks() {
        let total = two_threads().install(|| {
            with_busy_helpers(|| (0..10_000u64).into_par_iter().map(|i| i * i).sum::<u64>())
        });
        assert_eq!(total, (0..10_000u64).map(|i| i * i).sum::<u64>());
    }

    /// A panicking pass stops the pollers (the scope would otherwise wait forever) and
    /// the panic reaches the caller.
    #[test]
    fn busy_helpers_stop_when_the_work_panics() {
        let outcome = two_threads().install(|| {
            std::panic::catch_unwind(|| with_busy_helpers(|| -> u32 { panic!("bad input") }))
        });
        assert!(outcome.is_err());
    }
}
