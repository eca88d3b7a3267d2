//! Floating-point building blocks that follow numpy's order of operations, so that
//! results match the reference implementations bit for bit where that matters.

/// numpy's pairwise summation (`pairwise_sum_DOUBLE`): blocks of up to 128 values
/// summed with eight accumulators, larger slices split in two at a multiple of 8.
/// `np.sum` and `np.mean` of a contiguous float64 array use exactly this.
pub(crate) fn pairwise_sum(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 8 {
        x.iter().fold(0.0, |acc, v| acc + v)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&x[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += x[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &x[whole..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&x[..n2]) + pairwise_sum(&x[n2..])
    }
}

/// The `q`-quantile (`q` in [0, 1]) of ascending-sorted, non-empty `sorted` by linear
/// interpolation, numpy's default `method="linear"` (Hyndman–Fan type 7), with
/// numpy's `_lerp` rounding.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let virtual_index = (n - 1) as f64 * q;
    let lo = virtual_index.floor();
    let t = virtual_index - lo;
    // `lo` is in [0, n - 1] because q is in [0, 1].
    let lo = lo as usize;
    let hi = (lo + 1).min(n - 1);
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_of_integers_is_exact() {
        for n in [0usize, 1, 7, 8, 9, 127, 128, 129, 1000, 4099] {
            let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
            assert_eq!(
                pairwise_sum(&x),
                (n * n.saturating_sub(1) / 2) as f64,
                "n={n}"
            );
        }
    }

    #[test]
    fn linear_quantiles_like_numpy() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&x, 0.0), 1.0);
        assert_eq!(quantile_sorted(&x, 1.0), 4.0);
        assert_eq!(quantile_sorted(&x, 0.5), 2.5);
        assert_eq!(quantile_sorted(&x, 0.25), 1.75);
        assert_eq!(quantile_sorted(&[5.0], 0.3), 5.0);
    }
}
