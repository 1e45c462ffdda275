//! The masker and the line framer alone, in memory: the work the engine does on every
//! byte a task prints, with 0, 1 and 20 secrets. Printed as GiB/s of output and as a
//! ratio against a baseline measured in the same run (copying the same bytes and
//! finding their line ends, the least any framer does).
//!
//! ```text
//! cargo run --release -p gofer-benches --bin mask_frame -- [MiB]
//! ```
//!
//! The output is 100-byte lines of text (default 256 MiB), pushed in 32 KiB reads
//! (the size of the engine's attached frames). Each secret is 24 to 43 random bytes
//! and yields up to 7 patterns (the value and six base64 cores). Goal: at least 1 GiB/s
//! with 20 secrets on one core.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use gofer_core::secrecy::SecretString;
use gofer_core::OutputStream;
use gofer_engine::{LineFramer, LogLine, MaskPatterns, Masker};

const READ: usize = 32 * 1024;
const GOAL_GIB_S: f64 = 1.0;

fn output(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 100);
    let mut i = 0u64;
    while out.len() < bytes {
        let line = format!("{i:>10} compiling crate number {i} of the workspace, step ok; ");
        let mut line = line.into_bytes();
        line.resize(99, b'.');
        line.push(b'\n');
        out.extend_from_slice(&line);
        i += 1;
    }
    out.truncate(bytes);
    out
}

/// `n` secrets of 24 to 43 random letters, digits and `-_+/` (tokens and passwords
/// look like that), from a fixed seed.
fn secrets(n: usize) -> Vec<SecretString> {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/";
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let len = 24 + i % 20;
            let value: String = (0..len)
                .map(|_| char::from(CHARS[(next() % CHARS.len() as u64) as usize]))
                .collect();
            SecretString::from(value)
        })
        .collect()
}

/// Masks and frames `data` in reads of [`READ`]; returns the time and the lines made.
fn mask_and_frame(patterns: &MaskPatterns, data: &[u8]) -> (Duration, usize) {
    let mut masker = Masker::new(patterns.clone());
    let mut framer = LineFramer::new(OutputStream::Stdout);
    let mut masked = Vec::with_capacity(2 * READ);
    let mut lines: Vec<LogLine> = Vec::new();
    let mut count = 0;
    let now = SystemTime::now();
    let began = Instant::now();
    for read in data.chunks(READ) {
        masked.clear();
        masker.push(read, &mut masked);
        framer.push(&masked, now, &mut lines);
        count += lines.len();
        lines.clear();
    }
    masked.clear();
    masker.finish(&mut masked);
    framer.push(&masked, now, &mut lines);
    framer.finish(now, &mut lines);
    count += lines.len();
    (began.elapsed(), count)
}

/// The baseline: copy each read and find its line ends.
fn copy_and_split(data: &[u8]) -> (Duration, usize) {
    let mut buf = Vec::with_capacity(READ);
    let mut count = 0;
    let began = Instant::now();
    for read in data.chunks(READ) {
        buf.clear();
        buf.extend_from_slice(read);
        count += memchr::memchr_iter(b'\n', &buf).count();
        std::hint::black_box(&buf);
    }
    (began.elapsed(), count)
}

fn gib_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1u64 << 30) as f64 / d.as_secs_f64().max(1e-9)
}

fn main() -> anyhow::Result<()> {
    let mib: usize = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .context("the argument is the output size in MiB")?,
        None => 256,
    };
    let data = output(mib << 20);
    let ends = memchr::memchr_iter(b'\n', &data).count();
    let want_lines = ends + usize::from(data.last().is_some_and(|b| *b != b'\n'));
    println!(
        "mask_frame: {mib} MiB of 100-byte lines in {} KiB reads, best of 3; ratio = time / baseline time",
        READ / 1024
    );
    let (base, n) = (0..3)
        .map(|_| copy_and_split(&data))
        .min()
        .context("no round")?;
    anyhow::ensure!(n == ends, "the baseline counted {n} line ends");
    println!(
        "{:<28} {:>8.2} GiB/s   ratio 1.00",
        "baseline (copy + split)",
        gib_s(data.len(), base)
    );
    let mut missed = 0;
    for n in [0, 1, 20] {
        let patterns = MaskPatterns::new(secrets(n).iter());
        let (took, lines) = (0..3)
            .map(|_| mask_and_frame(&patterns, &data))
            .min()
            .context("no round")?;
        anyhow::ensure!(
            lines == want_lines,
            "{n} secrets: {lines} lines framed, {want_lines} expected"
        );
        let speed = gib_s(data.len(), took);
        let verdict = if n == 20 {
            if speed >= GOAL_GIB_S {
                format!("goal >= {GOAL_GIB_S} GiB/s ok")
            } else {
                missed += 1;
                format!("goal >= {GOAL_GIB_S} GiB/s MISS")
            }
        } else {
            String::new()
        };
        println!(
            "{:<28} {:>8.2} GiB/s   ratio {:.2}  {verdict}",
            format!("mask + frame, {n} secrets"),
            speed,
            took.as_secs_f64() / base.as_secs_f64()
        );
    }
    if missed > 0 {
        println!("{missed} goal(s) missed");
    }
    Ok(())
}
