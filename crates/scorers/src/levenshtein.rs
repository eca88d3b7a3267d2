//! Levenshtein distance over Unicode code points, as
//! `rapidfuzz.distance.Levenshtein.distance` and `.normalized_similarity` with unit
//! weights.

/// Minimum number of single code point insertions, deletions and substitutions.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (a, b) = trim(&a, &b);
    // The rest is the O(n·m) table, one row at a time.
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

/// The code points of `a` and `b` left to compare once their common prefix and
/// suffix are dropped: those never change the distance, and dropping them makes
/// near-identical texts cheap.
fn trim<'a>(a: &'a [char], b: &'a [char]) -> (&'a [char], &'a [char]) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (&a[..a.len() - suffix], &b[..b.len() - suffix])
}

/// The size of the table [`distance`] fills for `a` and `b`: how many code points of
/// each are left once their common prefix and suffix are dropped.
pub fn table_size(a: &str, b: &str) -> (u64, u64) {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (a, b) = trim(&a, &b);
    (a.len() as u64, b.len() as u64)
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

    #[test]
    fn table_size_skips_common_ends() {
        assert_eq!(table_size("kitten", "sitting"), (6, 7));
        assert_eq!(table_size("kitten", "mitten"), (1, 1));
        assert_eq!(table_size("abcXdef", "abcYZdef"), (1, 2));
        assert_eq!(table_size("same", "same"), (0, 0));
        assert_eq!(table_size("", "abc"), (0, 3));
        assert_eq!(table_size("aaa", "aa"), (1, 0));
    }
}
