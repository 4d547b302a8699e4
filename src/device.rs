//! Devices and dtypes as the user names them, and their mapping onto Candle's.

use crate::error::{Result, TesseraError};

/// Where a model runs. `Auto` picks CUDA, then Metal, then the CPU, among what this
/// build supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

impl Device {
    /// Parses `auto`, `cpu`, `cuda`, `cuda:N`, `metal` (case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        let lowered = name.trim().to_ascii_lowercase();
        match lowered.as_str() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            "metal" | "mps" => Ok(Device::Metal),
            other => match other.strip_prefix("cuda:") {
                Some(index) => index.parse::<usize>().map(Device::Cuda).map_err(|_| {
                    TesseraError::Device(format!(
                        "invalid CUDA device '{name}': expected 'cuda:N' with N a device index"
                    ))
                }),
                None => Err(TesseraError::Device(format!(
                    "unknown device '{name}': expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'metal'"
                ))),
            },
        }
    }

    /// Fails when this build lacks the device's cargo feature, without opening it.
    pub fn ensure_compiled(self) -> Result<()> {
        match self {
            Device::Cuda(_) if !cfg!(feature = "cuda") => cuda_device(0).map(|_| ()),
            Device::Metal if !cfg!(feature = "metal") => metal_device().map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The Candle device, or a `Device` error naming the feature that provides it.
    pub fn to_candle(self) -> Result<candle_core::Device> {
        match self {
            Device::Cpu => Ok(candle_core::Device::Cpu),
            Device::Auto => Ok(auto_device()),
            Device::Cuda(index) => cuda_device(index),
            Device::Metal => metal_device(),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(index) => write!(f, "cuda:{index}"),
            Device::Metal => f.write_str("metal"),
        }
    }
}

fn auto_device() -> candle_core::Device {
    if cfg!(feature = "cuda") {
        if let Ok(device) = candle_core::Device::new_cuda(0) {
            return device;
        }
    }
    if cfg!(feature = "metal") {
        if let Ok(device) = candle_core::Device::new_metal(0) {
            return device;
        }
    }
    candle_core::Device::Cpu
}

fn cuda_device(index: usize) -> Result<candle_core::Device> {
    if !cfg!(feature = "cuda") {
        return Err(TesseraError::Device(
            "this build of tessera has no CUDA support: install a CUDA wheel or build with the \
             cargo feature 'cuda' (maturin build --features python,cuda)"
                .to_string(),
        ));
    }
    candle_core::Device::new_cuda(index)
        .map_err(|e| TesseraError::Device(format!("cannot open CUDA device {index}: {e}")))
}

fn metal_device() -> Result<candle_core::Device> {
    if !cfg!(feature = "metal") {
        return Err(TesseraError::Device(
            "this build of tessera has no Metal support: build with the cargo feature 'metal' \
             (maturin build --features python,metal) on macOS"
                .to_string(),
        ));
    }
    candle_core::Device::new_metal(0)
        .map_err(|e| TesseraError::Device(format!("cannot open the Metal device: {e}")))
}

/// Floating-point type of the weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DType {
    #[default]
    F32,
    F16,
    BF16,
}

impl DType {
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(DType::F32),
            "f16" | "float16" | "half" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            _ => Err(TesseraError::Config(format!(
                "unknown dtype '{name}': expected 'f32', 'f16' or 'bf16'"
            ))),
        }
    }

    pub fn to_candle(self) -> candle_core::DType {
        match self {
            DType::F32 => candle_core::DType::F32,
            DType::F16 => candle_core::DType::F16,
            DType::BF16 => candle_core::DType::BF16,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

/// Serialises a type as its display string and reads it back with `parse` (the options
/// of a builder travel as the strings a user writes: "cuda:0", "bf16", "int8").
macro_rules! serde_as_str {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                <$ty>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_as_str;

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

serde_as_str!(Device);
serde_as_str!(DType);
