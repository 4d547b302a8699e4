//! Hierarchical token pooling of multi-vector documents: fewer rows, nearly the same
//! MaxSim. Tokens are clustered with Ward linkage and each cluster is replaced by its mean,
//! exactly as the references do it, so pooled indexes match theirs:
//!
//! - [`PoolingStyle::PyLate`]: PyLate (>= 1.5) `pool_embeddings_hierarchical`: Ward on the
//!   cosine distances `1 - cos`, the first `protected` rows kept apart (first), plain means.
//! - [`PoolingStyle::ColPali`]: colpali-engine's `HierarchicalTokenPooler`: Ward on the
//!   Euclidean distances between rows of the `1 - cos` matrix, every row pooled, means
//!   L2-normalised.
//!
//! Clustering follows SciPy: `linkage(method="ward")` (nearest-neighbour chain, strict
//! comparisons, stable sort by height, union-find relabelling) and `fcluster(maxclust)`
//! (the cut that leaves at most `k` clusters, numbered depth-first). Tied heights can leave
//! fewer than `k` clusters, as in the references.

use rayon::prelude::*;

use crate::error::{Result, TesseraError};
use crate::matrix::Matrix;

/// Which reference's pooling to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingStyle {
    /// PyLate's ColBERT documents, with this many leading rows left unpooled.
    PyLate { protected: usize },
    /// colpali-engine's pooler for page embeddings.
    ColPali,
}

/// Pools one document's rows by `pool_factor` (`max(n / pool_factor, 1)` clusters).
pub fn pool(document: &Matrix, pool_factor: usize, style: PoolingStyle) -> Result<Matrix> {
    if pool_factor == 0 {
        return Err(TesseraError::Config(
            "pool_factor must be at least 1".into(),
        ));
    }
    if document.data.iter().any(|v| !v.is_finite()) {
        return Err(TesseraError::Config(
            "the token matrix has NaN or infinite values".into(),
        ));
    }
    match style {
        PoolingStyle::PyLate { protected } => {
            let protected = protected.min(document.rows);
            let pooled = document.rows - protected;
            let k = (pooled / pool_factor).max(1);
            if k >= pooled {
                return Ok(document.clone());
            }
            let rows = rows_from(document, protected);
            let labels = cluster(&rows, k, Distances::Cosine);
            let means = cluster_means(&rows, &labels, false);
            let mut data = document.data[..protected * document.cols].to_vec();
            data.extend_from_slice(&means.data);
            Ok(Matrix {
                rows: protected + means.rows,
                cols: document.cols,
                data,
            })
        }
        PoolingStyle::ColPali => {
            if pool_factor == 1 || document.rows < 2 {
                return Ok(document.clone());
            }
            let k = (document.rows / pool_factor).max(1);
            let labels = cluster(document, k, Distances::CosineRows);
            Ok(cluster_means(document, &labels, true))
        }
    }
}

/// [`pool`] over many documents, in parallel.
pub fn pool_all(
    documents: Vec<Matrix>,
    pool_factor: usize,
    style: PoolingStyle,
) -> Result<Vec<Matrix>> {
    documents
        .into_par_iter()
        .map(|document| pool(&document, pool_factor, style))
        .collect()
}

fn rows_from(matrix: &Matrix, first: usize) -> Matrix {
    Matrix {
        rows: matrix.rows - first,
        cols: matrix.cols,
        data: matrix.data[first * matrix.cols..].to_vec(),
    }
}

#[derive(Clone, Copy)]
enum Distances {
    /// `1 - cos` itself (PyLate >= 1.5).
    Cosine,
    /// Euclidean distances between the rows of the `1 - cos` matrix (colpali-engine).
    CosineRows,
}

/// 0-based flat-cluster labels of the rows, at most `k` clusters.
fn cluster(rows: &Matrix, k: usize, distances: Distances) -> Vec<usize> {
    let n = rows.rows;
    let cosine = cosine_distances(rows);
    let condensed = match distances {
        // PyLate would refuse the float32 rounding of identical rows (-1.2e-7) as a
        // negative distance; it is zero.
        Distances::Cosine => (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| f64::from(cosine[i * n + j]).max(0.0))
            .collect(),
        Distances::CosineRows => row_distances(&cosine, n),
    };
    let merges = ward_linkage(condensed, n);
    maxclust_labels(&merges, n, k)
}

/// `1 - E Eᵀ` in float32, as the references compute it before any float64 step.
fn cosine_distances(rows: &Matrix) -> Vec<f32> {
    let n = rows.rows;
    let mut out = vec![0f32; n * n];
    out.par_chunks_mut(n.max(1))
        .enumerate()
        .for_each(|(i, line)| {
            let a = rows.row(i);
            for (j, cell) in line.iter_mut().enumerate() {
                let dot: f32 = a.iter().zip(rows.row(j)).map(|(x, y)| x * y).sum();
                *cell = 1.0 - dot;
            }
        });
    out
}

/// SciPy `pdist(M, "euclidean")` of the rows of `M` (n × n), in float64: each pair's
/// squared differences summed column by column, then the square root.
fn row_distances(m: &[f32], n: usize) -> Vec<f64> {
    let per_row: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let a = &m[i * n..(i + 1) * n];
            (i + 1..n)
                .map(|j| {
                    let b = &m[j * n..(j + 1) * n];
                    let mut sum = 0f64;
                    for (&x, &y) in a.iter().zip(b) {
                        let d = (f64::from(x) - f64::from(y)).abs();
                        sum += d * d;
                    }
                    sum.sqrt()
                })
                .collect()
        })
        .collect();
    per_row.concat()
}

/// One merge of the linkage: the two node ids joined (leaves `< n`, merge `i` is node
/// `n + i`), its height and size.
#[derive(Debug, Clone, Copy)]
struct Merge {
    left: usize,
    right: usize,
    height: f64,
}

fn condensed_index(n: usize, i: usize, j: usize) -> usize {
    let (i, j) = if i < j { (i, j) } else { (j, i) };
    n * i - i * (i + 1) / 2 + (j - i - 1)
}

/// SciPy's `linkage(d, "ward")`: nearest-neighbour chain, then the merges sorted stably by
/// height and relabelled to node ids.
fn ward_linkage(mut d: Vec<f64>, n: usize) -> Vec<Merge> {
    let mut size = vec![1usize; n];
    let mut chain: Vec<usize> = Vec::with_capacity(n);
    let mut raw: Vec<Merge> = Vec::with_capacity(n.saturating_sub(1));
    for _ in 1..n {
        if chain.is_empty() {
            if let Some(first) = (0..n).find(|&i| size[i] > 0) {
                chain.push(first);
            }
        }
        let (mut x, mut y, mut nearest);
        loop {
            x = chain[chain.len() - 1];
            if chain.len() > 1 {
                y = chain[chain.len() - 2];
                nearest = d[condensed_index(n, x, y)];
            } else {
                y = x;
                nearest = f64::INFINITY;
            }
            for i in 0..n {
                if size[i] == 0 || i == x {
                    continue;
                }
                let distance = d[condensed_index(n, x, i)];
                // Strict: a tie keeps the chain's previous cluster, else the lowest index.
                if distance < nearest {
                    nearest = distance;
                    y = i;
                }
            }
            if chain.len() > 1 && y == chain[chain.len() - 2] {
                break;
            }
            chain.push(y);
        }
        chain.truncate(chain.len() - 2);
        let (x, y) = if x < y { (x, y) } else { (y, x) };
        let (nx, ny) = (size[x], size[y]);
        raw.push(Merge {
            left: x,
            right: y,
            height: nearest,
        });
        size[x] = 0;
        size[y] = nx + ny;
        for i in 0..n {
            let ni = size[i];
            if ni == 0 || i == y {
                continue;
            }
            let (dx, dy) = (d[condensed_index(n, i, x)], d[condensed_index(n, i, y)]);
            // Lance-Williams for Ward, in SciPy's order of operations.
            let t = 1.0 / (nx + ny + ni) as f64;
            let value = (ni + nx) as f64 * t * dx * dx + (ni + ny) as f64 * t * dy * dy
                - ni as f64 * t * nearest * nearest;
            d[condensed_index(n, i, y)] = value.sqrt();
        }
    }
    // Stable sort by height, then union-find to node ids (SciPy's `label`).
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by(|&a, &b| raw[a].height.total_cmp(&raw[b].height));
    let mut parent: Vec<usize> = (0..2 * n - 1).collect();
    let find = |parent: &mut Vec<usize>, mut a: usize| {
        let mut root = a;
        while parent[root] != root {
            root = parent[root];
        }
        while parent[a] != root {
            let next = parent[a];
            parent[a] = root;
            a = next;
        }
        root
    };
    order
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            let (a, b) = (
                find(&mut parent, raw[r].left),
                find(&mut parent, raw[r].right),
            );
            parent[a] = n + i;
            parent[b] = n + i;
            Merge {
                left: a.min(b),
                right: a.max(b),
                height: raw[r].height,
            }
        })
        .collect()
}

/// SciPy's `fcluster(Z, k, "maxclust")`, 0-based: the lowest cut leaving at most `k`
/// clusters, numbered by a depth-first walk from the root (inner children first).
fn maxclust_labels(merges: &[Merge], n: usize, k: usize) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    // Highest merge in each subtree (children always come earlier).
    let mut highest = vec![0f64; merges.len()];
    for (i, m) in merges.iter().enumerate() {
        let mut h = m.height;
        for child in [m.left, m.right] {
            if child >= n && highest[child - n] > h {
                h = highest[child - n];
            }
        }
        highest[i] = h;
    }
    let clusters_at = |threshold: f64| {
        let mut count = 0;
        let mut stack = vec![2 * n - 2];
        while let Some(node) = stack.pop() {
            let i = node - n;
            if highest[i] <= threshold {
                count += 1;
            } else {
                for child in [merges[i].left, merges[i].right] {
                    if child >= n {
                        stack.push(child);
                    } else {
                        count += 1;
                    }
                }
            }
            if count > k {
                break;
            }
        }
        count
    };
    let (mut lower, mut upper) = (-1isize, n as isize - 1);
    while upper - lower > 1 {
        let i = (lower + upper) >> 1;
        if clusters_at(highest[i as usize]) > k {
            lower = i;
        } else {
            upper = i;
        }
    }
    let cutoff = highest[upper as usize];

    let mut labels = vec![0usize; n];
    let mut visited = vec![false; 2 * n - 1];
    let mut stack = vec![2 * n - 2];
    let mut count = 0usize;
    let mut leader: Option<usize> = None;
    while let Some(&top) = stack.last() {
        let i = top - n;
        let Merge { left, right, .. } = merges[i];
        if leader.is_none() && highest[i] <= cutoff {
            leader = Some(i);
            count += 1;
        }
        if left >= n && !visited[left] {
            visited[left] = true;
            stack.push(left);
            continue;
        }
        if right >= n && !visited[right] {
            visited[right] = true;
            stack.push(right);
            continue;
        }
        for leaf in [left, right] {
            if leaf < n {
                if leader.is_none() {
                    count += 1;
                }
                labels[leaf] = count - 1;
            }
        }
        if leader == Some(i) {
            leader = None;
        }
        stack.pop();
    }
    labels
}

/// One row per cluster in label order: the float32 mean of its rows summed in row order
/// (L2-normalised when `normalise`).
fn cluster_means(rows: &Matrix, labels: &[usize], normalise: bool) -> Matrix {
    let clusters = labels.iter().max().map_or(0, |&m| m + 1);
    let cols = rows.cols;
    let mut sums = vec![0f32; clusters * cols];
    let mut counts = vec![0usize; clusters];
    for (row, &label) in labels.iter().enumerate() {
        counts[label] += 1;
        let sum = &mut sums[label * cols..(label + 1) * cols];
        for (s, v) in sum.iter_mut().zip(rows.row(row)) {
            *s += v;
        }
    }
    let mut data = Vec::with_capacity(clusters * cols);
    for (label, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let mean: Vec<f32> = sums[label * cols..(label + 1) * cols]
            .iter()
            .map(|s| s / count as f32)
            .collect();
        if normalise {
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            data.extend(mean.iter().map(|v| v / norm));
        } else {
            data.extend(mean);
        }
    }
    Matrix {
        rows: data.len() / cols.max(1),
        cols,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[&[f32]]) -> Matrix {
        Matrix {
            rows: rows.len(),
            cols: rows[0].len(),
            data: rows.concat(),
        }
    }

    #[test]
    fn identical_rows_share_a_cluster_and_means_are_exact() {
        let doc = matrix(&[
            &[1.0, 0.0],
            &[0.0, 1.0],
            &[0.0, 1.0],
            &[1.0, 0.0],
            &[0.6, 0.8],
        ]);
        // Four rows after the protected one, two clusters. The equal rows merge first (at 0);
        // (0.6, 0.8) is then nearer to them (Ward 0.23) than to e1 (cosine distance 0.4).
        let pooled = pool(&doc, 2, PoolingStyle::PyLate { protected: 1 }).unwrap();
        assert_eq!(pooled.rows, 3);
        assert_eq!(pooled.row(0), &[1.0, 0.0]);
        let mut rest = [pooled.row(1).to_vec(), pooled.row(2).to_vec()];
        rest.sort_by(|a, b| a[0].total_cmp(&b[0]));
        assert_eq!(rest[0], vec![0.6 / 3.0, (1.0f32 + 1.0 + 0.8) / 3.0]);
        assert_eq!(rest[1], vec![1.0, 0.0]);
    }

    #[test]
    fn pool_factor_one_and_short_documents_are_left_alone() {
        let doc = matrix(&[&[1.0, 0.0], &[0.0, 1.0], &[0.6, 0.8]]);
        for style in [PoolingStyle::PyLate { protected: 1 }, PoolingStyle::ColPali] {
            assert_eq!(pool(&doc, 1, style).unwrap(), doc);
        }
        // One row to pool cannot be reduced.
        let two = matrix(&[&[1.0, 0.0], &[0.0, 1.0]]);
        assert_eq!(
            pool(&two, 4, PoolingStyle::PyLate { protected: 1 }).unwrap(),
            two
        );
        assert!(pool(&doc, 0, PoolingStyle::ColPali).is_err());
    }

    #[test]
    fn colpali_means_are_unit_vectors() {
        let doc = matrix(&[&[1.0, 0.0], &[0.8, 0.6], &[0.0, 1.0], &[0.1, 0.99]]);
        let pooled = pool(&doc, 2, PoolingStyle::ColPali).unwrap();
        assert_eq!(pooled.rows, 2);
        for row in pooled.iter_rows() {
            let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-6);
        }
    }
}
