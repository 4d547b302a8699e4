//! Document images to model input, exactly as transformers' `SiglipImageProcessorPil`
//! (the ColPali reference) computes it with Pillow 12: decode, convert to RGB
//! (alpha composited over white), bicubic resize to a square, rescale and normalise.
//!
//! The resize is Pillow's fixed-point two-pass convolution (`ImagingResample`,
//! `libImaging/Resample.c`), reproduced bit for bit: a generic float bicubic
//! differs from it by up to 14 levels at sharp edges.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use ::image::{
    ColorType, DynamicImage, GrayImage, ImageDecoder, ImageError, ImageReader, Limits, RgbaImage,
};
use serde::Deserialize;

use crate::error::{Result, TesseraError};

/// Largest image accepted, in pixels: Pillow's decompression-bomb error threshold
/// (`2 * MAX_IMAGE_PIXELS`), so anything Pillow opens opens here too.
pub const MAX_IMAGE_PIXELS: u64 = 2 * 89_478_485;

/// Largest side accepted, in pixels (a bound the decoders check before allocating).
const MAX_SIDE: u32 = 65_535;

/// Decoder allocation budget: an RGBA image of `MAX_IMAGE_PIXELS` plus headroom.
const MAX_ALLOC: u64 = 4 * MAX_IMAGE_PIXELS + (64 << 20);

/// A document image as callers hand it over.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageInput {
    /// A PNG, JPEG or WebP file.
    Path(PathBuf),
    /// The bytes of a PNG, JPEG or WebP file.
    Bytes(Vec<u8>),
    /// Decoded samples, row-major `(height, width, channels)`: 1 channel is gray,
    /// 3 is RGB, 4 is RGBA (composited over white).
    Pixels {
        height: usize,
        width: usize,
        channels: usize,
        data: Vec<u8>,
    },
}

impl ImageInput {
    /// The file an image came from, if it came from one.
    pub fn source(&self) -> Option<&Path> {
        match self {
            ImageInput::Path(path) => Some(path),
            _ => None,
        }
    }
}

impl From<PathBuf> for ImageInput {
    fn from(path: PathBuf) -> Self {
        ImageInput::Path(path)
    }
}

impl From<&Path> for ImageInput {
    fn from(path: &Path) -> Self {
        ImageInput::Path(path.to_path_buf())
    }
}

impl From<Vec<u8>> for ImageInput {
    fn from(bytes: Vec<u8>) -> Self {
        ImageInput::Bytes(bytes)
    }
}

/// An 8-bit RGB image, row-major `(height, width, 3)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Decodes (files and bytes) or checks (pixels) an input and converts it to RGB.
pub fn load_rgb(input: &ImageInput) -> Result<RgbImage> {
    match input {
        ImageInput::Path(path) => {
            let bytes = std::fs::read(path).map_err(|e| TesseraError::io(path, e))?;
            decode(&bytes, &path.display().to_string())
        }
        ImageInput::Bytes(bytes) => decode(bytes, "image bytes"),
        ImageInput::Pixels {
            height,
            width,
            channels,
            data,
        } => from_pixels(*height, *width, *channels, data),
    }
}

fn decode(bytes: &[u8], what: &str) -> Result<RgbImage> {
    let undecodable = |e: ImageError| match e {
        ImageError::Limits(limit) => too_large(what, &limit.to_string()),
        other => TesseraError::Encoding(format!(
            "cannot decode {what} as an image (PNG, JPEG or WebP expected): {other}"
        )),
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| TesseraError::Encoding(format!("cannot read {what}: {e}")))?;
    if reader.format().is_none() {
        return Err(TesseraError::Encoding(format!(
            "{what} is not a recognised image (PNG, JPEG or WebP expected)"
        )));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(undecodable)?;
    let (width, height) = decoder.dimensions();
    check_size(height as usize, width as usize, what)?;
    let decoded = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    let inconsistent = || TesseraError::Encoding(format!("{what}: inconsistent 16-bit image"));
    // Pillow reads 16-bit PNGs as 8-bit modes, keeping the high byte ("RGB;16B"),
    // except gray, which it opens as `I;16` and clips at 255 when converting.
    let image = match decoded.color() {
        ColorType::L16 => {
            let data = decoded
                .to_luma16()
                .iter()
                .map(|&v| v.min(255) as u8)
                .collect();
            DynamicImage::ImageLuma8(
                GrayImage::from_raw(width, height, data).ok_or_else(inconsistent)?,
            )
        }
        ColorType::La16 | ColorType::Rgba16 => {
            let data = high_bytes(decoded.to_rgba16().as_raw());
            DynamicImage::ImageRgba8(
                RgbaImage::from_raw(width, height, data).ok_or_else(inconsistent)?,
            )
        }
        ColorType::Rgb16 => {
            let data = high_bytes(decoded.to_rgb16().as_raw());
            DynamicImage::ImageRgb8(
                ::image::RgbImage::from_raw(width, height, data).ok_or_else(inconsistent)?,
            )
        }
        _ => decoded,
    };
    // Pillow composites whenever the image has an alpha band or a tRNS entry; the PNG
    // decoder expands tRNS into an alpha channel, so both show up as alpha here.
    if image.color().has_alpha() {
        let rgba = image.to_rgba8();
        Ok(composite_on_white(
            width as usize,
            height as usize,
            rgba.as_raw(),
        ))
    } else {
        Ok(RgbImage {
            width: width as usize,
            height: height as usize,
            data: image.to_rgb8().into_raw(),
        })
    }
}

fn high_bytes(samples: &[u16]) -> Vec<u8> {
    samples.iter().map(|&v| (v >> 8) as u8).collect()
}

fn too_large(what: &str, detail: &str) -> TesseraError {
    TesseraError::Encoding(format!(
        "{what} is too large to decode ({detail}); the limit is {MAX_IMAGE_PIXELS} pixels and \
         {MAX_SIDE} pixels a side: downscale it first"
    ))
}

fn check_size(height: usize, width: usize, what: &str) -> Result<()> {
    let pixels = height as u64 * width as u64;
    if pixels > MAX_IMAGE_PIXELS || height > MAX_SIDE as usize || width > MAX_SIDE as usize {
        return Err(too_large(
            what,
            &format!("{width}x{height} = {pixels} pixels"),
        ));
    }
    Ok(())
}

fn from_pixels(height: usize, width: usize, channels: usize, data: &[u8]) -> Result<RgbImage> {
    if height == 0 || width == 0 {
        return Err(TesseraError::Config(format!(
            "an image array must not be empty, got shape ({height}, {width}, {channels})"
        )));
    }
    if !matches!(channels, 1 | 3 | 4) {
        return Err(TesseraError::Config(format!(
            "an image array needs 1 (gray), 3 (RGB) or 4 (RGBA) channels, got {channels}"
        )));
    }
    check_size(height, width, "the image array")?;
    let expected = height * width * channels;
    if data.len() != expected {
        return Err(TesseraError::Config(format!(
            "an image array of shape ({height}, {width}, {channels}) needs {expected} bytes, got {}",
            data.len()
        )));
    }
    let data = match channels {
        1 => data.iter().flat_map(|&v| [v, v, v]).collect(),
        3 => data.to_vec(),
        _ => return Ok(composite_on_white(width, height, data)),
    };
    Ok(RgbImage {
        width,
        height,
        data,
    })
}

/// RGBA over opaque white, rounded like `PIL.Image.alpha_composite`:
/// `c' = floor((c·a + 255·(255 − a)) / 255 + 1/2)`.
fn composite_on_white(width: usize, height: usize, rgba: &[u8]) -> RgbImage {
    let data = rgba
        .chunks_exact(4)
        .flat_map(|px| {
            let a = px[3] as u32;
            let blend = |c: u8| ((2 * (c as u32 * a + 255 * (255 - a)) + 255) / 510) as u8;
            [blend(px[0]), blend(px[1]), blend(px[2])]
        })
        .collect();
    RgbImage {
        width,
        height,
        data,
    }
}

/// Fixed-point precision of Pillow's 8-bit resampling (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic kernel (Keys, a = -0.5).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// One output sample's window: first input index and fixed-point weights.
struct Window {
    start: usize,
    weights: Vec<i64>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for one axis.
fn windows(in_size: usize, out_size: usize) -> Vec<Window> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    // Pillow multiplies by the reciprocal rather than dividing; kept for bit-exactness.
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero; both values are >= -0.5 + 0.5 here.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut k: Vec<f64> = (xmin..xmax)
                .map(|x| bicubic((x as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = k.iter().sum();
            if total != 0.0 {
                k.iter_mut().for_each(|w| *w /= total);
            }
            let one = (1u64 << PRECISION_BITS) as f64;
            let weights = k
                .iter()
                .map(|&w| {
                    if w < 0.0 {
                        (w * one - 0.5) as i64
                    } else {
                        (w * one + 0.5) as i64
                    }
                })
                .collect();
            Window {
                start: xmin,
                weights,
            }
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples along the width: `(h, w, 3)` -> `(h, out_w, 3)`.
fn horizontal_pass(src: &RgbImage, out_w: usize) -> RgbImage {
    let windows = windows(src.width, out_w);
    let mut data = Vec::with_capacity(src.height * out_w * 3);
    for row in src.data.chunks_exact(src.width * 3) {
        for window in &windows {
            let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
            for (k, &w) in window.weights.iter().enumerate() {
                let px = &row[(window.start + k) * 3..(window.start + k) * 3 + 3];
                for c in 0..3 {
                    acc[c] += px[c] as i64 * w;
                }
            }
            data.extend(acc.map(clip8));
        }
    }
    RgbImage {
        width: out_w,
        height: src.height,
        data,
    }
}

/// Resamples along the height: `(h, w, 3)` -> `(out_h, w, 3)`.
fn vertical_pass(src: &RgbImage, out_h: usize) -> RgbImage {
    let stride = src.width * 3;
    let mut data = Vec::with_capacity(out_h * stride);
    for window in windows(src.height, out_h) {
        for x in 0..stride {
            let mut acc = 1i64 << (PRECISION_BITS - 1);
            for (k, &w) in window.weights.iter().enumerate() {
                acc += src.data[(window.start + k) * stride + x] as i64 * w;
            }
            data.push(clip8(acc));
        }
    }
    RgbImage {
        width: src.width,
        height: out_h,
        data,
    }
}

/// Pillow (<= 12.x) `Image.resize((width, height), BICUBIC)`: the horizontal pass
/// first (if the width changes), its rounded 8-bit result feeding the vertical pass.
pub fn resize_bicubic(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    let mut out = if image.width != width {
        horizontal_pass(image, width)
    } else {
        image.clone()
    };
    if out.height != height {
        out = vertical_pass(&out, height);
    }
    out
}

#[derive(Debug, Clone, Deserialize)]
struct SizeConfig {
    height: Option<usize>,
    width: Option<usize>,
    shortest_edge: Option<usize>,
}

/// `preprocessor_config.json` of a SigLIP image processor.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageProcessorConfig {
    size: Option<SizeConfig>,
    #[serde(default = "default_true")]
    pub do_resize: bool,
    #[serde(default = "default_true")]
    pub do_rescale: bool,
    #[serde(default = "default_true")]
    pub do_normalize: bool,
    #[serde(default = "default_rescale")]
    pub rescale_factor: f64,
    #[serde(default = "default_half")]
    pub image_mean: Vec<f64>,
    #[serde(default = "default_half")]
    pub image_std: Vec<f64>,
    #[serde(default = "default_resample")]
    pub resample: u32,
    pub image_seq_length: Option<usize>,
}

impl Default for ImageProcessorConfig {
    /// transformers' `SiglipImageProcessor` defaults (size from the vision tower).
    fn default() -> Self {
        ImageProcessorConfig {
            size: None,
            do_resize: true,
            do_rescale: true,
            do_normalize: true,
            rescale_factor: default_rescale(),
            image_mean: default_half(),
            image_std: default_half(),
            resample: default_resample(),
            image_seq_length: None,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_rescale() -> f64 {
    1.0 / 255.0
}

fn default_half() -> Vec<f64> {
    vec![0.5; 3]
}

fn default_resample() -> u32 {
    3
}

/// PIL's resample code for bicubic, the only filter SigLIP processors use.
const PIL_BICUBIC: u32 = 3;

/// Turns images into the `(3, S, S)` float input of the vision tower.
#[derive(Debug, Clone)]
pub struct ImagePreprocessor {
    pub width: usize,
    pub height: usize,
    rescale_factor: f64,
    mean: [f32; 3],
    std: [f32; 3],
    do_resize: bool,
    do_rescale: bool,
    do_normalize: bool,
}

impl ImagePreprocessor {
    /// From `preprocessor_config.json`; `default_size` is the vision tower's image size,
    /// used when the file gives none.
    pub fn new(config: &ImageProcessorConfig, default_size: usize) -> Result<Self> {
        if config.resample != PIL_BICUBIC {
            return Err(TesseraError::Config(format!(
                "preprocessor_config.json asks for PIL resample filter {}; only bicubic (3) is supported",
                config.resample
            )));
        }
        let triple = |v: &[f64], what: &str| -> Result<[f32; 3]> {
            match v {
                [x] => Ok([*x as f32; 3]),
                [a, b, c] => Ok([*a as f32, *b as f32, *c as f32]),
                _ => Err(TesseraError::Config(format!(
                    "preprocessor_config.json: {what} must have 1 or 3 values, got {}",
                    v.len()
                ))),
            }
        };
        let (height, width) = match &config.size {
            Some(SizeConfig {
                height: Some(h),
                width: Some(w),
                ..
            }) => (*h, *w),
            Some(SizeConfig {
                shortest_edge: Some(s),
                ..
            }) => (*s, *s),
            _ => (default_size, default_size),
        };
        let std = triple(&config.image_std, "image_std")?;
        if config.do_normalize {
            if let Some(bad) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                return Err(TesseraError::Config(format!(
                    "image_std must be positive and finite in every channel, got {bad} \
                     (a zero would divide every pixel by zero)"
                )));
            }
        }
        if !config.rescale_factor.is_finite() {
            return Err(TesseraError::Config(format!(
                "rescale_factor must be finite, got {}",
                config.rescale_factor
            )));
        }
        Ok(ImagePreprocessor {
            width,
            height,
            rescale_factor: config.rescale_factor,
            mean: triple(&config.image_mean, "image_mean")?,
            std,
            do_resize: config.do_resize,
            do_rescale: config.do_rescale,
            do_normalize: config.do_normalize,
        })
    }

    /// The resized 8-bit image (`(height, width, 3)`).
    pub fn resize(&self, image: &RgbImage) -> RgbImage {
        if self.do_resize {
            resize_bicubic(image, self.width, self.height)
        } else {
            image.clone()
        }
    }

    /// Model input `(3, height, width)` in channel-major order: rescaled in float64
    /// then cast, normalised in float32, as the reference does.
    pub fn pixel_values(&self, input: &ImageInput) -> Result<Vec<f32>> {
        let resized = self.resize(&load_rgb(input)?);
        if resized.width != self.width || resized.height != self.height {
            return Err(TesseraError::Config(format!(
                "the image is {}x{} but the model needs {}x{} and resizing is off",
                resized.width, resized.height, self.width, self.height
            )));
        }
        Ok(self.normalize(&resized))
    }

    /// Rescale + normalise an already resized image into `(3, height, width)`.
    pub fn normalize(&self, image: &RgbImage) -> Vec<f32> {
        let plane = image.width * image.height;
        let mut out = vec![0f32; 3 * plane];
        for (i, px) in image.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let mut v = if self.do_rescale {
                    (px[c] as f64 * self.rescale_factor) as f32
                } else {
                    px[c] as f32
                };
                if self.do_normalize {
                    v = (v - self.mean[c]) / self.std[c];
                }
                out[c * plane + i] = v;
            }
        }
        out
    }
}
