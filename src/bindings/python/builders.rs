//! The Python builders: one macro, so every paradigm's builder has the same common
//! setters, validates each value when it is set, and builds through the same path as
//! keyword construction.

/// Defines a frozen `#[pyclass]` builder wrapping a Rust builder behind a mutex.
/// `$target::from_builder(py, builder)` loads the model; extra setters are listed as
/// `name: PythonType`, optionally `=> conversion` to the type the Rust builder takes.
macro_rules! py_builder {
    ($py_name:literal, $name:ident, $rust:ty, $target:ty, { $($setter:ident : $ty:ty $(=> $convert:path)?),* $(,)? }) => {
        #[pyo3::pyclass(name = $py_name, module = "tessera", frozen)]
        pub struct $name {
            inner: std::sync::Mutex<$rust>,
        }

        impl $name {
            pub fn fresh() -> Self {
                $name { inner: std::sync::Mutex::new(<$rust>::new()) }
            }

            fn update<'py>(
                slf: pyo3::Bound<'py, Self>,
                change: impl FnOnce($rust) -> $rust,
            ) -> pyo3::PyResult<pyo3::Bound<'py, Self>> {
                {
                    let mut guard = slf.get().inner.lock().map_err(|_| {
                        pyo3::exceptions::PyRuntimeError::new_err("builder lock poisoned")
                    })?;
                    let updated = change(guard.clone());
                    updated.validate()?;
                    *guard = updated;
                }
                Ok(slf)
            }
        }

        #[pyo3::pymethods]
        impl $name {
            #[new]
            fn new() -> Self {
                Self::fresh()
            }

            /// The model: a registry id, a Hugging Face repo id or a directory.
            fn model<'py>(slf: pyo3::Bound<'py, Self>, model: &pyo3::Bound<'py, pyo3::PyAny>) -> pyo3::PyResult<pyo3::Bound<'py, Self>> {
                let model = $crate::bindings::python::convert::model_arg(model)?;
                Self::update(slf, |b| b.model(model))
            }

            /// A `Device` or one of "auto", "cpu", "cuda", "cuda:N", "metal".
            fn device<'py>(slf: pyo3::Bound<'py, Self>, device: &pyo3::Bound<'py, pyo3::PyAny>) -> pyo3::PyResult<pyo3::Bound<'py, Self>> {
                let device = $crate::bindings::python::device::device_arg(Some(device))?;
                Self::update(slf, |b| b.device(device))
            }

            /// "f32", "f16" (GPU), "bf16" or "auto".
            fn dtype<'py>(slf: pyo3::Bound<'py, Self>, dtype: &str) -> pyo3::PyResult<pyo3::Bound<'py, Self>> {
                let dtype = $crate::bindings::python::device::dtype_arg(Some(dtype))?;
                Self::update(slf, |b| b.dtype(dtype))
            }

            /// A branch, tag or commit of the Hugging Face repository.
            fn revision<'py>(slf: pyo3::Bound<'py, Self>, revision: String) -> pyo3::PyResult<pyo3::Bound<'py, Self>> {
                Self::update(slf, |b| b.revision(revision))
            }

            /// Inputs per forward pass in batch methods.
            fn batch_size<'py>(slf: pyo3::Bound<'py, Self>, batch_size: $crate::bindings::python::convert::Count) -> pyo3::PyResult<pyo3::Bound<'py, Self>> {
                Self::update(slf, |b| b.batch_size(batch_size.0))
            }

            $(
                fn $setter<'py>(slf: pyo3::Bound<'py, Self>, value: $ty) -> pyo3::PyResult<pyo3::Bound<'py, Self>> {
                    Self::update(slf, |b| b.$setter($($convert)?(value)))
                }
            )*

            /// Loads the model.
            fn build(&self, py: pyo3::Python<'_>) -> pyo3::PyResult<$target> {
                let builder = self
                    .inner
                    .lock()
                    .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("builder lock poisoned"))?
                    .clone();
                <$target>::from_builder(py, builder)
            }

            fn __repr__(&self) -> String {
                match self.inner.lock().map(|b| b.to_json()) {
                    Ok(Ok(json)) => $crate::bindings::python::repr::options_repr($py_name, &json),
                    _ => format!("{}(<unavailable>)", $py_name),
                }
            }
        }
    };
}

pub(crate) use py_builder;
