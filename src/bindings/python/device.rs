//! The `Device` class and the device / dtype arguments every constructor accepts.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use super::convert::Count;
use pyo3::types::PyString;

use crate::device::{DType, Device, Quantize};

/// A compute device: `Device.Cpu`, `Device.Cuda`, `Device.cuda(i)`, `Device.Metal`,
/// `Device.Auto`.
#[pyclass(name = "Device", module = "tessera", frozen, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyDevice {
    pub inner: Device,
}

#[pymethods]
impl PyDevice {
    #[classattr]
    #[pyo3(name = "Cpu")]
    fn cpu() -> Self {
        PyDevice { inner: Device::Cpu }
    }

    #[classattr]
    #[pyo3(name = "Cuda")]
    fn cuda_zero() -> Self {
        PyDevice {
            inner: Device::Cuda(0),
        }
    }

    #[classattr]
    #[pyo3(name = "Metal")]
    fn metal() -> Self {
        PyDevice {
            inner: Device::Metal,
        }
    }

    #[classattr]
    #[pyo3(name = "Auto")]
    fn auto() -> Self {
        PyDevice {
            inner: Device::Auto,
        }
    }

    /// CUDA device number `index`.
    #[staticmethod]
    #[pyo3(signature = (index=Count(0)), text_signature = "(index=0)")]
    fn cuda(index: Count) -> Self {
        let index = index.get();
        PyDevice {
            inner: Device::Cuda(index),
        }
    }

    /// Parses `"auto"`, `"cpu"`, `"cuda"`, `"cuda:N"` or `"metal"`.
    #[staticmethod]
    #[pyo3(signature = (name))]
    fn parse(name: &str) -> PyResult<Self> {
        Ok(PyDevice {
            inner: Device::parse(name)?,
        })
    }

    /// The CUDA index, or None for other devices.
    #[getter]
    fn index(&self) -> Option<usize> {
        match self.inner {
            Device::Cuda(i) => Some(i),
            _ => None,
        }
    }

    /// Pickles as the string `Device.parse` reads back.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let parse = slf.get_type().getattr("parse")?;
        Ok((parse, (slf.get().inner.to_string(),)))
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        match self.inner {
            Device::Cpu => "Device.Cpu".into(),
            Device::Cuda(0) => "Device.Cuda".into(),
            Device::Cuda(i) => format!("Device.cuda({i})"),
            Device::Metal => "Device.Metal".into(),
            Device::Auto => "Device.Auto".into(),
        }
    }
}

/// Devices this build can use, in auto-selection order (`"cpu"` always last).
#[pyfunction]
pub fn available_devices() -> Vec<String> {
    let mut found = Vec::new();
    if Device::Cuda(0).to_candle().is_ok() {
        found.push("cuda".to_string());
    }
    if Device::Metal.to_candle().is_ok() {
        found.push("metal".to_string());
    }
    found.push("cpu".to_string());
    found
}

/// A `device=` argument: a `Device`, a device string, or None for auto.
pub fn device_arg(value: Option<&Bound<'_, PyAny>>) -> PyResult<Device> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(Device::Auto);
    };
    if let Ok(device) = value.cast::<PyDevice>() {
        return Ok(device.get().inner);
    }
    if let Ok(name) = value.cast::<PyString>() {
        return Ok(Device::parse(&name.to_cow()?)?);
    }
    Err(PyTypeError::new_err(format!(
        "device must be a tessera.Device or a str such as 'cpu', 'cuda:0', 'metal' or 'auto', not {}",
        value.get_type().name()?
    )))
}

/// A `quantize=` argument: `"int8"`.
pub struct QuantizeArg(pub Quantize);

impl<'a, 'py> FromPyObject<'a, 'py> for QuantizeArg {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let Ok(name) = obj.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "quantize must be a str such as 'int8' or None, not {}",
                obj.get_type().name()?
            )));
        };
        Ok(QuantizeArg(Quantize::parse(&name.to_cow()?)?))
    }
}

impl QuantizeArg {
    pub fn get(self) -> Quantize {
        self.0
    }
}

/// A `dtype=` argument: `"f32"`, `"f16"`, `"bf16"`, `"auto"` (or None for f32).
pub fn dtype_arg(value: Option<&str>) -> PyResult<DType> {
    Ok(value.map(DType::parse).transpose()?.unwrap_or_default())
}
