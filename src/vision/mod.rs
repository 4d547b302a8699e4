//! Image input for the vision-language paradigm: decoding, RGB conversion and the
//! exact preprocessing of the reference image processors.

pub mod image;

pub use self::image::{
    load_rgb, resize_bicubic, ImageInput, ImagePreprocessor, ImageProcessorConfig, RgbImage,
    MAX_IMAGE_PIXELS,
};
