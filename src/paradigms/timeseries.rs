//! Probabilistic forecasting with Chronos-Bolt, as chronos-forecasting's
//! `ChronosBoltPipeline` computes it (`predict`, `predict_quantiles`, `embed`).
//!
//! Pipeline-level semantics (the model call itself is `models::chronos_bolt`): series are
//! left-padded with NaN to a common length and cut to the last `context_length` values;
//! horizons beyond the model's native one re-run the model on one context per quantile and
//! reduce the `Q × Q` samples with `torch.quantile`; custom quantile levels either pick
//! training columns or interpolate over the sorted, edge-augmented grid.

use std::path::Path;

use crate::encoder::RuntimeOptions;
use crate::error::{Result, TesseraError};
use crate::hub::{HubOptions, ModelSource};
use crate::layout::read_json;
use crate::matrix::Matrix;
use crate::models::checkpoint::{weight_files, Checkpoint};
use crate::models::chronos_bolt::{ChronosBolt, Config};
use crate::paradigms::common::{
    check_common, common_builder_setters, resolve_model, DEFAULT_BATCH_SIZE,
};
use crate::progress::Progress;
use crate::registry::Paradigm;
use crate::text::length_sorted_batches;

/// Configures and loads a [`TimeSeriesForecaster`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TimeSeriesBuilder {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(flatten)]
    runtime: RuntimeOptions,
    #[serde(rename = "revision", with = "crate::hub::revision_only")]
    hub: HubOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    prediction_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_size: Option<usize>,
}

impl TimeSeriesBuilder {
    common_builder_setters!();

    pub fn new() -> Self {
        TimeSeriesBuilder {
            hub: HubOptions::from_env(),
            ..Default::default()
        }
    }

    /// Default horizon of `forecast` calls (the model's native one when unset).
    pub fn prediction_length(mut self, prediction_length: usize) -> Self {
        self.prediction_length = Some(prediction_length);
        self
    }

    pub fn validate(&self) -> Result<()> {
        check_common(&self.runtime, self.batch_size)?;
        if let Some(n) = self.prediction_length {
            check_prediction_length(n)?;
        }
        Ok(())
    }

    pub fn build(self) -> Result<TimeSeriesForecaster> {
        self.validate()?;
        let source = resolve_model(&self.model, &self.hub, "chronos-bolt-small")?;
        TimeSeriesForecaster::from_source(source, self)
    }
}

/// Quantile forecasts of a batch of series.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// `(batch, horizon, quantiles)` row-major.
    pub values: Vec<f32>,
    /// `[batch, horizon, quantiles]`.
    pub shape: [usize; 3],
    /// The level of each entry along the last axis.
    pub quantile_levels: Vec<f32>,
    /// The reference's `mean` of `predict_quantiles`: the model's 0.5 quantile (unsorted), not
    /// an average; `None` when 0.5 is not one of the model's levels.
    pub mean: Option<Matrix>,
    /// `(batch, horizon)`: what [`TimeSeriesForecaster::forecast`] returns for the same call.
    pub median: Matrix,
}

impl Forecast {
    pub fn get(&self, series: usize, step: usize, quantile: usize) -> f32 {
        let [_, horizon, levels] = self.shape;
        self.values[(series * horizon + step) * levels + quantile]
    }
}

/// Encoder embeddings of a batch (`ChronosBoltPipeline.embed`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesEmbeddings {
    /// `(batch, tokens, d_model)` row-major: one row per patch, then [REG] if the model has it.
    pub values: Vec<f32>,
    pub shape: [usize; 3],
    /// Instance-norm mean and std of each series (after truncation).
    pub loc: Vec<f32>,
    pub scale: Vec<f32>,
}

/// A loaded Chronos-Bolt forecaster.
pub struct TimeSeriesForecaster {
    name: String,
    model: ChronosBolt,
    prediction_length: usize,
    batch_size: usize,
    /// Training quantile levels as float32, the dtype the reference compares and interpolates in.
    levels: Vec<f32>,
}

impl TimeSeriesForecaster {
    /// Loads a model with default options (registry id, repo id or directory).
    pub fn new(model: &str) -> Result<Self> {
        TimeSeriesBuilder::new().model(model).build()
    }

    pub fn builder() -> TimeSeriesBuilder {
        TimeSeriesBuilder::new()
    }

    fn from_source(source: ModelSource, options: TimeSeriesBuilder) -> Result<Self> {
        if let Some(spec) = source.spec {
            if spec.paradigm != Paradigm::Timeseries {
                return Err(TesseraError::Config(format!(
                    "'{}' is a {} model, not a time-series one; use Tessera(\"{}\") or the {} class",
                    spec.id, spec.paradigm, spec.id, spec.paradigm
                )));
            }
        }
        let dir = source.dir.as_path();
        let config = read_config(dir)?;
        let runtime = options.runtime.resolve_unquantized("time-series")?;
        let _packing = runtime.packing();
        let device = runtime.device.clone();
        let vb =
            Checkpoint::open(&weight_files(dir)?, &[])?.into_var_builder(runtime.dtype, &device);
        let model = ChronosBolt::load(vb, &config).map_err(|e| match e {
            TesseraError::Tensor(inner) => {
                TesseraError::load(dir.display().to_string(), inner.to_string())
            }
            TesseraError::Config(reason) => TesseraError::load(dir.display().to_string(), reason),
            other => other,
        })?;
        let levels = config
            .chronos_config
            .quantiles
            .iter()
            .map(|&q| q as f32)
            .collect();
        Ok(TimeSeriesForecaster {
            name: source.name,
            prediction_length: options
                .prediction_length
                .unwrap_or(config.chronos_config.prediction_length),
            batch_size: options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            levels,
            model,
        })
    }

    /// The model id it was built from.
    pub fn model(&self) -> &str {
        &self.name
    }

    /// The default horizon of `forecast` / `forecast_quantiles`.
    pub fn prediction_length(&self) -> usize {
        self.prediction_length
    }

    /// The horizon of one model call; longer horizons are forecast autoregressively.
    pub fn native_prediction_length(&self) -> usize {
        self.model.config().chronos_config.prediction_length
    }

    /// The most recent values a forecast looks at; older ones are ignored.
    pub fn context_length(&self) -> usize {
        self.model.config().chronos_config.context_length
    }

    /// The quantile levels the model predicts.
    pub fn quantiles(&self) -> Vec<f32> {
        self.levels.clone()
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The network, for step-by-step inspection.
    pub fn network(&self) -> &ChronosBolt {
        &self.model
    }

    /// The median forecast, `(series, horizon)`. Each series is a slice of values, oldest
    /// first, NaN = missing; series may differ in length.
    pub fn forecast<S: AsRef<[f32]>>(
        &self,
        series: &[S],
        prediction_length: Option<usize>,
    ) -> Result<Matrix> {
        self.forecast_with(series, prediction_length, false)
    }

    /// [`forecast`](Self::forecast), with a progress bar when `show_progress`.
    pub fn forecast_with<S: AsRef<[f32]>>(
        &self,
        series: &[S],
        prediction_length: Option<usize>,
        show_progress: bool,
    ) -> Result<Matrix> {
        let horizon = self.horizon(prediction_length)?;
        let raw = self.predict(series, horizon, show_progress)?;
        Ok(self.median(&raw, series.len(), horizon))
    }

    fn median(&self, raw: &[f32], batch: usize, horizon: usize) -> Matrix {
        let data = match self.level_index(0.5) {
            Some(median) => column(raw, batch, horizon, self.levels.len(), median),
            // No 0.5 among the training levels: interpolate as `forecast_quantiles` would.
            None => select_levels(raw, batch, horizon, &self.levels, &[0.5]),
        };
        Matrix {
            rows: batch,
            cols: horizon,
            data,
        }
    }

    /// Quantile forecasts, `(series, horizon, levels)`. Without `quantile_levels` these are
    /// the model's own levels ([`quantiles`](Self::quantiles)); otherwise levels that are
    /// all training levels are picked as they are, and any other set is interpolated over
    /// the sorted training quantiles (flat beyond the outermost ones), as the reference does.
    pub fn forecast_quantiles<S: AsRef<[f32]>>(
        &self,
        series: &[S],
        prediction_length: Option<usize>,
        quantile_levels: Option<&[f32]>,
    ) -> Result<Forecast> {
        self.forecast_quantiles_with(series, prediction_length, quantile_levels, false)
    }

    /// [`forecast_quantiles`](Self::forecast_quantiles), with a progress bar when
    /// `show_progress`.
    pub fn forecast_quantiles_with<S: AsRef<[f32]>>(
        &self,
        series: &[S],
        prediction_length: Option<usize>,
        quantile_levels: Option<&[f32]>,
        show_progress: bool,
    ) -> Result<Forecast> {
        let horizon = self.horizon(prediction_length)?;
        if let Some(levels) = quantile_levels {
            check_quantile_levels(levels)?;
        }
        let raw = self.predict(series, horizon, show_progress)?;
        let batch = series.len();
        let nq = self.levels.len();
        let (values, levels) = match quantile_levels {
            None => (
                quantiles_last(&raw, batch, nq, horizon),
                self.levels.clone(),
            ),
            Some(levels) => (
                select_levels(&raw, batch, horizon, &self.levels, levels),
                levels.to_vec(),
            ),
        };
        let mean = self.level_index(0.5).map(|median| Matrix {
            rows: batch,
            cols: horizon,
            data: column(&raw, batch, horizon, nq, median),
        });
        Ok(Forecast {
            values,
            shape: [batch, horizon, levels.len()],
            quantile_levels: levels,
            mean,
            median: self.median(&raw, batch, horizon),
        })
    }

    /// Encoder embeddings of every patch plus [REG], and each series' loc / scale. Like the
    /// reference, the whole call is padded to its longest series (cut to `context_length`).
    pub fn embed<S: AsRef<[f32]>>(&self, series: &[S]) -> Result<SeriesEmbeddings> {
        check_series(series)?;
        let d = self.model.config().d_model;
        let width = series
            .iter()
            .map(|s| s.as_ref().len())
            .max()
            .unwrap_or(0)
            .min(self.context_length());
        let mut out = SeriesEmbeddings {
            values: Vec::new(),
            shape: [series.len(), 0, d],
            loc: Vec::with_capacity(series.len()),
            scale: Vec::with_capacity(series.len()),
        };
        for chunk in series.chunks(self.batch_size) {
            crate::interrupt::checkpoint()?;
            let context = left_pad(chunk.iter().map(AsRef::as_ref), width);
            let patched = self.model.patch_context(&context);
            let encoded = self.model.encode(&patched)?;
            out.shape[1] = encoded.hidden.dim(1)?;
            out.values.extend(
                encoded
                    .hidden
                    .to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            );
            out.loc.extend(patched.loc);
            out.scale.extend(patched.scale);
        }
        Ok(out)
    }

    fn horizon(&self, prediction_length: Option<usize>) -> Result<usize> {
        let horizon = prediction_length.unwrap_or(self.prediction_length);
        check_prediction_length(horizon)?;
        Ok(horizon)
    }

    /// Index of a training level; levels are compared as the float32 values callers pass.
    fn level_index(&self, level: f32) -> Option<usize> {
        self.levels.iter().position(|&l| l == level)
    }

    /// `ChronosBoltPipeline.predict`: `(series, Q, horizon)` row-major. Series run in
    /// length-sorted batches; rows are independent, so the batching does not change results
    /// beyond float noise.
    fn predict<S: AsRef<[f32]>>(
        &self,
        series: &[S],
        horizon: usize,
        show_progress: bool,
    ) -> Result<Vec<f32>> {
        check_series(series)?;
        let nq = self.levels.len();
        let context_length = self.context_length();
        let lengths: Vec<usize> = series
            .iter()
            .map(|s| s.as_ref().len().min(context_length))
            .collect();
        // With non-overlapping patches extra left padding only adds masked patches, so each
        // batch may be padded to its own longest series. Overlapping patches (stride < patch
        // size) see the padding, so then every batch is padded like the reference's whole call.
        let config = &self.model.config().chronos_config;
        let common_width = (config.input_patch_stride != config.input_patch_size)
            .then(|| lengths.iter().copied().max().unwrap_or(0));
        let mut out = zeroed(series.len(), nq * horizon, "forecasts")?;
        let progress = Progress::new(series.len(), "forecasting", show_progress);
        for batch in length_sorted_batches(&lengths, self.batch_size) {
            crate::interrupt::checkpoint()?;
            let width = common_width
                .unwrap_or_else(|| batch.iter().map(|&i| lengths[i]).max().unwrap_or(0));
            let context = left_pad(batch.iter().map(|&i| series[i].as_ref()), width);
            let forecasts = self.predict_batch(&context, horizon)?;
            let per_series = nq * horizon;
            for (&index, values) in batch.iter().zip(forecasts.chunks(per_series)) {
                out[index * per_series..(index + 1) * per_series].copy_from_slice(values);
            }
            progress.advance(batch.len());
        }
        if let Some(row) = out
            .chunks(nq * horizon)
            .position(|r| r.iter().any(|v| v.is_infinite()))
        {
            return Err(TesseraError::Encoding(format!(
                "the forecast of series {row} overflows float32: its values are too large \
                 (rescale the series, e.g. divide it by a constant, and scale the forecast back)"
            )));
        }
        Ok(out)
    }

    /// One left-padded batch: the native forecast, then, while the horizon is not covered,
    /// one context per quantile path extended by that path's forecast, re-forecast, and the
    /// `Q × Q` samples of each step reduced back to the `Q` levels.
    fn predict_batch(&self, context: &Matrix, horizon: usize) -> Result<Vec<f32>> {
        let nq = self.levels.len();
        let step = self.native_prediction_length();
        let context_length = self.context_length();
        let batch = context.rows;
        let mut prediction = self.model_call(context)?;
        let mut blocks = vec![prediction.clone()];
        let mut covered = step;
        if covered < horizon {
            let mut paths: Vec<Vec<f32>> = context
                .iter_rows()
                .flat_map(|row| std::iter::repeat_n(row.to_vec(), nq))
                .collect();
            while covered < horizon {
                for (r, path) in paths.iter_mut().enumerate() {
                    let start = r * step;
                    path.extend_from_slice(&prediction[start..start + step]);
                    if path.len() > context_length {
                        path.drain(..path.len() - context_length);
                    }
                }
                let width = paths[0].len();
                let stacked = Matrix {
                    rows: paths.len(),
                    cols: width,
                    data: paths.concat(),
                };
                let samples = self.model_call(&stacked)?;
                prediction = reduce_samples(&samples, batch, nq, step, &self.levels);
                blocks.push(prediction.clone());
                covered += step;
            }
        }
        let mut out = Vec::with_capacity(batch * nq * horizon);
        for row in 0..batch * nq {
            for t in 0..horizon {
                out.push(blocks[t / step][row * step + t % step]);
            }
        }
        Ok(out)
    }

    /// The model over `context` in chunks of `batch_size` rows, `(rows, Q, P)` row-major.
    fn model_call(&self, context: &Matrix) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        let rows_per_call = self.batch_size;
        for first in (0..context.rows).step_by(rows_per_call) {
            let rows = rows_per_call.min(context.rows - first);
            let chunk = Matrix {
                rows,
                cols: context.cols,
                data: context.data[first * context.cols..(first + rows) * context.cols].to_vec(),
            };
            out.extend(self.model.forward(&chunk)?);
        }
        Ok(out)
    }
}

fn read_config(dir: &Path) -> Result<Config> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Err(TesseraError::load(
            dir.display().to_string(),
            "no config.json in the model directory",
        ));
    }
    let raw: serde_json::Value = read_json(&path)?;
    if raw.get("chronos_config").is_none() {
        return Err(TesseraError::load(
            dir.display().to_string(),
            "config.json has no chronos_config: not a Chronos-Bolt checkpoint",
        ));
    }
    serde_json::from_value(raw).map_err(|e| {
        TesseraError::load(
            path.display().to_string(),
            format!("invalid Chronos-Bolt config: {e}"),
        )
    })
}

/// The longest horizon a call may ask for: far past any use of a model trained on 64
/// steps, and small enough that its buffers are always allocatable.
pub const MAX_PREDICTION_LENGTH: usize = 100_000;

fn check_prediction_length(n: usize) -> Result<()> {
    if n == 0 {
        return Err(TesseraError::Config(
            "prediction_length must be at least 1".into(),
        ));
    }
    if n > MAX_PREDICTION_LENGTH {
        return Err(TesseraError::Config(format!(
            "prediction_length {n} is larger than the {MAX_PREDICTION_LENGTH} steps a call may forecast"
        )));
    }
    Ok(())
}

fn check_quantile_levels(levels: &[f32]) -> Result<()> {
    if levels.is_empty() {
        return Err(TesseraError::Config(
            "quantile_levels is empty: give at least one level in (0, 1)".into(),
        ));
    }
    if let Some(bad) = levels
        .iter()
        .find(|l| !(l.is_finite() && **l > 0.0 && **l < 1.0))
    {
        return Err(TesseraError::Config(format!(
            "quantile level {bad} is invalid: every level must be a number strictly between 0 and 1"
        )));
    }
    Ok(())
}

/// Every series needs at least one value; infinities are rejected because they turn the
/// whole forecast into NaN (missing values are NaN).
/// A zeroed `rows * cols` buffer, or `OutOfMemory` instead of an abort.
fn zeroed(rows: usize, cols: usize, what: &str) -> Result<Vec<f32>> {
    let len = rows.checked_mul(cols).ok_or_else(|| {
        TesseraError::OutOfMemory(format!("{rows} x {cols} {what} do not fit in memory"))
    })?;
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(len).map_err(|_| {
        TesseraError::OutOfMemory(format!(
            "{rows} x {cols} {what} ({} MB) cannot be allocated",
            len / (1 << 18)
        ))
    })?;
    buffer.resize(len, 0.0);
    Ok(buffer)
}

fn check_series<S: AsRef<[f32]>>(series: &[S]) -> Result<()> {
    for (i, s) in series.iter().enumerate() {
        let s = s.as_ref();
        if s.is_empty() {
            return Err(TesseraError::Encoding(format!(
                "series {i} is empty: every series needs at least one value (NaN marks missing ones)"
            )));
        }
        if let Some(pos) = s.iter().position(|v| v.is_infinite()) {
            return Err(TesseraError::Encoding(format!(
                "series {i} holds {} at position {pos}: values must be finite (use NaN for missing values)",
                s[pos]
            )));
        }
    }
    Ok(())
}

/// Stacks series right-aligned into `width` columns: NaN on the left of shorter ones, the
/// most recent `width` values of longer ones.
fn left_pad<'a>(series: impl Iterator<Item = &'a [f32]>, width: usize) -> Matrix {
    let mut data = Vec::new();
    let mut rows = 0;
    for s in series {
        let kept = &s[s.len().saturating_sub(width)..];
        data.extend(std::iter::repeat_n(f32::NAN, width - kept.len()));
        data.extend_from_slice(kept);
        rows += 1;
    }
    Matrix {
        rows,
        cols: width,
        data,
    }
}

/// `(B, Q, H)` → `(B, H, Q)`.
fn quantiles_last(raw: &[f32], batch: usize, nq: usize, horizon: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(raw.len());
    for b in 0..batch {
        for t in 0..horizon {
            for q in 0..nq {
                out.push(raw[(b * nq + q) * horizon + t]);
            }
        }
    }
    out
}

/// Quantile `q` of `(B, Q, H)` as `(B, H)`.
fn column(raw: &[f32], batch: usize, horizon: usize, nq: usize, q: usize) -> Vec<f32> {
    (0..batch)
        .flat_map(|b| {
            raw[(b * nq + q) * horizon..(b * nq + q + 1) * horizon]
                .iter()
                .copied()
        })
        .collect()
}

/// `predict_quantiles` on `(B, Q, H)` forecasts → `(B, H, levels)`. Levels that are all
/// training levels are a plain column pick (no sorting, crossed quantiles stay crossed);
/// otherwise the training quantiles, with the first and last repeated, are sorted and
/// interpolated linearly.
fn select_levels(
    raw: &[f32],
    batch: usize,
    horizon: usize,
    training: &[f32],
    levels: &[f32],
) -> Vec<f32> {
    let nq = training.len();
    let picks: Option<Vec<usize>> = levels
        .iter()
        .map(|l| training.iter().position(|t| t == l))
        .collect();
    let mut out = Vec::with_capacity(batch * horizon * levels.len());
    let mut augmented = Vec::with_capacity(nq + 2);
    for b in 0..batch {
        for t in 0..horizon {
            let at = |q: usize| raw[(b * nq + q) * horizon + t];
            match &picks {
                Some(picks) => out.extend(picks.iter().map(|&q| at(q))),
                None => {
                    augmented.clear();
                    augmented.push(at(0));
                    augmented.extend((0..nq).map(at));
                    augmented.push(at(nq - 1));
                    sort_samples(&mut augmented);
                    out.extend(levels.iter().map(|&l| sorted_quantile(&augmented, l)));
                }
            }
        }
    }
    out
}

/// The `Q × Q` forecasts of the quantile paths, `(B·Q rows, Q, P)`, reduced per step to the
/// training levels with `torch.quantile`: `(B, Q, P)`. Series `b`'s samples are its `Q`
/// paths' `Q` quantiles.
fn reduce_samples(
    samples: &[f32],
    batch: usize,
    nq: usize,
    step: usize,
    levels: &[f32],
) -> Vec<f32> {
    let per_series = nq * nq;
    let mut out = vec![0f32; batch * nq * step];
    let mut column = Vec::with_capacity(per_series);
    for b in 0..batch {
        for t in 0..step {
            column.clear();
            column.extend((0..per_series).map(|s| samples[(b * per_series + s) * step + t]));
            sort_samples(&mut column);
            for (k, &level) in levels.iter().enumerate() {
                out[(b * nq + k) * step + t] = sorted_quantile(&column, level);
            }
        }
    }
    out
}

/// Ascending, NaN last (NaN makes the quantile NaN, as in torch).
fn sort_samples(values: &mut [f32]) {
    values.sort_by(|a, b| a.total_cmp(b));
}

/// `torch.quantile(..., interpolation="linear")` of ascending `sorted` at `level`, in float32:
/// rank `level·(n−1)`, then `lerp` between its floor and ceiling; NaN if any sample is NaN.
fn sorted_quantile(sorted: &[f32], level: f32) -> f32 {
    let last = sorted.len() - 1;
    if sorted.iter().any(|v| v.is_nan()) {
        return f32::NAN;
    }
    let rank = level * last as f32;
    let below = (rank as usize).min(last);
    let above = (rank.ceil() as usize).min(last);
    lerp(sorted[below], sorted[above], rank - below as f32)
}

/// `torch.lerp`'s formula, which switches ends at weight 0.5 for accuracy.
fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight.abs() < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}
