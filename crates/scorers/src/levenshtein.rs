//! Levenshtein distance over Unicode code points, as
//! `rapidfuzz.distance.Levenshtein.distance` and `.normalized_similarity` with unit
//! weights.

/// Minimum number of single code point insertions, deletions and substitutions.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // A common prefix and suffix never change the distance; dropping them makes
    // near-identical texts cheap. The rest is the O(n·m) table, one row at a time.
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let mut row: Vec<usize> = (0..=short.len()).collect();
    for (i, lc) in long.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, sc) in short.iter().enumerate() {
            let above = row[j + 1];
            let cost = usize::from(lc != sc);
            row[j + 1] = (diag + cost).min(above + 1).min(row[j] + 1);
            diag = above;
        }
    }
    row[short.len()]
}

/// `1 - distance / max(len(a), len(b))`, and 1 when both are empty.
pub fn normalized_similarity(a: &str, b: &str) -> f64 {
    let maximum = a.chars().count().max(b.chars().count());
    let dist = distance(a, b);
    let norm_dist = if maximum == 0 {
        0.0
    } else {
        dist as f64 / maximum as f64
    };
    1.0 - norm_dist
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("日本語", "日本"), 1);
        assert_eq!(normalized_similarity("", ""), 1.0);
        assert!(
            (normalized_similarity("lewenstein", "levenshtein") - 0.818_181_818_181_818_1).abs()
                < 1e-12
        );
    }
}
