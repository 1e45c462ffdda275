//! A streaming secret masker: replaces secret values in a byte stream with
//! [`MASK`](crate::MASK), even when a value is split across reads.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::variable::MASK;

/// Secrets shorter than this many bytes are not masked (masking `"a"` would destroy
/// the output without protecting anything).
pub const MIN_MASK_LEN: usize = 4;

/// The byte patterns derived from a set of secret values.
///
/// For each secret value of at least [`MIN_MASK_LEN`] bytes it holds: the value; each
/// line of a multi-line value (of at least [`MIN_MASK_LEN`] bytes, without `\r`); and
/// the stable core of the value's base64 encoding (standard and URL-safe alphabets) at
/// each of the three alignments the value can have inside a longer encoded text.
#[derive(Clone, Default)]
pub struct MaskPatterns {
    patterns: Arc<[Box<[u8]>]>,
    longest: usize,
    /// Some pattern holds a line end (so a match may span lines).
    multiline: bool,
}

impl std::fmt::Debug for MaskPatterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskPatterns")
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

impl MaskPatterns {
    /// Patterns for the given secret values.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Self {
        Self::from_values(secrets.into_iter().map(|s| s.expose_secret().as_bytes()))
    }

    fn from_values<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut out: Vec<Box<[u8]>> = Vec::new();
        for value in values {
            if value.len() < MIN_MASK_LEN {
                continue;
            }
            out.push(value.into());
            if value.contains(&b'\n') {
                for line in value.split(|b| *b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.len() >= MIN_MASK_LEN {
                        out.push(line.into());
                    }
                }
            }
            for alphabet in [STANDARD, URL_SAFE] {
                for shift in 0..3 {
                    let core = base64_core(value, shift, alphabet);
                    if core.len() >= MIN_MASK_LEN {
                        out.push(core.into());
                    }
                }
            }
        }
        // Longest first, so that at one position the longest pattern wins.
        out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        out.dedup();
        let longest = out.first().map_or(0, |p| p.len());
        let multiline = out.iter().any(|p| p.contains(&b'\n'));
        Self {
            patterns: out.into(),
            longest,
            multiline,
        }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Earliest match at or after `from`: (start, length). Longest pattern wins a tie.
    fn find(&self, hay: &[u8], from: usize) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for p in self.patterns.iter() {
            let limit = best.map_or(hay.len(), |(at, _)| (at + p.len()).min(hay.len()));
            if limit < from + p.len() {
                continue;
            }
            if let Some(at) = find_bytes(&hay[from..limit], p) {
                let at = from + at;
                // Patterns are sorted longest first, so only a strictly earlier start wins.
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, p.len()));
                }
            }
        }
        best
    }
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|b| *b == first)
        {
            None => return None,
            Some(off) => {
                let at = i + off;
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 (no padding) of `data`.
pub(crate) fn base64_encode(data: &[u8], alphabet: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize]);
        }
    }
    out
}

/// The base64 characters that depend only on `value` when it sits `shift` bytes after
/// a 3-byte boundary of the encoded data: character `i` covers bits `6i..6i+6` of the
/// data, so it is stable when those bits all lie inside the value.
fn base64_core(value: &[u8], shift: usize, alphabet: &[u8; 64]) -> Vec<u8> {
    let mut data = vec![0u8; shift];
    data.extend_from_slice(value);
    let encoded = base64_encode(&data, alphabet);
    let start = (8 * shift).div_ceil(6);
    let end = (8 * (shift + value.len())) / 6;
    encoded
        .get(start..end)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// Masks one output stream, keeping back just enough bytes to catch a secret that is
/// split across reads.
///
/// Feed it with [`Masker::push`]; call [`Masker::finish`] at the end of the stream.
#[derive(Debug, Clone)]
pub struct Masker {
    patterns: MaskPatterns,
    pending: Vec<u8>,
}

impl Masker {
    /// A masker for these patterns.
    pub fn new(patterns: MaskPatterns) -> Self {
        Self {
            patterns,
            pending: Vec::new(),
        }
    }

    /// Adds bytes and appends to `out` everything that can no longer be part of a
    /// secret.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.patterns.is_empty() {
            out.extend_from_slice(data);
            return;
        }
        self.pending.extend_from_slice(data);
        // A match starting before `safe` fits entirely in the buffer.
        let mut safe = self
            .pending
            .len()
            .saturating_sub(self.patterns.longest.saturating_sub(1));
        if !self.patterns.multiline {
            // No match spans a line end, so whole lines need not wait for more bytes.
            if let Some(nl) = self.pending.iter().rposition(|b| *b == b'\n') {
                safe = safe.max(nl + 1);
            }
        }
        let consumed = self.emit(safe, out);
        self.pending.drain(..consumed);
    }

    /// Ends the stream: masks and appends what was kept back.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let len = self.pending.len();
        let consumed = self.emit(len, out);
        self.pending.drain(..consumed);
        out.append(&mut self.pending);
    }

    /// Emits bytes up to `safe` (or past it, to the end of a match that starts before
    /// it); returns how many bytes of `pending` were consumed.
    fn emit(&self, safe: usize, out: &mut Vec<u8>) -> usize {
        let mut i = 0;
        while i < safe {
            match self.patterns.find(&self.pending, i) {
                Some((at, len)) if at < safe => {
                    out.extend_from_slice(&self.pending[i..at]);
                    out.extend_from_slice(MASK.as_bytes());
                    i = at + len;
                }
                _ => {
                    out.extend_from_slice(&self.pending[i..safe]);
                    i = safe;
                }
            }
        }
        i
    }
}

/// Masks a whole text at once (for messages and details).
pub fn mask_str(patterns: &MaskPatterns, text: &str) -> String {
    let mut m = Masker::new(patterns.clone());
    let mut out = Vec::with_capacity(text.len());
    m.push(text.as_bytes(), &mut out);
    m.finish(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn patterns(values: &[&str]) -> MaskPatterns {
        MaskPatterns::from_values(values.iter().map(|v| v.as_bytes()))
    }

    fn run(p: &MaskPatterns, chunks: &[&[u8]]) -> String {
        let mut m = Masker::new(p.clone());
        let mut out = Vec::new();
        for c in chunks {
            m.push(c, &mut out);
        }
        m.finish(&mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b"foobar", STANDARD), b"Zm9vYmFy");
        assert_eq!(base64_encode(b"fooba", STANDARD), b"Zm9vYmE");
        assert_eq!(base64_encode(b"\xfb\xff", URL_SAFE), b"-_8");
    }

    #[test]
    fn masks_value_split_across_chunks() {
        let p = patterns(&["hunter22"]);
        assert_eq!(
            run(&p, &[b"pw=hun", b"ter", b"22 ok\n"]),
            "pw=[MASKED] ok\n"
        );
    }

    #[test]
    fn masks_each_line_of_a_multiline_value() {
        let p = patterns(&["line-one\r\nline-two\nab"]);
        let out = run(&p, &[b"x line-two y line-one\n"]);
        assert_eq!(out, "x [MASKED] y [MASKED]\n");
    }

    #[test]
    fn masks_base64_at_every_alignment() {
        let secret = "s3cr3t-value!";
        let p = patterns(&[secret]);
        for prefix in ["", "a", "ab", "abc"] {
            let text = format!("{prefix}{secret}tail");
            for alphabet in [STANDARD, URL_SAFE] {
                let enc = String::from_utf8(base64_encode(text.as_bytes(), alphabet)).expect("b64");
                let out = run(&p, &[enc.as_bytes()]);
                assert!(out.contains(MASK), "{prefix:?}: {enc} -> {out}");
                let core = base64_core(secret.as_bytes(), prefix.len() % 3, alphabet);
                assert!(!out.contains(std::str::from_utf8(&core).expect("ascii")));
            }
        }
    }

    #[test]
    fn whole_lines_are_not_held_back() {
        let p = patterns(&["a-long-secret-value"]);
        let mut m = Masker::new(p);
        let mut out = Vec::new();
        m.push(b"line one\nline two\n", &mut out);
        assert_eq!(out, b"line one\nline two\n");
        m.push(b"tail a-long", &mut out);
        m.push(b"-secret-value\n", &mut out);
        assert_eq!(out, b"line one\nline two\ntail [MASKED]\n");
        // A multi-line secret may span lines, so its masker keeps bytes back.
        let mut m = Masker::new(patterns(&["one\ntwo-three"]));
        let mut out = Vec::new();
        m.push(b"x\n", &mut out);
        assert!(out.is_empty());
        m.finish(&mut out);
        assert_eq!(out, b"x\n");
    }

    #[test]
    fn short_secrets_and_empty_patterns_pass_through() {
        let p = patterns(&["abc"]);
        assert!(p.is_empty());
        assert_eq!(run(&p, &[b"abc abc"]), "abc abc");
    }

    /// Noise with copies of the secrets: each part's noise, then the secret it names.
    fn interleave(parts: &[(String, usize)], secrets: &[String]) -> Vec<u8> {
        let mut text = Vec::new();
        for (noise, which) in parts {
            text.extend_from_slice(noise.as_bytes());
            if let Some(s) = secrets.get(*which) {
                text.extend_from_slice(s.as_bytes());
            }
        }
        text
    }

    /// `text` cut at the given points (taken modulo its length + 1).
    fn cut<'a>(text: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::with_capacity(points.len() + 1);
        let mut prev = 0;
        for c in points {
            chunks.push(&text[prev..c]);
            prev = c;
        }
        chunks.push(&text[prev..]);
        chunks
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn no_secret_survives_any_chunking(
            secrets in proptest::collection::vec("[ab\n]{4,9}", 1..4),
            parts in proptest::collection::vec(("[ab\nx]{0,12}", 0usize..4), 0..12),
            cuts in proptest::collection::vec(0usize..64, 0..10),
        ) {
            let text = interleave(&parts, &secrets);
            let chunks = cut(&text, &cuts);
            let p = MaskPatterns::from_values(secrets.iter().map(|s| s.as_bytes()));
            let out = run(&p, &chunks);
            for s in &secrets {
                prop_assert!(!out.contains(s.as_str()), "{s:?} survived in {out:?}");
                for line in s.split('\n').filter(|l| l.len() >= MIN_MASK_LEN) {
                    prop_assert!(!out.contains(line), "line {line:?} survived in {out:?}");
                }
            }
            // Chunking never changes the result.
            prop_assert_eq!(out, run(&p, &[&text]));
        }

        #[test]
        fn single_line_secrets_survive_no_chunking_of_multiline_output(
            secrets in proptest::collection::vec("[ab]{4,9}", 1..4),
            parts in proptest::collection::vec(("[ab\n]{0,12}", 0usize..4), 0..12),
            cuts in proptest::collection::vec(0usize..64, 0..10),
        ) {
            let text = interleave(&parts, &secrets);
            let chunks = cut(&text, &cuts);
            let p = MaskPatterns::from_values(secrets.iter().map(|s| s.as_bytes()));
            let out = run(&p, &chunks);
            for s in &secrets {
                prop_assert!(!out.contains(s.as_str()), "{s:?} survived in {out:?}");
            }
            prop_assert_eq!(out, run(&p, &[&text]));
        }
    }
}
