//! `matching`: the optimal run beside the fixed greedy baseline on the committed
//! synthetic set (seed 42: 10,000 ambassadors, 2,000 requests from real schools).

use std::time::Instant;

use careers_ambassadors::{
    geo::Places,
    matching::{self, Ambassador, Options, Request, verify::violations},
    synthetic::{self, Occupation},
};
use careers_occupations::{classify, seed};
use careers_testkit::repository_root;
use chrono::NaiveDate;

pub fn matching() -> anyhow::Result<()> {
    let seeds = repository_root().join("seeds");
    let places = Places::load(&seeds)?;
    let occupations: Vec<Occupation> = seed::read_unit_groups(&seeds.join(seed::STRUCTURE_FILE))?
        .into_iter()
        .filter_map(|unit| {
            let stem = classify::stem(&unit.soc_code);
            stem.is_stem.then(|| Occupation {
                sectors: [
                    stem.discipline.to_owned(),
                    format!("soc:{}", unit.sub_major_group),
                ]
                .into(),
                soc_code: unit.soc_code,
            })
        })
        .collect();
    let monday = NaiveDate::from_ymd_opt(2027, 1, 4).ok_or_else(|| anyhow::anyhow!("date"))?;
    // The set, then (for information, no goal) the same generator with a fifth
    // of the ambassadors, where capacity is short and the choice of who goes where counts.
    for (ambassadors, label) in [
        (10_000, "the goal's set"),
        (2_000, "a tighter set for information, no goal"),
    ] {
        let set = synthetic::generate(&places, &occupations, ambassadors, 2_000, 42, monday)?;
        compare(&set, label, ambassadors == 10_000);
    }
    Ok(())
}

/// The optimal run beside greedy on one set.
fn compare(set: &synthetic::Generated, label: &str, goal: bool) {
    let goals = if goal {
        " (goals: under 5 s; 1.10x score or more filled)"
    } else {
        ""
    };
    let ambassadors: Vec<Ambassador> = set
        .ambassadors
        .iter()
        .map(|g| g.ambassador.clone())
        .collect();
    let requests: Vec<Request> = set.requests.iter().map(|g| g.request.clone()).collect();
    let slots: u32 = requests.iter().map(|request| request.slots).sum();

    let started = Instant::now();
    let best = matching::optimal(ambassadors.clone(), requests.clone(), Options::default());
    let optimal_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let baseline = matching::greedy(ambassadors.clone(), requests.clone());
    let greedy_seconds = started.elapsed().as_secs_f64();

    let filled = best.requests_filled(&requests);
    let greedy_filled = baseline.requests_filled(&requests);
    println!(
        "matching, {label}: {} synthetic ambassadors, {} requests ({slots} slots) from real schools, seed 42",
        ambassadors.len(),
        requests.len()
    );
    println!(
        "  optimal  {optimal_seconds:>7.3} s  {filled:>5} requests filled  {:>5} matches  score {:>9} (before diversity {})",
        best.matches.len(),
        best.total_score,
        best.optimal_score
    );
    println!(
        "  greedy   {greedy_seconds:>7.3} s  {greedy_filled:>5} requests filled  {:>5} matches  score {:>9}",
        baseline.matches.len(),
        baseline.total_score
    );
    println!(
        "  optimal vs greedy: score {:.3}x ({:.3}x before the diversity pass), requests filled {:.3}x, time {:.1}x{goals}",
        best.total_score as f64 / baseline.total_score.max(1) as f64,
        best.optimal_score as f64 / baseline.total_score.max(1) as f64,
        filled as f64 / greedy_filled.max(1) as f64,
        optimal_seconds / greedy_seconds.max(1e-9)
    );
    println!(
        "  rule violations: optimal {}, greedy {}",
        violations(&ambassadors, &requests, &best).len(),
        violations(&ambassadors, &requests, &baseline).len()
    );
}
