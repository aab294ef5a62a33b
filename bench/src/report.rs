//! The benchmark's report: a table for people and JSON for machines.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use crate::Options;
use crate::load::{Outcome, quantile_ms};
use crate::target::Usage;

pub struct Run {
    pub name: String,
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub per_second: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub peak_rss_mb: Option<f64>,
    pub correct: bool,
    pub note: String,
}

impl Run {
    pub fn new(
        name: String,
        outcome: &Outcome,
        usage: Option<Usage>,
        correct: bool,
        note: String,
    ) -> Self {
        let lat = &outcome.latencies_us;
        let mut note = note;
        let peak_rss_mb = usage.as_ref().and_then(|u| u.peak_rss_mb);
        if let Some(usage) = &usage
            && outcome.ok > 0
        {
            let per_request = |secs: f64| secs * 1_000_000.0 / outcome.ok as f64;
            note.push_str(&format!(
                "{}CPU per request: server {:.0} µs, load generator {:.0} µs",
                if note.is_empty() { "" } else { "; " },
                per_request(usage.server_cpu_secs),
                per_request(usage.generator_cpu_secs)
            ));
        }
        if let Some(error) = &outcome.first_error {
            note.push_str(&format!("; first error: {error}"));
        }
        // Progress, so a long run shows where it is (and a profiler knows what comes next).
        eprintln!("done: {name}");
        Self {
            name,
            requests: outcome.ok + outcome.errors,
            ok: outcome.ok,
            errors: outcome.errors,
            per_second: outcome.ok as f64 / outcome.elapsed.as_secs_f64().max(1e-9),
            p50: quantile_ms(lat, 0.50),
            p90: quantile_ms(lat, 0.90),
            p99: quantile_ms(lat, 0.99),
            max: quantile_ms(lat, 1.0),
            peak_rss_mb,
            correct: correct && outcome.errors == 0,
            note,
        }
    }
}

impl Run {
    /// A check without a load: its verdict and what it said.
    pub fn check(name: String, correct: bool, note: String) -> Self {
        Self {
            name,
            requests: 0,
            ok: 0,
            errors: 0,
            per_second: 0.0,
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            max: 0.0,
            peak_rss_mb: None,
            correct,
            note,
        }
    }
}

pub struct BundleFile {
    pub name: String,
    pub raw: usize,
    pub gzip: usize,
    pub brotli: usize,
}

pub struct Report {
    pub concurrency: usize,
    pub requests: usize,
    pub runs: Vec<Run>,
    pub bundle: Vec<BundleFile>,
}

impl Report {
    pub fn new(options: &Options) -> Self {
        Self {
            concurrency: options.concurrency,
            requests: options.requests,
            runs: Vec::new(),
            bundle: Vec::new(),
        }
    }

    pub fn table(&self) -> String {
        let mut out = Vec::new();
        let _ = writeln!(
            out,
            "\nconcurrency {}, {} requests per webhook scenario\n",
            self.concurrency, self.requests
        );
        let _ = writeln!(
            out,
            "{:<48} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}  check",
            "scenario", "req/s", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "RSS MB",
        );
        for run in &self.runs {
            let rss = run
                .peak_rss_mb
                .map_or("-".to_owned(), |mb| format!("{mb:.1}"));
            let _ = writeln!(
                out,
                "{:<48} {:>9.0} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8}  {} {}",
                run.name,
                run.per_second,
                run.errors,
                run.p50,
                run.p90,
                run.p99,
                run.max,
                rss,
                if run.correct { "ok" } else { "FAILED" },
                run.note
            );
        }
        let _ = writeln!(out, "\nfirst load          raw KB   gzip KB  brotli KB");
        let mut total = 0;
        for file in &self.bundle {
            total += file.brotli;
            let _ = writeln!(
                out,
                "{:<16} {:>9.1} {:>9.1} {:>10.1}",
                file.name,
                file.raw as f64 / 1000.0,
                file.gzip as f64 / 1000.0,
                file.brotli as f64 / 1000.0
            );
        }
        let _ = writeln!(
            out,
            "{:<16} {:>31.1}\n",
            "total (brotli)",
            total as f64 / 1000.0
        );
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn json(&self) -> Value {
        json!({
            "concurrency": self.concurrency,
            "requests": self.requests,
            "runs": self.runs.iter().map(|run| json!({
                "scenario": run.name, "requests": run.requests, "ok": run.ok, "errors": run.errors,
                "per_second": run.per_second, "p50_ms": run.p50, "p90_ms": run.p90, "p99_ms": run.p99,
                "max_ms": run.max, "peak_rss_mb": run.peak_rss_mb, "correct": run.correct, "note": run.note,
            })).collect::<Vec<_>>(),
            "bundle": self.bundle.iter().map(|f| json!({
                "file": f.name, "raw": f.raw, "gzip": f.gzip, "brotli": f.brotli,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Raw, gzip (level 9) and brotli (quality 11) sizes of the first-load files (their hashed
/// names from `hash_file`, when the build wrote one).
pub fn bundle_sizes(pkg: &Path, hash_file: &Path) -> anyhow::Result<Vec<BundleFile>> {
    let hashes = std::fs::read_to_string(hash_file).unwrap_or_default();
    let named = |kind: &str| {
        hashes
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim() == kind)
            .map(|(_, hash)| format!("ndn.{}.{kind}", hash.trim()))
            .unwrap_or_else(|| format!("ndn.{kind}"))
    };
    let mut files = Vec::new();
    for name in [named("wasm"), named("js"), named("css")] {
        let bytes = std::fs::read(pkg.join(&name))?;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&bytes)?;
        let gzip = gzip.finish()?.len();
        let mut brotli = Vec::new();
        let params = brotli::enc::BrotliEncoderParams {
            quality: 11,
            ..Default::default()
        };
        brotli::BrotliCompress(&mut bytes.as_slice(), &mut brotli, &params)?;
        files.push(BundleFile {
            name,
            raw: bytes.len(),
            gzip,
            brotli: brotli.len(),
        });
    }
    Ok(files)
}
