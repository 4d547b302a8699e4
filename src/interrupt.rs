//! Cooperative cancellation. Long loops call [`checkpoint`] between batches; a caller
//! that can be interrupted (the Python binding, on Ctrl-C) runs the work under
//! [`with_cancel`] and raises the flag.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Result, TesseraError};

thread_local! {
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Runs `work` on this thread with `flag` as its cancellation flag.
pub fn with_cancel<R>(flag: Arc<AtomicBool>, work: impl FnOnce() -> R) -> R {
    let previous = CANCEL.with(|c| c.replace(Some(flag)));
    let result = work();
    CANCEL.with(|c| *c.borrow_mut() = previous);
    result
}

/// `Err(Interrupted)` once the work running on this thread has been cancelled.
pub fn checkpoint() -> Result<()> {
    let cancelled = CANCEL.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    });
    if cancelled {
        Err(TesseraError::Interrupted)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_flag_stops_the_work_at_its_next_checkpoint() {
        let flag = Arc::new(AtomicBool::new(false));
        let done = with_cancel(flag.clone(), || {
            checkpoint()?;
            flag.store(true, Ordering::Relaxed);
            checkpoint()
        });
        assert!(matches!(done, Err(TesseraError::Interrupted)));
        // Outside the call, nothing is cancelled.
        assert!(checkpoint().is_ok());
    }
}
