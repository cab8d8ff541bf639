//! Search over the whole seeded catalogue: the quality set, every coding index title,
//! filters, facets and pagination against the store, and bad queries.

use std::collections::{HashMap, HashSet};

use careers_occupations::{
    Migrator,
    search::{Filters, SearchIndex},
    seed,
};
use careers_testkit::{repository_root, sqlite::TestSqlite};
use sea_orm::{Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

async fn seeded() -> anyhow::Result<(TestSqlite, DatabaseConnection, SearchIndex)> {
    let database = TestSqlite::new()?;
    let db = Database::connect(&database.url).await?;
    Migrator::up(&db, None).await?;
    seed::seed(&db, &repository_root().join("seeds")).await?;
    let index = SearchIndex::new()?;
    assert_eq!(index.rebuild(&db).await?, 412);
    Ok((database, db, index))
}

fn top(index: &SearchIndex, query: &str, n: usize) -> Vec<String> {
    index
        .search(query, &Filters::default(), 0, n)
        .map(|results| results.hits.into_iter().map(|hit| hit.soc_code).collect())
        .unwrap_or_default()
}

#[derive(Debug, serde::Deserialize)]
struct Judged {
    query: String,
    category: String,
    expected: String,
    why: String,
}

fn quality_set() -> anyhow::Result<Vec<Judged>> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/search_quality.csv");
    Ok(csv::Reader::from_path(path)?
        .deserialize()
        .collect::<Result<_, _>>()?)
}

#[test]
fn the_quality_set_is_as_the_issue_asks() -> anyhow::Result<()> {
    let set = quality_set()?;
    let count = |category: &str| {
        set.iter()
            .filter(|judged| judged.category == category)
            .count()
    };
    assert!(set.len() >= 60);
    assert!(count("misspelling") >= 20);
    assert!(count("subject") >= 15);
    assert!(count("colloquial") >= 10);
    let index_titles: HashSet<String> = csv::Reader::from_path(
        repository_root().join("seeds/occupations/soc2020_coding_index.csv"),
    )?
    .records()
    .filter_map(Result::ok)
    .filter_map(|record| record.get(2).map(str::to_lowercase))
    .collect();
    for judged in &set {
        assert!(
            judged
                .expected
                .split(' ')
                .all(careers_proto::soc::is_soc_code),
            "{judged:?}"
        );
        match judged.category.as_str() {
            // The misspelling is one edit from the word or title the reason names.
            "misspelling" => {
                let source = judged.why.split(',').next().unwrap_or_default();
                assert_eq!(strsim::osa_distance(&judged.query, source), 1, "{judged:?}");
            }
            "title" => assert!(
                !index_titles.contains(&judged.query.to_lowercase()),
                "{judged:?} is copied from the coding index"
            ),
            "subject" | "colloquial" => {}
            other => panic!("unknown category {other}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn at_least_90_percent_of_the_quality_set_finds_an_expected_code_in_the_top_3()
-> anyhow::Result<()> {
    let (_database, _db, index) = seeded().await?;
    let set = quality_set()?;
    let mut misses = Vec::new();
    for judged in &set {
        let found = index.search(&judged.query, &Filters::default(), 0, 3)?.hits;
        if !judged
            .expected
            .split(' ')
            .any(|code| found.iter().any(|hit| hit.soc_code == code))
        {
            let found: Vec<String> = found
                .iter()
                .map(|hit| {
                    format!(
                        "{} by {} {:?} {:.1}",
                        hit.soc_code, hit.field, hit.text, hit.score
                    )
                })
                .collect();
            misses.push(format!(
                "{:?} ({}): expected {}, got {found:?}",
                judged.query, judged.category, judged.expected
            ));
        }
    }
    let share = 1.0 - misses.len() as f64 / set.len() as f64;
    println!(
        "top-3 quality {:.1}% of {}; misses:\n{}",
        share * 100.0,
        set.len(),
        misses.join("\n")
    );
    assert!(
        share >= 0.9,
        "top-3 quality {:.1}%:\n{}",
        share * 100.0,
        misses.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn every_index_title_of_a_single_unit_group_finds_it_in_the_top_5() -> anyhow::Result<()> {
    let (_database, _db, index) = seeded().await?;
    let mut groups: HashMap<String, HashSet<String>> = HashMap::new();
    for record in csv::Reader::from_path(
        repository_root().join("seeds/occupations/soc2020_coding_index.csv"),
    )?
    .records()
    {
        let record = record?;
        let (code, title) = (
            record.get(0).unwrap_or_default(),
            record.get(2).unwrap_or_default(),
        );
        if careers_proto::soc::is_soc_code(code) {
            groups
                .entry(title.to_lowercase())
                .or_default()
                .insert(code.to_owned());
        }
    }
    let single: Vec<(String, String)> = groups
        .into_iter()
        .filter(|(_, codes)| codes.len() == 1)
        .filter_map(|(title, codes)| codes.into_iter().next().map(|code| (title, code)))
        .collect();
    assert!(single.len() > 20_000, "{} titles", single.len());
    let halves: Vec<Vec<(String, String)>> = single
        .chunks(single.len().div_ceil(2))
        .map(<[_]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    for half in halves {
        let index = index.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            half.into_iter()
                .filter(|(title, code)| !top(&index, title, 5).contains(code))
                .collect::<Vec<_>>()
        }));
    }
    let mut misses = Vec::new();
    for task in tasks {
        misses.extend(task.await?);
    }
    assert!(
        misses.is_empty(),
        "{} of {} titles miss: {:?}",
        misses.len(),
        single.len(),
        &misses[..misses.len().min(20)]
    );
    Ok(())
}

#[tokio::test]
async fn related_occupations_are_typed_with_reasons() -> anyhow::Result<()> {
    let (_database, db, index) = seeded().await?;
    let row = careers_occupations::store::occupations::find(&db, "2123")
        .await?
        .ok_or_else(|| anyhow::anyhow!("2123 is seeded"))?;
    let (titles, _) = careers_occupations::store::reference::searchable(&db, Some("2123")).await?;
    let titles: Vec<String> = titles.into_iter().map(|title| title.title).collect();
    let related = index.related("2123", &titles, &row.content().tasks)?;
    assert!(
        related.iter().all(|item| item.soc_code != "2123"),
        "not itself"
    );
    let of = |kind: &str| -> Vec<&str> {
        related
            .iter()
            .filter(|item| item.relations.iter().any(|(found, _)| *found == kind))
            .map(|item| item.soc_code.as_str())
            .collect()
    };
    // Electrical engineers: minor group 212 holds the other engineers.
    assert!(of("same_minor_group").contains(&"2122"), "{related:?}");
    assert!(
        of("same_minor_group")
            .iter()
            .all(|code| code.starts_with("212"))
    );
    // Electricians share titles such as "Electro-mechanical engineer" with them.
    assert!(of("shared_job_titles").contains(&"5241"), "{related:?}");
    assert!(!of("similar_tasks").is_empty());
    assert!(
        related
            .iter()
            .flat_map(|item| &item.relations)
            .all(|(_, reason)| !reason.is_empty())
    );
    Ok(())
}
