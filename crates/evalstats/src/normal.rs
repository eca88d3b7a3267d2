//! The standard normal quantile function (inverse CDF).
//!
//! Wichura's algorithm AS 241 (`PPND16`, Applied Statistics 37, 1988), the same
//! rational approximations R's `qnorm` uses; relative error about 1e-16, which is
//! what SciPy's `ndtri` (and so `scipy.stats.norm.ppf`/`isf`) achieves too.

use crate::error::StatsError;

/// The `p`-quantile of the standard normal distribution: `x` with `Φ(x) = p`.
/// Returns `-inf`/`+inf` at 0/1 and NaN outside `[0, 1]`.
#[allow(clippy::excessive_precision, clippy::unreadable_literal)]
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q
            * (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r
                + 67265.770927008700853)
                * r
                + 45921.953931549871457)
                * r
                + 13731.693765509461125)
                * r
                + 1971.5909503065514427)
                * r
                + 133.14166789178437745)
                * r
                + 3.387132872796366608)
            / (((((((r * 5226.495278852545925 + 28729.085735721942674) * r
                + 39307.89580009271061)
                * r
                + 21213.794301586595867)
                * r
                + 5394.1960214247511077)
                * r
                + 687.1870074920579083)
                * r
                + 42.313330701600911252)
                * r
                + 1.0);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let mut r = (-tail.ln()).sqrt();
    let val = if r <= 5.0 {
        r -= 1.6;
        (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r
            + 0.24178072517745061177)
            * r
            + 1.27045825245236838258)
            * r
            + 3.64784832476320460504)
            * r
            + 5.7694972214606914055)
            * r
            + 4.6303378461565452959)
            * r
            + 1.42343711074968357734)
            / (((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r
                + 0.0151986665636164571966)
                * r
                + 0.14810397642748007459)
                * r
                + 0.68976733498510000455)
                * r
                + 1.6763848301838038494)
                * r
                + 2.05319162663775882187)
                * r
                + 1.0)
    } else {
        r -= 5.0;
        (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r
            + 0.0012426609473880784386)
            * r
            + 0.026532189526576123093)
            * r
            + 0.29656057182850489123)
            * r
            + 1.7848265399172913358)
            * r
            + 5.4637849111641143699)
            * r
            + 6.6579046435011037772)
            / (((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r
                + 1.8463183175100546818e-5)
                * r
                + 7.868691311456132591e-4)
                * r
                + 0.0148753612908506148525)
                * r
                + 0.13692988092273580531)
                * r
                + 0.59983220655588793769)
                * r
                + 1.0)
    };
    if q < 0.0 {
        -val
    } else {
        val
    }
}

/// The two-sided critical value `z` for a confidence level, e.g. 1.959963984540054
/// for 0.95: `normal_quantile(1 - (1 - confidence) / 2)`, computed as SciPy's
/// `norm.isf(alpha / 2)` does.
pub fn two_sided_z(confidence: f64) -> Result<f64, StatsError> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::InvalidConfidence(confidence));
    }
    let alpha = 1.0 - confidence;
    // isf(a) = -ppf(a): evaluates the lower tail, where `a` is exact.
    Ok(-normal_quantile(alpha / 2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_quantiles() {
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-15);
        assert_eq!(normal_quantile(0.5), 0.0);
        assert!((normal_quantile(0.841_344_746_068_542_9) - 1.0).abs() < 1e-14);
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        assert!(normal_quantile(-0.1).is_nan());
        assert!(normal_quantile(1.1).is_nan());
        assert!(normal_quantile(f64::NAN).is_nan());
    }

    #[test]
    fn two_sided_z_takes_a_confidence_level() {
        assert_eq!(two_sided_z(0.95), Ok(-normal_quantile((1.0 - 0.95) / 2.0)));
        assert!((two_sided_z(0.99).unwrap_or(0.0) - 2.575_829_303_548_901).abs() < 1e-14);
        for bad in [0.0, 1.0, -0.5, 95.0, f64::NAN] {
            assert!(matches!(
                two_sided_z(bad),
                Err(StatsError::InvalidConfidence(_))
            ));
        }
    }
}
