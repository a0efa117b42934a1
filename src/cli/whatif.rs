//! `firelane whatif`: a scenario under two configs, compared per zone.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::replay::Scenario;

#[derive(Args, Debug)]
pub struct WhatifArgs {
    /// The new configuration (TOML). Without zones it takes the
    /// scenario's, to try tracking settings alone.
    #[arg(long)]
    pub config: PathBuf,
    /// The current configuration; default the scenario's config.toml
    /// (written by `firelane record`), else its scenario.json zones.
    #[arg(long)]
    pub current: Option<PathBuf>,
    pub scenario: PathBuf,
    #[arg(long, default_value = crate::config::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// The two runs' databases; default data/whatif.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also write the comparison as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub async fn run(args: WhatifArgs) -> anyhow::Result<ExitCode> {
    let WhatifArgs {
        config,
        current,
        scenario,
        model,
        work_dir,
        json,
    } = args;

    let sc = Scenario::load(&scenario)?;
    let current = current.or_else(|| {
        let recorded = scenario.join("config.toml");
        recorded.exists().then_some(recorded)
    });
    let sides = (|| {
        let cur = match &current {
            Some(path) => crate::whatif::Side::load(path, &sc)?,
            None => crate::whatif::Side {
                label: format!(
                    "{} (its own zones)",
                    scenario.join("scenario.json").display()
                ),
                raw: None,
            },
        };
        Ok::<_, crate::whatif::WhatIfError>((cur, crate::whatif::Side::load(&config, &sc)?))
    })();
    let (cur, new) = match sides {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let bar = indicatif::ProgressBar::new(2 * sc.frames.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} frames  {elapsed}  {msg}")
            .expect("progress template"),
    );
    let work_dir = work_dir.unwrap_or_else(|| PathBuf::from("data/whatif"));
    let result = crate::whatif::run(&sc, &cur, &new, &model, &work_dir, Some(bar)).await?;
    print!("{}", result.render());
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")?;
    }
    Ok(ExitCode::SUCCESS)
}
