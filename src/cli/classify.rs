//! `firelane classify`: score image files, or evaluate on a labelled folder.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::vision::Classifier;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Images, or folders searched recursively.
    pub paths: Vec<PathBuf>,
    /// One JSON line per image.
    #[arg(long)]
    pub json: bool,
    /// A folder with busy/ and free/ subfolders: print accuracy metrics.
    #[arg(long, conflicts_with = "paths")]
    pub eval: Option<PathBuf>,
    #[arg(long, default_value = crate::config::DEFAULT_MODEL)]
    pub model: PathBuf,
}

pub async fn run(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let ClassifyArgs {
        paths,
        json,
        eval,
        model,
    } = args;

    let classifier = Classifier::load(&model)?;
    match eval {
        Some(dir) => crate::vision::eval::print_eval(&classifier, &dir),
        None => crate::vision::eval::print_scores(&classifier, &paths, json),
    }
}
