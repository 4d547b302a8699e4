//! Devices and dtypes as the user names them, and their mapping onto Candle's.

use crate::error::{Result, TesseraError};
use crate::layers::packed::{bf16_supported, WeightFormat};

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

/// Floating-point type of the weights and activations, as the user names it. On the
/// CPU, `BF16` keeps activations in f32 and stores the linear layers' weights in bf16
/// (see [`precision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DType {
    #[default]
    F32,
    F16,
    BF16,
    /// The fastest this device runs well: bf16 on CUDA and on CPUs with AVX512_BF16,
    /// f16 on Metal, else f32.
    Auto,
}

impl DType {
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(DType::F32),
            "f16" | "float16" | "half" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            "auto" => Ok(DType::Auto),
            _ => Err(TesseraError::Config(format!(
                "unknown dtype '{name}': expected 'f32', 'f16', 'bf16' or 'auto'"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Auto => "auto",
        }
    }
}

/// Weight quantization applied at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantize {
    /// int8 weights per output channel, int8 activations per token, integer products.
    Int8,
}

impl Quantize {
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "int8" | "i8" => Ok(Quantize::Int8),
            _ => Err(TesseraError::Config(format!(
                "unknown quantize '{name}': expected 'int8' (or None for none)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Quantize::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Quantize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The dtype tensors load in on `device` and how linear weights are stored there, for
/// the user's `dtype` and `quantize`; a `Device` error where the device cannot run them.
pub fn precision(
    dtype: DType,
    quantize: Option<Quantize>,
    device: &candle_core::Device,
) -> Result<(candle_core::DType, WeightFormat)> {
    use candle_core::DType as C;
    if let Some(Quantize::Int8) = quantize {
        if !device.is_cpu() {
            return Err(TesseraError::Device(
                "quantize='int8' runs on the CPU; on a GPU use dtype='bf16' or 'f16'".to_string(),
            ));
        }
        if !matches!(dtype, DType::F32 | DType::Auto) {
            return Err(TesseraError::Config(format!(
                "quantize='int8' keeps activations in f32 and cannot be combined with dtype='{dtype}': leave dtype at 'f32'"
            )));
        }
        return Ok((C::F32, WeightFormat::Int8));
    }
    if device.is_cpu() {
        return match dtype {
            DType::F32 => Ok((C::F32, WeightFormat::F32)),
            DType::BF16 => {
                WeightFormat::Bf16.check_supported()?;
                Ok((C::F32, WeightFormat::Bf16))
            }
            DType::Auto if bf16_supported() => Ok((C::F32, WeightFormat::Bf16)),
            DType::Auto => Ok((C::F32, WeightFormat::F32)),
            DType::F16 => Err(TesseraError::Device(
                "dtype 'f16' runs on CUDA and Metal; on the CPU use dtype='bf16' (with AVX512_BF16), quantize='int8' or the default 'f32'"
                    .to_string(),
            )),
        };
    }
    let candle = match dtype {
        DType::F32 => C::F32,
        DType::F16 => C::F16,
        DType::BF16 => C::BF16,
        DType::Auto if device.is_metal() => C::F16,
        DType::Auto => C::BF16,
    };
    Ok((candle, WeightFormat::F32))
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
serde_as_str!(Quantize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_precisions() {
        let cpu = candle_core::Device::Cpu;
        let f32 = candle_core::DType::F32;
        assert_eq!(
            precision(DType::F32, None, &cpu).unwrap(),
            (f32, WeightFormat::F32)
        );
        // int8 keeps f32 activations, whatever `auto` would pick.
        for dtype in [DType::F32, DType::Auto] {
            assert_eq!(
                precision(dtype, Some(Quantize::Int8), &cpu).unwrap(),
                (f32, WeightFormat::Int8)
            );
        }
        for dtype in [DType::F16, DType::BF16] {
            assert!(matches!(
                precision(dtype, Some(Quantize::Int8), &cpu),
                Err(TesseraError::Config(_))
            ));
        }
        assert!(matches!(
            precision(DType::F16, None, &cpu),
            Err(TesseraError::Device(m)) if m.contains("CUDA")
        ));
        let bf16 = precision(DType::BF16, None, &cpu);
        let auto = precision(DType::Auto, None, &cpu).unwrap();
        if bf16_supported() {
            assert_eq!(bf16.unwrap(), (f32, WeightFormat::Bf16));
            assert_eq!(auto, (f32, WeightFormat::Bf16));
        } else {
            assert!(matches!(bf16, Err(TesseraError::Device(m)) if m.contains("AVX512_BF16")));
            assert_eq!(auto, (f32, WeightFormat::F32));
        }
    }

    #[test]
    fn names_parse_and_print_back() {
        for dtype in [DType::F32, DType::F16, DType::BF16, DType::Auto] {
            assert_eq!(DType::parse(dtype.as_str()).unwrap(), dtype);
        }
        assert_eq!(Quantize::parse(" INT8 ").unwrap(), Quantize::Int8);
        assert!(matches!(
            Quantize::parse("int4"),
            Err(TesseraError::Config(_))
        ));
        assert!(matches!(DType::parse("f8"), Err(TesseraError::Config(_))));
    }
}
