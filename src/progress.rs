//! Optional progress reporting for long batch jobs: through a reporter the caller
//! installs for the call (the Python binding drives `tqdm.auto` with it), else a bar on
//! stderr.

use std::cell::RefCell;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives the progress of one job: `start` once, `advance` per finished batch, `finish`
/// at the end (also when the job fails or is interrupted).
pub trait ProgressReporter: Send + Sync {
    fn start(&self, total: usize, label: &str);
    fn advance(&self, done: usize);
    fn finish(&self);
}

/// Makes the reporter of each job that asks to show its progress.
pub type ReporterFactory = Arc<dyn Fn() -> Box<dyn ProgressReporter> + Send + Sync>;

thread_local! {
    static FACTORY: RefCell<Option<ReporterFactory>> = const { RefCell::new(None) };
}

/// Runs `work` on this thread with `factory` making the progress reporters of its jobs.
pub fn with_reporter<R>(factory: ReporterFactory, work: impl FnOnce() -> R) -> R {
    let previous = FACTORY.with(|f| f.replace(Some(factory)));
    let result = work();
    FACTORY.with(|f| *f.borrow_mut() = previous);
    result
}

enum Display {
    Hidden,
    Reporter(Box<dyn ProgressReporter>),
    Bar(ProgressBar),
}

/// The progress of one job, drawn only when asked for.
pub struct Progress {
    display: Display,
}

impl Progress {
    pub fn new(total: usize, label: &str, show: bool) -> Self {
        if !show {
            return Progress::hidden();
        }
        if let Some(factory) = FACTORY.with(|f| f.borrow().clone()) {
            let reporter = factory();
            reporter.start(total, label);
            return Progress {
                display: Display::Reporter(reporter),
            };
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        Progress {
            display: Display::Bar(bar),
        }
    }

    pub fn hidden() -> Self {
        Progress {
            display: Display::Hidden,
        }
    }

    pub fn advance(&self, n: usize) {
        match &self.display {
            Display::Hidden => {}
            Display::Reporter(reporter) => reporter.advance(n),
            Display::Bar(bar) => bar.inc(n as u64),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        match &self.display {
            Display::Hidden => {}
            Display::Reporter(reporter) => reporter.finish(),
            // `finish` leaves the bar drawn, and the line it ends.
            Display::Bar(bar) => {
                bar.finish();
                eprintln!();
            }
        }
    }
}
