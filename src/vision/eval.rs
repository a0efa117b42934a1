//! `firelane classify`: scores image files with the daemon's own
//! preprocessing, and measures the classifier on labelled folders.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::{Classifier, decode_jpeg};

const BATCH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {message}")]
    Path { path: String, message: String },
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

/// Image files under `paths` (folders searched recursively), sorted.
pub fn collect_images(paths: &[PathBuf]) -> Result<Vec<PathBuf>, EvalError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(EvalError::Path {
                path: p.display().to_string(),
                message: "no such file or folder".into(),
            });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), EvalError> {
    let err = |e: std::io::Error| EvalError::Path {
        path: dir.display().to_string(),
        message: e.to_string(),
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn load_image(p: &Path) -> Result<image::RgbImage, String> {
    let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
    if super::decode::looks_like_jpeg(&bytes) {
        decode_jpeg(&bytes).map_err(|e| e.to_string())
    } else {
        image::load_from_memory(&bytes)
            .map(|i| i.into_rgb8())
            .map_err(|e| e.to_string())
    }
}

/// Scores each file; an unreadable one is reported and skipped.
pub fn score_files(
    classifier: &Classifier,
    files: &[PathBuf],
) -> Vec<(PathBuf, Result<f32, String>)> {
    let mut out = Vec::with_capacity(files.len());
    for chunk in files.chunks(BATCH) {
        let mut images = Vec::new();
        let mut ok_paths = Vec::new();
        for p in chunk {
            match load_image(p) {
                Ok(img) => {
                    images.push(img);
                    ok_paths.push(p.clone());
                }
                Err(e) => out.push((p.clone(), Err(e))),
            }
        }
        match classifier.score_images(&images) {
            Ok(scores) => out.extend(ok_paths.into_iter().zip(scores.into_iter().map(Ok))),
            Err(e) => out.extend(ok_paths.into_iter().map(|p| (p, Err(e.to_string())))),
        }
    }
    out
}

#[derive(Serialize)]
struct ScoreLine<'a> {
    path: &'a str,
    score: f32,
    obstructed: bool,
}

pub fn print_scores(
    classifier: &Classifier,
    paths: &[PathBuf],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let files = collect_images(paths)?;
    let mut failed = false;
    for (path, result) in score_files(classifier, &files) {
        let shown = path.display().to_string();
        match result {
            Ok(score) => {
                let obstructed = score as f64 >= classifier.threshold();
                if json {
                    println!(
                        "{}",
                        serde_json::to_string(&ScoreLine {
                            path: &shown,
                            score,
                            obstructed
                        })?
                    );
                } else {
                    println!(
                        "{score:.4}  {}  {shown}",
                        if obstructed {
                            "obstructed"
                        } else {
                            "clear     "
                        }
                    );
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("{shown}: {e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Accuracy figures at a threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalMetrics {
    pub n: usize,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub roc_auc: f64,
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
}

/// `scores` paired with labels (true = obstructed).
pub fn metrics(samples: &[(f32, bool)], threshold: f64) -> EvalMetrics {
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for &(s, label) in samples {
        match (s as f64 >= threshold, label) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let n = samples.len();
    let rate = |a: usize, b: usize| {
        if a + b == 0 {
            0.0
        } else {
            a as f64 / (a + b) as f64
        }
    };
    EvalMetrics {
        n,
        accuracy: rate(tp + tn, fp + fn_),
        balanced_accuracy: (rate(tp, fn_) + rate(tn, fp)) / 2.0,
        roc_auc: roc_auc(samples),
        tp,
        fp,
        tn,
        fn_,
    }
}

/// ROC AUC by the rank-sum (Mann–Whitney) formula, ties counted half.
pub fn roc_auc(samples: &[(f32, bool)]) -> f64 {
    let mut sorted: Vec<(f32, bool)> = samples.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0.0f64, 0usize);
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * sorted[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    let pos = samples.iter().filter(|s| s.1).count() as f64;
    let neg = samples.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Scores `dir/busy` (obstructed) and `dir/free` (clear).
pub fn evaluate(classifier: &Classifier, dir: &Path) -> Result<(EvalMetrics, usize), EvalError> {
    let mut samples = Vec::new();
    let mut unreadable = 0;
    for (sub, label) in [("busy", true), ("free", false)] {
        let d = dir.join(sub);
        if !d.is_dir() {
            return Err(EvalError::Path {
                path: d.display().to_string(),
                message: "missing; --eval wants busy/ and free/ subfolders".into(),
            });
        }
        for (path, r) in score_files(classifier, &collect_images(&[d])?) {
            match r {
                Ok(s) => samples.push((s, label)),
                Err(e) => {
                    unreadable += 1;
                    tracing::warn!(path = %path.display(), error = %e, "image skipped");
                }
            }
        }
    }
    Ok((metrics(&samples, classifier.threshold()), unreadable))
}

pub fn print_eval(classifier: &Classifier, dir: &Path) -> anyhow::Result<ExitCode> {
    let (m, unreadable) = evaluate(classifier, dir)?;
    println!(
        "model {} ({}), threshold {}",
        classifier.name(),
        &classifier.sha256[..12],
        classifier.threshold()
    );
    println!("images {}  (unreadable {unreadable})", m.n);
    println!("accuracy           {:.4}", m.accuracy);
    println!("balanced accuracy  {:.4}", m.balanced_accuracy);
    println!("ROC AUC            {:.4}", m.roc_auc);
    println!("confusion          predicted obstructed  predicted clear");
    println!("  obstructed       {:>20}  {:>15}", m.tp, m.fn_);
    println!("  clear            {:>20}  {:>15}", m.fp, m.tn);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_and_auc() {
        let s = [
            (0.9, true),
            (0.8, true),
            (0.3, false),
            (0.6, false),
            (0.2, true),
        ];
        let m = metrics(&s, 0.5);
        assert_eq!((m.tp, m.fp, m.tn, m.fn_), (2, 1, 1, 1));
        assert!((m.accuracy - 0.6).abs() < 1e-9);
        assert!((m.balanced_accuracy - (2.0 / 3.0 + 0.5) / 2.0).abs() < 1e-9);
        // pairs (pos, neg): 0.9>0.3,0.9>0.6,0.8>0.3,0.8>0.6,0.2<0.3,0.2<0.6 → 4/6
        assert!((m.roc_auc - 4.0 / 6.0).abs() < 1e-9);
        assert_eq!(roc_auc(&[(0.5, true), (0.5, false)]), 0.5);
    }
}
