//! Asking the index: search with filters and facets, suggestions as the adviser types,
//! and the figure filters on their own.

use super::*;

impl SearchIndex {
    /// The words of a query, checked: 400 for empty, too long or control characters.
    fn query_words(&self, query: &str) -> Result<Vec<String>, SearchError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(SearchError::InvalidQuery(
                "give some words to search for".to_owned(),
            ));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(SearchError::InvalidQuery(format!(
                "at most {MAX_QUERY_CHARS} characters"
            )));
        }
        if query.chars().any(char::is_control) {
            return Err(SearchError::InvalidQuery(
                "control characters are not allowed".to_owned(),
            ));
        }
        let words = tokens(&mut self.0.plain.clone(), query);
        if words.is_empty() {
            return Err(SearchError::InvalidQuery(
                "give at least one word of letters or digits".to_owned(),
            ));
        }
        Ok(words)
    }

    /// Every occupation matching `query` and `filters`, best first; `offset` and `limit`
    /// choose the page.
    pub fn search(
        &self,
        query: &str,
        filters: &Filters,
        offset: usize,
        limit: usize,
    ) -> Result<Results, SearchError> {
        let inner = &self.0;
        let words = self.query_words(query)?;
        let searcher = inner.reader.searcher();
        // Each word, or what it may have meant when the index holds neither it nor its stem.
        let alternatives: Vec<Vec<String>> = {
            let state = inner.state.read().unwrap_or_else(PoisonError::into_inner);
            words
                .iter()
                .map(|word| {
                    let known = state.vocabulary.contains_key(word)
                        || tokens(&mut inner.stemmed.clone(), word).iter().any(|stem| {
                            inner.fields.by_kind.iter().any(|field| {
                                searcher
                                    .doc_freq(&Term::from_field_text(*field, stem))
                                    .is_ok_and(|count| count > 0)
                            })
                        });
                    let corrected = if known {
                        Vec::new()
                    } else {
                        inner.corrector.correct(word, &state.vocabulary)
                    };
                    if corrected.is_empty() {
                        vec![word.clone()]
                    } else {
                        corrected
                    }
                })
                .collect()
        };
        let primary: Vec<&str> = alternatives
            .iter()
            .filter_map(|options| options.first().map(String::as_str))
            .collect();
        let searched = primary.join(" ");
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut terms: Vec<String> = alternatives
            .iter()
            .flatten()
            .flat_map(|word| tokens(&mut inner.stemmed.clone(), word))
            .collect();
        terms.sort_unstable();
        terms.dedup();
        for (field, (_, boost)) in inner.fields.by_kind.iter().zip(KINDS) {
            for term in &terms {
                clauses.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(TermQuery::new(
                            Term::from_field_text(*field, term),
                            IndexRecordOption::WithFreqs,
                        )),
                        boost,
                    )),
                ));
            }
        }
        // The whole query as a title: as typed, as corrected, and with each other
        // candidate in place of a corrected word.
        let mut exact = vec![words.join(" "), searched.clone()];
        for (position, options) in alternatives.iter().enumerate() {
            for option in options.iter().skip(1) {
                let mut variant = primary.clone();
                variant[position] = option;
                exact.push(variant.join(" "));
            }
        }
        exact.sort_unstable();
        exact.dedup();
        for text in exact {
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(TermQuery::new(
                        Term::from_field_text(inner.fields.exact, &text),
                        IndexRecordOption::Basic,
                    )),
                    EXACT_BOOST,
                )),
            ));
        }
        let best = searcher.search(&BooleanQuery::new(clauses), &BestPerOccupation)?;
        let state = inner.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut facets = Facets::default();
        let mut passing: Vec<(u64, Score, DocAddress, &Facts)> = Vec::new();
        for (code, found) in best {
            let (score, address) = (found.score(), found.address);
            let Some(facts) = state.facts.get(&code) else {
                continue;
            };
            if !facts.passes(filters) {
                continue;
            }
            *facets
                .major_group
                .entry(facts.major_group.clone())
                .or_default() += 1;
            *facets.stem.entry(facts.is_stem.to_string()).or_default() += 1;
            for route in &facts.routes {
                *facets.route.entry((*route).to_owned()).or_default() += 1;
            }
            passing.push((code, score, address, facts));
        }
        passing.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let total = passing.len();
        // Report the correction the best hit bears out: of a word's candidates, the one
        // its text holds.
        let mut searched_words = primary.clone();
        if let Some((_, _, address, _)) = passing.first() {
            let document: TantivyDocument = searcher.doc(*address)?;
            let text = document
                .get_first(inner.fields.text)
                .and_then(|value| value.as_str())
                .unwrap_or_default();
            let held: HashSet<String> =
                tokens(&mut inner.plain.clone(), text).into_iter().collect();
            for (position, options) in alternatives.iter().enumerate() {
                if let Some(option) = options
                    .iter()
                    .find(|option| option.split(' ').all(|word| held.contains(word)))
                {
                    searched_words[position] = option;
                }
            }
        }
        let searched = searched_words.join(" ");
        let mut hits = Vec::new();
        for (_, score, address, facts) in passing.into_iter().skip(offset).take(limit) {
            let document: TantivyDocument = searcher.doc(address)?;
            let kind = document
                .get_first(inner.fields.kind)
                .and_then(|value| value.as_u64())
                .unwrap_or(TITLE);
            let text = document
                .get_first(inner.fields.text)
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_owned();
            hits.push(Hit {
                soc_code: facts.soc_code.clone(),
                title: facts.title.clone(),
                field: kind_name(kind),
                text,
                score,
            });
        }
        Ok(Results {
            hits,
            total,
            facets,
            corrected: (searched != words.join(" ")).then_some(searched),
        })
    }

    /// Titles that complete what was typed: every word but the last whole, the last as a
    /// prefix. Unit group titles first, then shorter titles, then alphabetical.
    pub fn suggest(&self, query: &str, limit: usize) -> Result<Vec<Suggestion>, SearchError> {
        let inner = &self.0;
        let words = self.query_words(query)?;
        let field = inner.fields.words;
        let query: Box<dyn Query> = match words.as_slice() {
            [word] => Box::new(FuzzyTermQuery::new_prefix(
                Term::from_field_text(field, word),
                0,
                true,
            )),
            _ => Box::new(PhrasePrefixQuery::new(
                words
                    .iter()
                    .map(|word| Term::from_field_text(field, word))
                    .collect(),
            )),
        };
        let searcher = inner.reader.searcher();
        let found = searcher.search(
            &query,
            &TopDocs::with_limit(SUGGEST_CANDIDATES).order_by_score(),
        )?;
        let state = inner.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut candidates = Vec::new();
        for (_, address) in found {
            let document: TantivyDocument = searcher.doc(address)?;
            let number = |field| {
                document
                    .get_first(field)
                    .and_then(|value| value.as_u64())
                    .unwrap_or_default()
            };
            let (code, kind) = (number(inner.fields.soc), number(inner.fields.kind));
            let Some(facts) = state.facts.get(&code) else {
                continue;
            };
            let label = document
                .get_first(inner.fields.text)
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_owned();
            candidates.push((
                kind != TITLE,
                label.len(),
                label.to_lowercase(),
                code,
                label,
                facts,
            ));
        }
        candidates.sort_by(|a, b| (a.0, a.1, &a.2, a.3).cmp(&(b.0, b.1, &b.2, b.3)));
        let mut seen = HashSet::new();
        Ok(candidates
            .into_iter()
            .filter(|candidate| seen.insert((candidate.3, candidate.2.clone())))
            .take(limit)
            .map(|(_, _, _, _, label, facts)| Suggestion {
                soc_code: facts.soc_code.clone(),
                title: facts.title.clone(),
                label,
            })
            .collect())
    }

    /// Whether the occupation passes the pay and outlook filters (listings check the
    /// others on the store's rows).
    pub fn passes_figures(&self, soc_code: &str, filters: &Filters) -> bool {
        let figures_only = Filters {
            min_median_pay: filters.min_median_pay,
            outlook: filters.outlook,
            ..Filters::default()
        };
        if figures_only == Filters::default() {
            return true;
        }
        let state = self.0.state.read().unwrap_or_else(PoisonError::into_inner);
        soc_number(soc_code)
            .and_then(|code| state.facts.get(&code))
            .is_some_and(|facts| facts.passes(&figures_only))
    }
}
