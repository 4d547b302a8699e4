//! Progress bars through `tqdm.auto`, as sentence-transformers shows them: a widget in
//! notebooks, a line in logs and CI. Driven from the worker by the core's reporter hook.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::progress::{ProgressReporter, ReporterFactory};

/// A `tqdm.auto.tqdm` bar, made when its job starts.
struct Tqdm {
    bar: std::sync::Mutex<Option<Py<PyAny>>>,
}

impl ProgressReporter for Tqdm {
    fn start(&self, total: usize, label: &str) {
        let bar = Python::attach(|py| -> PyResult<Py<PyAny>> {
            let kwargs = PyDict::new(py);
            kwargs.set_item("total", total)?;
            kwargs.set_item("desc", label)?;
            kwargs.set_item("unit", "item")?;
            let tqdm = py.import("tqdm.auto")?.getattr("tqdm")?;
            Ok(tqdm.call((), Some(&kwargs))?.unbind())
        });
        if let (Ok(bar), Ok(mut slot)) = (bar, self.bar.lock()) {
            *slot = Some(bar);
        }
    }

    fn advance(&self, done: usize) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                // A bar that cannot draw is not worth failing the job for.
                let _ = Python::attach(|py| bar.call_method1(py, "update", (done,)));
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                let _ = Python::attach(|py| bar.call_method0(py, "close"));
            }
        }
    }
}

/// The reporter factory every Python call installs.
pub fn tqdm_reporters() -> ReporterFactory {
    std::sync::Arc::new(|| {
        Box::new(Tqdm {
            bar: std::sync::Mutex::new(None),
        })
    })
}
