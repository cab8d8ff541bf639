//! Related occupations, typed, each with its reason.

use std::{
    collections::{BTreeMap, HashSet},
    sync::PoisonError,
};

use tantivy::{
    TantivyDocument, Term,
    query::{BooleanQuery, Occur, Query, TermQuery},
    schema::{IndexRecordOption, Value},
};

use super::{BestPerOccupation, Found, SearchError, SearchIndex, TASK, soc_number, tokens};

/// An occupation related to another, and every way it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    pub soc_code: String,
    pub title: String,
    /// (`same_minor_group` | `shared_job_titles` | `similar_tasks`, reason).
    pub relations: Vec<(&'static str, String)>,
}

/// Shared job titles, each with its weight: one over the number of occupations holding it.
type WeightedTitles = Vec<(f64, String)>;

/// Occupations listed per kind of relation, beyond the whole minor group.
const RELATED_PER_KIND: usize = 5;

impl SearchIndex {
    /// The occupations related to `soc_code`: its minor group, those sharing its job
    /// titles (`titles`), and those whose tasks are most like its `tasks` (BM25).
    pub fn related(
        &self,
        soc_code: &str,
        titles: &[String],
        tasks: &[String],
    ) -> Result<Vec<Related>, SearchError> {
        let inner = &self.0;
        let Some(own) = soc_number(soc_code) else {
            return Ok(Vec::new());
        };
        let searcher = inner.reader.searcher();
        let state = inner.state.read().unwrap_or_else(PoisonError::into_inner);
        let Some(facts) = state.facts.get(&own) else {
            return Ok(Vec::new());
        };
        let mut related: Vec<Related> = Vec::new();
        let mut add = |code: u64, kind: &'static str, reason: String| {
            let Some(other) = state.facts.get(&code) else {
                return;
            };
            match related
                .iter_mut()
                .find(|item| item.soc_code == other.soc_code)
            {
                Some(item) => item.relations.push((kind, reason)),
                None => related.push(Related {
                    soc_code: other.soc_code.clone(),
                    title: other.title.clone(),
                    relations: vec![(kind, reason)],
                }),
            }
        };
        let mut siblings: Vec<u64> = state
            .facts
            .iter()
            .filter(|(code, other)| **code != own && other.minor_group == facts.minor_group)
            .map(|(code, _)| *code)
            .collect();
        siblings.sort_unstable();
        for code in siblings {
            add(
                code,
                "same_minor_group",
                format!("both are in SOC 2020 minor group {}", facts.minor_group),
            );
        }
        // Shared job titles: the same normalised title in another occupation, a title
        // counting more the fewer occupations hold it ("Electrical engineer" in two
        // groups says more than "Research assistant" in twenty).
        let mut shared: BTreeMap<u64, WeightedTitles> = BTreeMap::new();
        let mut plain = inner.plain.clone();
        let mut seen = HashSet::new();
        for title in titles {
            let normalised = tokens(&mut plain, title).join(" ");
            if normalised.is_empty() || !seen.insert(normalised.clone()) {
                continue;
            }
            let query = TermQuery::new(
                Term::from_field_text(inner.fields.exact, &normalised),
                IndexRecordOption::Basic,
            );
            let holders = searcher.search(&query, &BestPerOccupation)?;
            let weight = 1.0 / holders.len().max(1) as f64;
            for code in holders.into_keys() {
                if code != own {
                    shared
                        .entry(code)
                        .or_default()
                        .push((weight, title.clone()));
                }
            }
        }
        let mut shared: Vec<(f64, u64, WeightedTitles)> = shared
            .into_iter()
            .map(|(code, mut titles)| {
                titles.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                (titles.iter().map(|(weight, _)| weight).sum(), code, titles)
            })
            .collect();
        shared.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, code, titles) in shared.into_iter().take(RELATED_PER_KIND) {
            let shown: Vec<&str> = titles
                .iter()
                .take(3)
                .map(|(_, title)| title.as_str())
                .collect();
            add(
                code,
                "shared_job_titles",
                format!(
                    "{} shared job titles, such as {}",
                    titles.len(),
                    shown.join(", ")
                ),
            );
        }
        // Similar tasks: the other occupations' tasks scored against all of these.
        let task_field = inner.fields.by_kind[usize::try_from(TASK).unwrap_or_default()];
        let mut terms: Vec<String> = tasks
            .iter()
            .flat_map(|task| tokens(&mut inner.stemmed.clone(), task))
            .collect();
        terms.sort_unstable();
        terms.dedup();
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|term| {
                let query: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(task_field, term),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, query)
            })
            .collect();
        let mut similar: Vec<(u64, Found)> = searcher
            .search(&BooleanQuery::new(clauses), &BestPerOccupation)?
            .into_iter()
            .filter(|(code, _)| *code != own)
            .collect();
        similar.sort_by(|a, b| b.1.score().total_cmp(&a.1.score()).then(a.0.cmp(&b.0)));
        for (code, found) in similar.into_iter().take(RELATED_PER_KIND) {
            let document: TantivyDocument = searcher.doc(found.address)?;
            let task = document
                .get_first(inner.fields.text)
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_owned();
            add(code, "similar_tasks", format!("a similar task: {task}"));
        }
        Ok(related)
    }
}
