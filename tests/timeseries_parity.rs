//! Chronos-Bolt forecasts against chronos-forecasting's `ChronosBoltPipeline` (golden data in
//! `tests/fixtures/golden/timeseries/*/`), read generically from each `cases.json`, plus
//! properties of the forecasts and the errors of bad input.

mod common;

use common::Case;
use serde_json::Value;
use tessera::models::chronos_bolt::relative_position_bucket;
use tessera::{Device, Matrix, TesseraError, TimeSeriesForecaster};

fn load(case: &Case) -> TimeSeriesForecaster {
    TimeSeriesForecaster::builder()
        .model(case.model_dir().to_string_lossy())
        .device(Device::Cpu)
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", case.name()))
}

fn series_of(sub: &Value) -> Vec<Vec<f32>> {
    sub["inputs"]["series"]
        .as_array()
        .expect("inputs.series")
        .iter()
        .map(|s| {
            s.as_array()
                .expect("a series is a list")
                .iter()
                .map(|v| v.as_f64().map_or(f32::NAN, |x| x as f32))
                .collect()
        })
        .collect()
}

fn sub_cases(case: &Case) -> Vec<Value> {
    case.cases["cases"].as_array().expect("cases").clone()
}

/// `(atol_normalized, rtol)` of the case file.
fn tolerance(case: &Case) -> (f32, f32) {
    let t = &case.cases["tolerance"];
    (
        t["atol_normalized"].as_f64().unwrap_or(1e-4) as f32,
        t["rtol"].as_f64().unwrap_or(1e-5) as f32,
    )
}

fn expected(case: &Case, sub: &Value, name: &str) -> (Vec<usize>, Vec<f32>) {
    let key = sub["outputs"][name]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("outputs.{name}.key"));
    case.array_f32(key)
}

/// `|got − want| ≤ atol·scale[series] + rtol·|want|`; `per_series` elements belong to each
/// series in turn. NaN must match NaN. Prints the worst element's share of the tolerance
/// (visible with `--nocapture`).
fn assert_forecast_close(
    label: &str,
    got: &[f32],
    want: &[f32],
    scale: &[f32],
    per_series: usize,
    atol: f32,
    rtol: f32,
) {
    assert_eq!(got.len(), want.len(), "{label}: length");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g.is_nan() && w.is_nan() {
            continue;
        }
        let bound = atol * scale[i / per_series.max(1)] + rtol * w.abs();
        let diff = (g - w).abs();
        let excess = match (g.is_finite(), diff == 0.0) {
            (false, _) => f32::INFINITY,
            (true, true) => 0.0,
            (true, false) => diff / bound,
        };
        if worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, excess)) = worst {
        println!("{label}: worst element at {excess:.3} of the tolerance");
        assert!(
            excess <= 1.0,
            "{label}: element {i} got {} want {} ({excess:.2}× the tolerance)",
            got[i],
            want[i]
        );
    }
}

/// Normalised-space tensors: `|got − want| ≤ atol + rtol·|want|`.
fn assert_abs_close(label: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    let ones = vec![1.0; got.len().max(1)];
    assert_forecast_close(label, got, want, &ones, 1, atol, rtol);
}

/// `(B, H, Q)` → `(B, Q, H)`.
fn steps_to_quantiles(values: &[f32], [batch, horizon, nq]: [usize; 3]) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len());
    for b in 0..batch {
        for q in 0..nq {
            for t in 0..horizon {
                out.push(values[(b * horizon + t) * nq + q]);
            }
        }
    }
    out
}

fn tensor_values(t: &candle_core::Tensor) -> Vec<f32> {
    t.to_dtype(candle_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn every_golden_case_matches_the_reference() {
    let cases = Case::all("timeseries");
    assert!(!cases.is_empty(), "no golden time-series cases");
    for case in cases {
        let model = load(&case);
        let (atol, rtol) = tolerance(&case);
        for sub in sub_cases(&case) {
            let id = format!("{}/{}", case.name(), sub["id"].as_str().unwrap_or("?"));
            let series = series_of(&sub);
            let options = &sub["options"];
            let horizon = options["prediction_length"].as_u64().map(|h| h as usize);
            let levels: Option<Vec<f32>> = options["quantile_levels"]
                .as_array()
                .map(|l| l.iter().map(|v| v.as_f64().unwrap() as f32).collect());
            let stats = model.embed(&series).unwrap();
            let scale = stats.scale.clone();
            let outputs = sub["outputs"].as_object().expect("outputs");
            for name in outputs.keys() {
                let (dims, want) = expected(&case, &sub, name);
                let label = format!("{id} {name}");
                match name.as_str() {
                    "loc" => assert_abs_close(&label, &stats.loc, &want, 0.0, 1e-5),
                    "scale" => assert_abs_close(&label, &stats.scale, &want, 0.0, 1e-5),
                    "forecast" => {
                        let got = model.forecast_quantiles(&series, horizon, None).unwrap();
                        assert_eq!(got.shape, [dims[0], dims[2], dims[1]], "{label}: shape");
                        let got = steps_to_quantiles(&got.values, got.shape);
                        assert_forecast_close(
                            &label,
                            &got,
                            &want,
                            &scale,
                            dims[1] * dims[2],
                            atol,
                            rtol,
                        );
                    }
                    "median" => {
                        let got = model.forecast(&series, horizon).unwrap();
                        assert_eq!([got.rows, got.cols], [dims[0], dims[1]], "{label}: shape");
                        assert_forecast_close(
                            &label, &got.data, &want, &scale, dims[1], atol, rtol,
                        );
                    }
                    "quantiles" | "mean" => {
                        let got = model
                            .forecast_quantiles(&series, horizon, levels.as_deref())
                            .unwrap();
                        let values = if name == "quantiles" {
                            assert_eq!(got.shape.to_vec(), dims, "{label}: shape");
                            got.values
                        } else {
                            let mean = got.mean.expect("the model has a 0.5 level");
                            assert_eq!(
                                [mean.rows, mean.cols],
                                [dims[0], dims[1]],
                                "{label}: shape"
                            );
                            mean.data
                        };
                        let per_series = dims[1..].iter().product();
                        assert_forecast_close(
                            &label, &values, &want, &scale, per_series, atol, rtol,
                        );
                    }
                    "embeddings" => {
                        assert_eq!(stats.shape.to_vec(), dims, "{label}: shape");
                        assert_abs_close(&label, &stats.values, &want, atol, rtol);
                    }
                    debug => {
                        let got = debug_tensor(&case, &sub, &model, debug);
                        assert_eq!(got.len(), want.len(), "{label}: size");
                        assert_abs_close(&label, &got, &want, atol, rtol);
                    }
                }
            }
        }
    }
}

/// Intermediate tensors of `debug` cases, from the left-padded input the reference saw.
fn debug_tensor(case: &Case, sub: &Value, model: &TimeSeriesForecaster, name: &str) -> Vec<f32> {
    let key = sub["inputs"]["left_padded_key"]
        .as_str()
        .expect("left_padded_key");
    let (dims, data) = case.array_f32(key);
    let context = Matrix {
        rows: dims[0],
        cols: dims[1],
        data,
    };
    let net = model.network();
    let patched = net.patch_context(&context);
    match name {
        "normalized_context" => return patched.normalized,
        "patch_input" => return patched.patches,
        _ => {}
    }
    let encoded = net.encode(&patched).unwrap();
    match name {
        "attention_mask" => tensor_values(&encoded.attention_mask),
        "input_embeds" => tensor_values(&encoded.input_embeds),
        "encoder_last_hidden_state" => tensor_values(&encoded.hidden),
        "decoder_last_hidden_state" => tensor_values(&net.decode(&encoded).unwrap()),
        "normalized_quantile_preds" => {
            tensor_values(&net.quantile_head(&net.decode(&encoded).unwrap()).unwrap())
        }
        other => panic!(
            "{}: output '{other}' is not checked by this test",
            case.name()
        ),
    }
}

/// The series of the first case file's first sub-case with several series.
fn sample_series(case: &Case) -> Vec<Vec<f32>> {
    sub_cases(case)
        .iter()
        .map(series_of)
        .find(|s| s.len() > 2 && s.iter().all(|x| x.iter().any(|v| !v.is_nan())))
        .expect("a multi-series case")
}

#[test]
fn interpolated_quantiles_are_sorted() {
    for case in Case::all("timeseries") {
        let model = load(&case);
        let series = sample_series(&case);
        let levels = [0.01, 0.05, 0.15, 0.25, 0.45, 0.5, 0.55, 0.85, 0.95, 0.99];
        let native = model.native_prediction_length();
        for horizon in [native, 2 * native + 3] {
            let got = model
                .forecast_quantiles(&series, Some(horizon), Some(&levels))
                .unwrap();
            let [b, h, q] = got.shape;
            for (s, t, k) in
                (0..b).flat_map(|s| (0..h).flat_map(move |t| (1..q).map(move |k| (s, t, k))))
            {
                assert!(
                    got.get(s, t, k - 1) <= got.get(s, t, k),
                    "{}: series {s} step {t}: level {} above level {}",
                    case.name(),
                    levels[k - 1],
                    levels[k]
                );
            }
        }
    }
}

#[test]
fn scaling_a_series_scales_its_forecast() {
    for case in Case::all("timeseries") {
        let model = load(&case);
        let series = sample_series(&case);
        let factor = 7.25f32;
        let scaled: Vec<Vec<f32>> = series
            .iter()
            .map(|s| s.iter().map(|v| v * factor).collect())
            .collect();
        let scale: Vec<f32> = model.embed(&scaled).unwrap().scale;
        let horizon = Some(model.native_prediction_length() + 5);
        let base = model.forecast_quantiles(&series, horizon, None).unwrap();
        let got = model.forecast_quantiles(&scaled, horizon, None).unwrap();
        let want: Vec<f32> = base.values.iter().map(|v| v * factor).collect();
        let per_series = got.shape[1] * got.shape[2];
        for (i, s) in scale.iter().enumerate() {
            // A constant series keeps the 1e-5 scale floor whatever its level: not scale-free.
            if *s <= 1e-5 {
                continue;
            }
            let rows = i * per_series..(i + 1) * per_series;
            let label = format!("{} series {i} scaled", case.name());
            assert_forecast_close(
                &label,
                &got.values[rows.clone()],
                &want[rows],
                &scale[i..],
                per_series,
                1e-4,
                1e-5,
            );
        }
    }
}

#[test]
fn a_series_forecasts_the_same_alone_and_in_a_batch() {
    for case in Case::all("timeseries") {
        let model = load(&case);
        let one_per_call = TimeSeriesForecaster::builder()
            .model(case.model_dir().to_string_lossy())
            .batch_size(1)
            .build()
            .unwrap();
        let config = &model.network().config().chronos_config;
        // Overlapping patches (stride < patch size) see the left padding, in the reference
        // too: there only the batching must not matter, not the company of other series.
        let padding_invariant = config.input_patch_stride == config.input_patch_size;
        let series = sample_series(&case);
        let scale = model.embed(&series).unwrap().scale;
        for horizon in [
            model.native_prediction_length(),
            2 * model.native_prediction_length() + 1,
        ] {
            let batch = model
                .forecast_quantiles(&series, Some(horizon), None)
                .unwrap();
            let per_series = batch.shape[1] * batch.shape[2];
            for (i, s) in series.iter().enumerate().filter(|_| padding_invariant) {
                let alone = model
                    .forecast_quantiles(std::slice::from_ref(s), Some(horizon), None)
                    .unwrap();
                let row = &batch.values[i * per_series..(i + 1) * per_series];
                let label = format!("{} series {i} horizon {horizon}", case.name());
                assert_forecast_close(
                    &label,
                    &alone.values,
                    row,
                    &scale[i..],
                    per_series,
                    1e-4,
                    0.0,
                );
            }
            let small_batches = one_per_call
                .forecast_quantiles(&series, Some(horizon), None)
                .unwrap();
            let label = format!("{} batch_size 1", case.name());
            assert_forecast_close(
                &label,
                &small_batches.values,
                &batch.values,
                &scale,
                per_series,
                1e-4,
                0.0,
            );
        }
    }
}

#[test]
fn accessors_and_defaults() {
    for case in Case::all("timeseries") {
        let config = &case.cases["model_config_summary"];
        let model = load(&case);
        let native = config["prediction_length"].as_u64().unwrap() as usize;
        assert_eq!(model.prediction_length(), native);
        assert_eq!(model.native_prediction_length(), native);
        assert_eq!(
            model.context_length(),
            config["context_length"].as_u64().unwrap() as usize
        );
        let levels: Vec<f32> = config["quantiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(model.quantiles(), levels);
        assert_eq!(model.model(), case.model_dir().to_string_lossy());

        let series = sample_series(&case);
        let median = model.forecast(&series, None).unwrap();
        assert_eq!((median.rows, median.cols), (series.len(), native));
        let quantiles = model.forecast_quantiles(&series, None, None).unwrap();
        assert_eq!(quantiles.shape, [series.len(), native, levels.len()]);
        assert_eq!(quantiles.quantile_levels, levels);
        // The median of `forecast` is the 0.5 column of `forecast_quantiles`.
        if let Some(q) = levels.iter().position(|&l| l == 0.5) {
            for (s, t) in (0..series.len()).flat_map(|s| (0..native).map(move |t| (s, t))) {
                assert_eq!(median.data[s * native + t], quantiles.get(s, t, q));
            }
        }

        let custom = TimeSeriesForecaster::builder()
            .model(case.model_dir().to_string_lossy())
            .prediction_length(native + 3)
            .build()
            .unwrap();
        assert_eq!(custom.prediction_length(), native + 3);
        assert_eq!(custom.forecast(&series, None).unwrap().cols, native + 3);

        let empty: Vec<Vec<f32>> = Vec::new();
        let none = model.forecast(&empty, None).unwrap();
        assert_eq!((none.rows, none.cols), (0, native));
    }
}

#[test]
fn all_missing_and_constant_series_give_finite_forecasts() {
    for case in Case::all("timeseries") {
        let model = load(&case);
        let series = vec![vec![f32::NAN; 5], vec![3.5; 40], vec![f32::NAN, 1.0]];
        let got = model
            .forecast_quantiles(&series, Some(2 * model.native_prediction_length()), None)
            .unwrap();
        assert!(got.values.iter().all(|v| v.is_finite()), "{}", case.name());
        // A constant series forecasts itself up to its 1e-5 scale.
        let per_series = got.shape[1] * got.shape[2];
        assert!(got.values[per_series..2 * per_series]
            .iter()
            .all(|v| (v - 3.5).abs() < 1e-3));
    }
}

#[test]
fn float32_bucket_rule_matches_the_float64_one() {
    let float64 = |rel: i64, bidirectional: bool, buckets: usize, max_distance: usize| {
        let (mut n, mut base, mut r) = (buckets as i64, 0i64, rel);
        if bidirectional {
            n /= 2;
            base += if r > 0 { n } else { 0 };
            r = r.abs();
        } else {
            r = (-r).max(0);
        }
        let exact = n / 2;
        if r < exact {
            return (base + r) as usize;
        }
        let v = exact
            + ((r as f64 / exact as f64).ln() / (max_distance as f64 / exact as f64).ln()
                * (n - exact) as f64) as i64;
        (base + v.min(n - 1)) as usize
    };
    for rel in -3000..3000 {
        for bidirectional in [true, false] {
            assert_eq!(
                relative_position_bucket(rel, bidirectional, 32, 128),
                float64(rel, bidirectional, 32, 128),
                "relative position {rel}"
            );
        }
    }
}

#[test]
fn bad_input_is_rejected_with_clear_errors() {
    let case = Case::all("timeseries")
        .into_iter()
        .next()
        .expect("a golden case");
    let model = load(&case);
    let good = vec![vec![1.0f32, 2.0, 3.0, 2.5]];

    let empty = vec![vec![1.0f32, 2.0], vec![]];
    match model.forecast(&empty, None) {
        Err(TesseraError::Encoding(msg)) => assert!(msg.contains("series 1 is empty"), "{msg}"),
        other => panic!("empty series: {other:?}"),
    }
    let infinite = vec![vec![1.0f32, f32::INFINITY]];
    assert!(matches!(
        model.forecast(&infinite, None),
        Err(TesseraError::Encoding(_))
    ));

    assert!(matches!(
        model.forecast(&good, Some(0)),
        Err(TesseraError::Config(_))
    ));
    assert!(matches!(
        model.forecast_quantiles(&good, Some(0), None),
        Err(TesseraError::Config(_))
    ));
    for bad in [
        0.0f32,
        1.0,
        -0.1,
        1.5,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        let result = model.forecast_quantiles(&good, None, Some(&[0.5, bad]));
        assert!(
            matches!(result, Err(TesseraError::Config(_))),
            "level {bad}: {result:?}"
        );
    }
    assert!(matches!(
        model.forecast_quantiles(&good, None, Some(&[])),
        Err(TesseraError::Config(_))
    ));

    let dir = case.model_dir().to_string_lossy().into_owned();
    let builder_errors = [
        TimeSeriesForecaster::builder()
            .model(&dir)
            .prediction_length(0)
            .build()
            .err(),
        TimeSeriesForecaster::builder()
            .model(&dir)
            .batch_size(0)
            .build()
            .err(),
        TimeSeriesForecaster::builder().build().err(),
    ];
    for error in builder_errors {
        assert!(matches!(error, Some(TesseraError::Config(_))), "{error:?}");
    }

    let not_chronos = tempfile::tempdir().unwrap();
    std::fs::write(
        not_chronos.path().join("config.json"),
        r#"{"model_type": "t5"}"#,
    )
    .unwrap();
    let error = TimeSeriesForecaster::new(&not_chronos.path().to_string_lossy()).err();
    match error {
        Some(TesseraError::ModelLoad { reason, .. }) => {
            assert!(reason.contains("chronos_config"), "{reason}")
        }
        other => panic!("config without chronos_config: {other:?}"),
    }
}

#[test]
fn the_forecaster_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TimeSeriesForecaster>();
}

#[test]
fn half_precision_runs_close_to_float32() {
    for case in Case::all("timeseries") {
        let model = load(&case);
        let series = sample_series(&case);
        let scale = model.embed(&series).unwrap().scale;
        let horizon = Some(model.native_prediction_length() + 2);
        let want = model.forecast_quantiles(&series, horizon, None).unwrap();
        let per_series = want.shape[1] * want.shape[2];
        for dtype in [tessera::DType::BF16] {
            if !tessera::layers::packed::bf16_supported() {
                continue;
            }
            let half = TimeSeriesForecaster::builder()
                .model(case.model_dir().to_string_lossy())
                .device(Device::Cpu)
                .dtype(dtype)
                .build()
                .unwrap();
            let got = half.forecast_quantiles(&series, horizon, None).unwrap();
            let label = format!("{} {}", case.name(), dtype.as_str());
            assert_forecast_close(
                &label,
                &got.values,
                &want.values,
                &scale,
                per_series,
                0.1,
                0.0,
            );
        }
    }
}
