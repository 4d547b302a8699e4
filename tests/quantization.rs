//! Quantization: sentence-transformers' `quantize_embeddings` on the dense golden
//! data, and the multi-vector quantized forms and their MaxSim.

mod common;

use std::path::Path;

use candle_core::Tensor;
use common::Case;
use proptest::prelude::*;
use tessera::quantization::{
    embedding_ranges, maxsim_quantized, quantize, quantize_embeddings, Precision, QuantizedArray,
};
use tessera::{
    DenseEmbedder, EncodeOptions, Matrix, QuantizationConfig, QuantizedEmbeddings, TesseraError,
};

fn matrix(case: &Case, key: &str) -> Matrix {
    let (dims, data) = case.array_f32(key);
    Matrix {
        rows: dims[0],
        cols: dims[1],
        data,
    }
}

fn array_u8(case: &Case, key: &str) -> Vec<u8> {
    Tensor::read_npz_by_name(case.dir.join("expected.npz"), &[key])
        .unwrap_or_else(|e| panic!("{key} in expected.npz: {e}"))
        .remove(0)
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap()
}

/// An `int8` array of an uncompressed `.npz` (candle reads no int8): the entry's local
/// zip header, then the `.npy` header, then `rows * cols` bytes.
fn array_i8(npz: &Path, key: &str) -> Vec<i8> {
    let bytes = std::fs::read(npz).unwrap();
    let name = format!("{key}.npy");
    let u16_at = |p: usize| u16::from_le_bytes([bytes[p], bytes[p + 1]]) as usize;
    let header = (0..bytes.len().saturating_sub(30 + name.len()))
        .find(|&p| {
            bytes[p..p + 4] == *b"PK\x03\x04"
                && u16_at(p + 26) == name.len()
                && bytes[p + 30..p + 30 + name.len()] == *name.as_bytes()
        })
        .unwrap_or_else(|| panic!("{name} not in {}", npz.display()));
    let npy = header + 30 + name.len() + u16_at(header + 28);
    assert_eq!(&bytes[npy..npy + 6], b"\x93NUMPY");
    let (dict_len, dict_start) = match bytes[npy + 6] {
        1 => (u16_at(npy + 8), npy + 10),
        _ => (
            u32::from_le_bytes(bytes[npy + 8..npy + 12].try_into().unwrap()) as usize,
            npy + 12,
        ),
    };
    let dict = std::str::from_utf8(&bytes[dict_start..dict_start + dict_len]).unwrap();
    assert!(dict.contains("'|i1'"), "{name} is not int8: {dict}");
    let shape = &dict[dict.find("'shape': (").unwrap() + 10..];
    let shape = &shape[..shape.find(')').unwrap()];
    let count: usize = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<usize>().unwrap())
        .product();
    let data = dict_start + dict_len;
    bytes[data..data + count].iter().map(|&b| b as i8).collect()
}

fn unpack_int8(array: QuantizedArray) -> Vec<i8> {
    match array {
        QuantizedArray::Int8 { data, .. } => data,
        other => panic!("expected int8, got {other:?}"),
    }
}

fn unpack_uint8(array: QuantizedArray) -> Vec<u8> {
    match array {
        QuantizedArray::Uint8 { data, .. } => data,
        other => panic!("expected uint8, got {other:?}"),
    }
}

/// Packed bits equal, except where the float component is within `1e-4` of zero.
fn assert_bits(label: &str, got: &[u8], want: &[u8], floats: &Matrix) {
    let width = floats.cols.div_ceil(8);
    assert_eq!(got.len(), floats.rows * width, "{label}: bytes");
    for r in 0..floats.rows {
        for c in 0..floats.cols {
            let bit = |b: &[u8]| b[r * width + c / 8] & (0x80 >> (c % 8)) != 0;
            if bit(got) != bit(want) {
                let x = floats.row(r)[c];
                assert!(x.abs() < 1e-4, "{label}: row {r} bit {c} differs (x = {x})");
            }
        }
    }
}

fn assert_within_one(label: &str, got: &[i8], want: &[i8]) {
    assert_eq!(got.len(), want.len(), "{label}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as i16 - *w as i16).abs() <= 1,
            "{label}: element {i}: got {g} want {w}"
        );
    }
}

#[test]
fn ubinary_matches_sentence_transformers() {
    for case in Case::all("dense") {
        if case.check("ubinary").is_none() {
            continue;
        }
        let embeddings = matrix(&case, "embeddings");
        let want = array_u8(&case, "ubinary");
        let got = quantize_embeddings(&embeddings, Precision::Ubinary, None, None).unwrap();
        assert_eq!(got.shape(), (embeddings.rows, embeddings.cols.div_ceil(8)));
        let got = unpack_uint8(got);
        assert_bits(
            &format!("{} ubinary", case.name()),
            &got,
            &want,
            &embeddings,
        );
        // Signed binary is the same bytes shifted by -128.
        let signed =
            unpack_int8(quantize_embeddings(&embeddings, Precision::Binary, None, None).unwrap());
        for (s, u) in signed.iter().zip(&got) {
            assert_eq!(*s as i16, *u as i16 - 128);
        }
        // End to end: Tessera's own embeddings give the same bits.
        let model = DenseEmbedder::builder()
            .model(case.model_dir().to_string_lossy())
            .build()
            .unwrap();
        let texts = case.texts("texts");
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ours = model
            .encode_batch(&refs, &EncodeOptions::default())
            .unwrap();
        let bits =
            unpack_uint8(quantize_embeddings(&ours, Precision::Ubinary, None, None).unwrap());
        assert_bits(
            &format!("{} ubinary end to end", case.name()),
            &bits,
            &want,
            &embeddings,
        );
    }
}

#[test]
fn int8_with_batch_ranges_matches_sentence_transformers() {
    for case in Case::all("dense") {
        if case.check("int8").is_none() {
            continue;
        }
        let embeddings = matrix(&case, "embeddings");
        let ranges = embedding_ranges(&embeddings).unwrap();
        assert_eq!(
            ranges,
            matrix(&case, "int8_ranges"),
            "{} ranges",
            case.name()
        );
        let want = array_i8(&case.dir.join("expected.npz"), "int8");
        let got =
            unpack_int8(quantize_embeddings(&embeddings, Precision::Int8, None, None).unwrap());
        assert_within_one(&format!("{} int8", case.name()), &got, &want);
    }
}

#[test]
fn int8_with_calibration_matches_sentence_transformers() {
    for case in Case::all("dense") {
        if case.check("int8_calibrated").is_none() {
            continue;
        }
        let embeddings = matrix(&case, "embeddings");
        let calibration = matrix(&case, "calibration_embeddings");
        let stored_ranges = matrix(&case, "int8_calibrated_ranges");
        assert_eq!(embedding_ranges(&calibration).unwrap(), stored_ranges);
        let want = array_i8(&case.dir.join("expected.npz"), "int8_calibrated");
        let got = unpack_int8(
            quantize_embeddings(&embeddings, Precision::Int8, None, Some(&calibration)).unwrap(),
        );
        assert_within_one(&format!("{} int8_calibrated", case.name()), &got, &want);
        // Explicit ranges take precedence and give the same result.
        let explicit = unpack_int8(
            quantize_embeddings(&embeddings, Precision::Int8, Some(&stored_ranges), None).unwrap(),
        );
        assert_eq!(explicit, got);
        // uint8 is the same levels without the -128 shift.
        let unsigned = unpack_uint8(
            quantize_embeddings(&embeddings, Precision::Uint8, None, Some(&calibration)).unwrap(),
        );
        for (u, s) in unsigned.iter().zip(&got) {
            assert_eq!(*u as i16 - 128, *s as i16);
        }
    }
}

#[test]
fn precisions_and_configs_parse_from_strings() {
    for (name, config) in [
        ("none", QuantizationConfig::None),
        ("binary", QuantizationConfig::Binary),
        ("INT8", QuantizationConfig::Int8),
        ("int4", QuantizationConfig::Int4),
    ] {
        assert_eq!(QuantizationConfig::parse(name).unwrap(), config);
        assert_eq!(name.parse::<QuantizationConfig>().unwrap(), config);
    }
    assert!(matches!(
        QuantizationConfig::parse("int2"),
        Err(TesseraError::Quantization(_))
    ));
    assert_eq!(Precision::parse("ubinary").unwrap(), Precision::Ubinary);
    assert!(matches!(
        Precision::parse("fp8"),
        Err(TesseraError::Quantization(_))
    ));
}

#[test]
fn binary_packs_in_packbits_order() {
    // 10 components: two bytes, the last six bits of byte 1 are padding (0).
    let m = Matrix {
        rows: 1,
        cols: 10,
        data: vec![1.0, -1.0, 0.0, 0.5, -0.0, 2.0, -3.0, 0.1, 0.2, -0.2],
    };
    let q = quantize(&m, QuantizationConfig::Binary).unwrap();
    assert_eq!(q.data(), &[0b1001_0101, 0b1000_0000]);
    assert_eq!(q.shape(), (1, 2));
    assert_eq!(q.original_dim(), 10);
    let ub = unpack_uint8(quantize_embeddings(&m, Precision::Ubinary, None, None).unwrap());
    assert_eq!(ub, q.data());
}

#[test]
fn binary_maxsim_counts_hamming_over_the_real_dimension() {
    let query = Matrix {
        rows: 2,
        cols: 10,
        data: [[1.0; 10], [-1.0; 10]].concat(),
    };
    let mut doc_row = [1.0f32; 10];
    doc_row[0] = -1.0; // one differing bit out of 10
    let document = Matrix {
        rows: 1,
        cols: 10,
        data: doc_row.to_vec(),
    };
    let q = quantize(&query, QuantizationConfig::Binary).unwrap();
    let d = quantize(&document, QuantizationConfig::Binary).unwrap();
    let score = maxsim_quantized(&q, &d).unwrap();
    // Row 0: 1 - 2 * 1/10 = 0.8; row 1: 1 - 2 * 9/10 = -0.8.
    assert!((score - 0.0).abs() < 1e-6, "{score}");
    assert!((maxsim_quantized(&q, &q).unwrap() - 2.0).abs() < 1e-6);
}

#[test]
fn compression_ratios() {
    let m = Matrix {
        rows: 4,
        cols: 128,
        data: (0..512).map(|i| (i as f32 * 0.37).sin()).collect(),
    };
    let binary = quantize(&m, QuantizationConfig::Binary).unwrap();
    assert_eq!(binary.memory_bytes(), 4 * 16);
    assert_eq!(binary.compression_ratio(), 32.0);
    let int8 = quantize(&m, QuantizationConfig::Int8).unwrap();
    assert_eq!(int8.memory_bytes(), 4 * 128 + 4 * 4);
    assert!(int8.compression_ratio() > 3.8);
    let int4 = quantize(&m, QuantizationConfig::Int4).unwrap();
    assert_eq!(int4.memory_bytes(), 4 * 64 + 4 * 4);
    assert!(int4.compression_ratio() > 7.0);
}

#[test]
fn bad_inputs_are_refused() {
    let a = Matrix {
        rows: 1,
        cols: 8,
        data: vec![0.5; 8],
    };
    let b = Matrix {
        rows: 1,
        cols: 16,
        data: vec![0.5; 16],
    };
    for config in [
        QuantizationConfig::Binary,
        QuantizationConfig::Int8,
        QuantizationConfig::Int4,
    ] {
        let (qa, qb) = (quantize(&a, config).unwrap(), quantize(&b, config).unwrap());
        assert!(matches!(
            maxsim_quantized(&qa, &qb),
            Err(TesseraError::DimensionMismatch { .. })
        ));
    }
    let binary = quantize(&a, QuantizationConfig::Binary).unwrap();
    let int8 = quantize(&a, QuantizationConfig::Int8).unwrap();
    // Parts round-trip; inconsistent parts are refused.
    let rebuilt = QuantizedEmbeddings::from_parts(
        int8.precision(),
        int8.original_dim(),
        int8.num_tokens(),
        int8.data().to_vec(),
        int8.scales().to_vec(),
    )
    .unwrap();
    assert_eq!(rebuilt, int8);
    assert!(matches!(
        QuantizedEmbeddings::from_parts(QuantizationConfig::Binary, 8, 2, vec![0], vec![]),
        Err(TesseraError::Quantization(_))
    ));
    assert!(matches!(
        maxsim_quantized(&binary, &int8),
        Err(TesseraError::Quantization(_))
    ));
    assert!(matches!(
        quantize(&a, QuantizationConfig::None),
        Err(TesseraError::Quantization(_))
    ));
    let nan = Matrix {
        rows: 1,
        cols: 2,
        data: vec![f32::NAN, 1.0],
    };
    assert!(matches!(
        quantize(&nan, QuantizationConfig::Int8),
        Err(TesseraError::Quantization(_))
    ));
    let wrong_ranges = Matrix {
        rows: 2,
        cols: 3,
        data: vec![0.0; 6],
    };
    assert!(matches!(
        quantize_embeddings(&a, Precision::Int8, Some(&wrong_ranges), None),
        Err(TesseraError::DimensionMismatch { .. })
    ));
}

fn token_matrix() -> impl Strategy<Value = Matrix> {
    (1usize..6, 1usize..40).prop_flat_map(|(rows, cols)| {
        proptest::collection::vec(-2.0f32..2.0, rows * cols).prop_map(move |data| Matrix {
            rows,
            cols,
            data,
        })
    })
}

proptest! {
    #[test]
    fn integer_round_trips_stay_within_half_a_step(m in token_matrix()) {
        for (config, levels) in [(QuantizationConfig::Int8, 127.0f32), (QuantizationConfig::Int4, 7.0)] {
            let q = quantize(&m, config).unwrap();
            prop_assert_eq!(q.scales().len(), m.rows);
            let back = q.dequantize();
            for (r, (orig, approx)) in m.iter_rows().zip(back.iter_rows()).enumerate() {
                let absmax = orig.iter().fold(0f32, |a, x| a.max(x.abs()));
                let half_step = absmax / levels / 2.0 + 1e-6;
                for (x, y) in orig.iter().zip(approx) {
                    prop_assert!((x - y).abs() <= half_step * 1.001, "row {} {} vs {}", r, x, y);
                }
            }
        }
    }

    #[test]
    fn binary_self_similarity_is_the_number_of_query_rows(m in token_matrix()) {
        let q = quantize(&m, QuantizationConfig::Binary).unwrap();
        prop_assert!((maxsim_quantized(&q, &q).unwrap() - m.rows as f32).abs() < 1e-5);
        let back = q.dequantize();
        for (orig, sign) in m.data.iter().zip(&back.data) {
            prop_assert_eq!(*orig > 0.0, *sign > 0.0);
        }
    }
}
