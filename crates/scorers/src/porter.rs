//! The Porter stemmer exactly as NLTK's `PorterStemmer()` in its default
//! `NLTK_EXTENSIONS` mode, which is what `rouge-score` uses. Works on the ASCII
//! `[a-z0-9]` tokens rouge-score produces; other bytes are treated as consonants,
//! as NLTK does.

/// NLTK's irregular forms: whole words mapped straight to their stem.
const POOL: &[(&str, &str)] = &[
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

/// Stem one lowercase word (NLTK `PorterStemmer().stem(word)`).
pub fn stem(word: &str) -> String {
    let lowered = word.to_lowercase();
    if let Some((_, s)) = POOL.iter().find(|(w, _)| *w == lowered) {
        return (*s).to_string();
    }
    // NLTK compares the length of the word as given, in code points.
    if word.chars().count() <= 2 {
        return lowered;
    }
    let mut w: Vec<char> = lowered.chars().collect();
    w = step1a(w);
    w = step1b(w);
    w = step1c(w);
    w = step2(w);
    w = step3(w);
    w = step4(w);
    w = step5a(w);
    w = step5b(w);
    w.into_iter().collect()
}

type Word = Vec<char>;

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

// A 'y' is a consonant iff it starts the word or follows a vowel.
fn consonant_flags(w: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for (i, &c) in w.iter().enumerate() {
        let f = if is_vowel(c) {
            false
        } else if c == 'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(f);
    }
    flags
}

fn is_consonant(w: &[char], i: usize) -> bool {
    consonant_flags(&w[..=i])[i]
}

fn measure(w: &[char]) -> usize {
    consonant_flags(w)
        .windows(2)
        .filter(|p| !p[0] && p[1])
        .count()
}

fn contains_vowel(w: &[char]) -> bool {
    consonant_flags(w).iter().any(|c| !c)
}

fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

fn ends_cvc(w: &[char]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

fn ends_with(w: &[char], suffix: &str) -> bool {
    let s: Vec<char> = suffix.chars().collect();
    w.ends_with(&s)
}

fn strip(w: &[char], suffix: &str) -> Word {
    w[..w.len() - suffix.chars().count()].to_vec()
}

fn with(mut stem: Word, replacement: &str) -> Word {
    stem.extend(replacement.chars());
    stem
}

/// A suffix rule's condition, given the stem left after removing the suffix.
type Cond<'a> = &'a dyn Fn(&[char]) -> bool;

/// NLTK `_apply_rule_list`: the first rule whose suffix matches decides, whether or
/// not its condition holds.
fn apply_rules(w: Word, rules: &[(&str, &str, Option<Cond<'_>>)]) -> Word {
    for (suffix, replacement, cond) in rules {
        if ends_with(&w, suffix) {
            let stem = strip(&w, suffix);
            return if cond.is_none_or(|c| c(&stem)) {
                with(stem, replacement)
            } else {
                w
            };
        }
    }
    w
}

fn positive_measure(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn step1a(w: Word) -> Word {
    if ends_with(&w, "ies") && w.len() == 4 {
        return with(strip(&w, "ies"), "ie");
    }
    apply_rules(
        w,
        &[
            ("sses", "ss", None),
            ("ies", "i", None),
            ("ss", "ss", None),
            ("s", "", None),
        ],
    )
}

fn step1b(w: Word) -> Word {
    if ends_with(&w, "ied") {
        let r = if w.len() == 4 { "ie" } else { "i" };
        return with(strip(&w, "ied"), r);
    }
    if ends_with(&w, "eed") {
        let stem = strip(&w, "eed");
        return if measure(&stem) > 0 {
            with(stem, "ee")
        } else {
            w
        };
    }
    let mut intermediate = None;
    for suffix in ["ed", "ing"] {
        if ends_with(&w, suffix) {
            let stem = strip(&w, suffix);
            if contains_vowel(&stem) {
                intermediate = Some(stem);
                break;
            }
        }
    }
    let Some(stem) = intermediate else {
        return w;
    };
    for (suffix, replacement) in [("at", "ate"), ("bl", "ble"), ("iz", "ize")] {
        if ends_with(&stem, suffix) {
            return with(strip(&stem, suffix), replacement);
        }
    }
    if ends_double_consonant(&stem) {
        let last = stem[stem.len() - 1];
        return if matches!(last, 'l' | 's' | 'z') {
            stem
        } else {
            stem[..stem.len() - 1].to_vec()
        };
    }
    if measure(&stem) == 1 && ends_cvc(&stem) {
        with(stem, "e")
    } else {
        stem
    }
}

fn step1c(w: Word) -> Word {
    let cond = |stem: &[char]| stem.len() > 1 && is_consonant(stem, stem.len() - 1);
    apply_rules(w, &[("y", "i", Some(&cond))])
}

fn step2(w: Word) -> Word {
    if ends_with(&w, "alli") && positive_measure(&strip(&w, "alli")) {
        return step2(with(strip(&w, "alli"), "al"));
    }
    let pm: Cond<'_> = &positive_measure;
    // NLTK's "logi" rule measures the word minus three letters (the stem plus 'l').
    let whole = w.clone();
    let logi = move |_: &[char]| positive_measure(&whole[..whole.len() - 3]);
    let rules: [(&str, &str, Option<Cond<'_>>); 22] = [
        ("ational", "ate", Some(pm)),
        ("tional", "tion", Some(pm)),
        ("enci", "ence", Some(pm)),
        ("anci", "ance", Some(pm)),
        ("izer", "ize", Some(pm)),
        ("bli", "ble", Some(pm)),
        ("alli", "al", Some(pm)),
        ("entli", "ent", Some(pm)),
        ("eli", "e", Some(pm)),
        ("ousli", "ous", Some(pm)),
        ("ization", "ize", Some(pm)),
        ("ation", "ate", Some(pm)),
        ("ator", "ate", Some(pm)),
        ("alism", "al", Some(pm)),
        ("iveness", "ive", Some(pm)),
        ("fulness", "ful", Some(pm)),
        ("ousness", "ous", Some(pm)),
        ("aliti", "al", Some(pm)),
        ("iviti", "ive", Some(pm)),
        ("biliti", "ble", Some(pm)),
        ("fulli", "ful", Some(pm)),
        ("logi", "log", Some(&logi)),
    ];
    apply_rules(w, &rules)
}

fn step3(w: Word) -> Word {
    let pm: Cond<'_> = &positive_measure;
    apply_rules(
        w,
        &[
            ("icate", "ic", Some(pm)),
            ("ative", "", Some(pm)),
            ("alize", "al", Some(pm)),
            ("iciti", "ic", Some(pm)),
            ("ical", "ic", Some(pm)),
            ("ful", "", Some(pm)),
            ("ness", "", Some(pm)),
        ],
    )
}

fn step4(w: Word) -> Word {
    let gt1 = |stem: &[char]| measure(stem) > 1;
    let ion = |stem: &[char]| measure(stem) > 1 && matches!(stem.last(), Some('s' | 't'));
    let g: Cond<'_> = &gt1;
    apply_rules(
        w,
        &[
            ("al", "", Some(g)),
            ("ance", "", Some(g)),
            ("ence", "", Some(g)),
            ("er", "", Some(g)),
            ("ic", "", Some(g)),
            ("able", "", Some(g)),
            ("ible", "", Some(g)),
            ("ant", "", Some(g)),
            ("ement", "", Some(g)),
            ("ment", "", Some(g)),
            ("ent", "", Some(g)),
            ("ion", "", Some(&ion)),
            ("ou", "", Some(g)),
            ("ism", "", Some(g)),
            ("ate", "", Some(g)),
            ("iti", "", Some(g)),
            ("ous", "", Some(g)),
            ("ive", "", Some(g)),
            ("ize", "", Some(g)),
        ],
    )
}

fn step5a(w: Word) -> Word {
    if ends_with(&w, "e") {
        let stem = strip(&w, "e");
        let m = measure(&stem);
        if m > 1 || (m == 1 && !ends_cvc(&stem)) {
            return stem;
        }
    }
    w
}

fn step5b(w: Word) -> Word {
    // NLTK measures the word minus its last letter, i.e. the stem plus one 'l'.
    if ends_with(&w, "ll") && measure(&w[..w.len() - 1]) > 1 {
        return w[..w.len() - 1].to_vec();
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_examples() {
        for (w, s) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("cats", "cat"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("relational", "relat"),
            ("generalization", "gener"),
            ("running", "run"),
            ("skies", "sky"),
            ("controlling", "control"),
        ] {
            assert_eq!(stem(w), s, "{w}");
        }
    }
}
