//! Occupation search: an embedded tantivy index over every unit group title, coding index
//! job title, synonym, description and task.
//!
//! The index is a per-replica cache held in memory: [`SearchIndex::rebuild`] fills it from
//! the store at start, and [`follow`] keeps it current from occupations' own events (and
//! lmi's figures, for the pay and outlook filters), so an edit made through any replica is
//! found through every other.
//!
//! Ranking: each indexed text is its own document, scored by BM25 in a field per kind
//! (unit group title 3, job title and synonym 2, task 0.6, description 0.5), with a large
//! bonus for a text equal to the whole query. An occupation scores as its best document,
//! which is also the field reported as matched. Words the index does not know are
//! corrected to the nearest word it does (see [`spelling`]).

mod collect;
mod follow;
mod query;
mod related;
mod spelling;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use careers_proto::period;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Score, TantivyDocument, Term,
    collector::TopDocs,
    query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, PhrasePrefixQuery, Query, TermQuery},
    schema::{
        FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
        TextOptions, Value,
    },
    tokenizer::{
        AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
        TextAnalyzer,
    },
};

use collect::{BestPerOccupation, Found};
pub use follow::follow;
pub use related::Related;

use crate::{
    classify,
    store::{figures, occupations, reference},
};

/// The figure behind `min_median_pay` (CONTRACT.md).
pub const PAY_MEASURE: &str = "median_annual_pay";
/// The figure behind `outlook`.
pub const OUTLOOK_MEASURE: &str = "projected_employment_change";
/// The UK-wide, all-workers figures are the ones filters use.
pub const UK: &str = "K02000001";
pub const ALL: &str = "all";

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// Kinds of indexed text, best first; the name is what a hit reports as matched.
const KINDS: [(&str, f32); 5] = [
    ("title", 3.0),
    ("alternative_title", 2.0),
    ("synonym", 2.0),
    ("task", 0.6),
    ("description", 0.5),
];
const TITLE: u64 = 0;
const ALTERNATIVE_TITLE: u64 = 1;
const SYNONYM: u64 = 2;
const TASK: u64 = 3;
const DESCRIPTION: u64 = 4;
/// Added to the score of a text equal to the whole query: exact titles come first.
const EXACT_BOOST: f32 = 20.0;
/// Candidates a suggestion list is chosen from.
const SUGGEST_CANDIDATES: usize = 400;

const STEMMED: &str = "careers_stemmed";
const PLAIN: &str = "careers_plain";

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("q: {0}")]
    InvalidQuery(String),
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("store: {0}")]
    Store(#[from] DbErr),
    #[error("the index task failed: {0}")]
    Task(String),
}

/// `growing`, `stable` or `declining`: projected change above +1%, within ±1%, below −1%.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outlook {
    Growing,
    Stable,
    Declining,
}

impl Outlook {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "growing" => Some(Self::Growing),
            "stable" => Some(Self::Stable),
            "declining" => Some(Self::Declining),
            _ => None,
        }
    }

    pub fn of(change: f64) -> Self {
        if change > 1.0 {
            Self::Growing
        } else if change < -1.0 {
            Self::Declining
        } else {
            Self::Stable
        }
    }
}

/// The filters of a search or a listing; each unset one lets everything through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub major_group: Option<String>,
    pub stem: Option<bool>,
    pub route: Option<String>,
    pub min_median_pay: Option<f64>,
    pub outlook: Option<Outlook>,
}

/// The latest figure of one kind, with the merge order of [`figures`].
#[derive(Debug, Clone, PartialEq)]
struct Latest {
    rank: ((String, String), DateTime<Utc>, String),
    value: Option<f64>,
}

impl Latest {
    fn new(period: &str, recorded_at: DateTime<Utc>, figure_id: &str, value: Option<f64>) -> Self {
        Self {
            rank: {
                let (key, period) = period::order_key(period);
                ((key, period.to_owned()), recorded_at, figure_id.to_owned())
            },
            value,
        }
    }
}

/// What filters and facets need of one occupation.
#[derive(Debug, Clone, PartialEq)]
struct Facts {
    soc_code: String,
    title: String,
    major_group: String,
    minor_group: String,
    is_stem: bool,
    routes: Vec<&'static str>,
    median_pay: Option<Latest>,
    outlook: Option<Latest>,
}

impl Facts {
    fn passes(&self, filters: &Filters) -> bool {
        filters
            .major_group
            .as_ref()
            .is_none_or(|group| *group == self.major_group)
            && filters.stem.is_none_or(|stem| stem == self.is_stem)
            && filters
                .route
                .as_ref()
                .is_none_or(|route| self.routes.contains(&route.as_str()))
            && filters.min_median_pay.is_none_or(|minimum| {
                self.median_pay
                    .as_ref()
                    .and_then(|pay| pay.value)
                    .is_some_and(|pay| pay >= minimum)
            })
            && filters.outlook.is_none_or(|outlook| {
                self.outlook
                    .as_ref()
                    .and_then(|change| change.value)
                    .is_some_and(|change| Outlook::of(change) == outlook)
            })
    }
}

/// How many hits each value of a facet has, among the hits that pass every filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    pub major_group: BTreeMap<String, u32>,
    pub stem: BTreeMap<String, u32>,
    pub route: BTreeMap<String, u32>,
}

/// One occupation found, with the text that matched best.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub soc_code: String,
    pub title: String,
    pub field: &'static str,
    pub text: String,
    pub score: f32,
}

/// A page of hits, with the counts over all of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    pub hits: Vec<Hit>,
    pub total: usize,
    pub facets: Facets,
    /// The query as searched, when a word was corrected.
    pub corrected: Option<String>,
}

/// A typeahead entry: an occupation and the title that completes what was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub soc_code: String,
    pub title: String,
    pub label: String,
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    soc: Field,
    kind: Field,
    /// The text as shown, stored only.
    text: Field,
    /// One stemmed, searchable field per kind, so BM25 statistics stay per kind.
    by_kind: [Field; 5],
    /// Unstemmed words of titles, for typeahead.
    words: Field,
    /// The whole title, normalised, for the exact-match bonus.
    exact: Field,
}

#[derive(Debug, Default)]
struct State {
    facts: HashMap<u64, Facts>,
    /// Every word the indexed texts hold, with how many texts hold it.
    vocabulary: HashMap<String, u32>,
}

struct Inner {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    stemmed: TextAnalyzer,
    plain: TextAnalyzer,
    state: RwLock<State>,
    corrector: spelling::Corrector,
}

/// The search index of one replica; clones share it.
#[derive(Clone)]
pub struct SearchIndex(Arc<Inner>);

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SearchIndex")
            .finish_non_exhaustive()
    }
}

/// The text of one document to index.
struct Entry {
    kind: u64,
    text: String,
}

impl SearchIndex {
    /// An empty index; [`SearchIndex::rebuild`] fills it.
    pub fn new() -> Result<Self, SearchError> {
        let mut schema = Schema::builder();
        let stemmed = |name: &str| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(name)
                    .set_index_option(IndexRecordOption::WithFreqs),
            )
        };
        let fields = Fields {
            soc: schema.add_u64_field("soc", INDEXED | FAST | STORED),
            kind: schema.add_u64_field("kind", FAST | STORED),
            text: schema.add_text_field("text", STORED),
            by_kind: KINDS.map(|(name, _)| schema.add_text_field(name, stemmed(STEMMED))),
            words: schema.add_text_field(
                "words",
                TextOptions::default().set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(PLAIN)
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions),
                ),
            ),
            exact: schema.add_text_field("exact", STRING),
        };
        let index = Index::create_in_ram(schema.build());
        let plain = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .build();
        let stemmed = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .filter(Stemmer::new(Language::English))
            .build();
        index.tokenizers().register(PLAIN, plain.clone());
        index.tokenizers().register(STEMMED, stemmed.clone());
        // One indexing thread: the index is small, and the service's cores serve queries.
        let writer = index.writer_with_num_threads(1, 30_000_000)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self(Arc::new(Inner {
            reader,
            writer: Mutex::new(writer),
            fields,
            stemmed,
            plain,
            state: RwLock::new(State::default()),
            corrector: spelling::Corrector::new(),
        })))
    }

    /// Replaces the whole index with what the store holds now.
    pub async fn rebuild(&self, db: &impl ConnectionTrait) -> Result<usize, SearchError> {
        let rows = occupations::Entity::find().all(db).await?;
        let (titles, synonyms) = reference::searchable(db, None).await?;
        let figures = figures::Entity::find()
            .filter(figures::Column::Region.eq(UK))
            .filter(figures::Column::Breakdown.eq(ALL))
            .filter(figures::Column::Measure.is_in([PAY_MEASURE, OUTLOOK_MEASURE]))
            .all(db)
            .await?;
        let mut facts = HashMap::new();
        let mut entries: HashMap<u64, Vec<Entry>> = HashMap::new();
        for row in &rows {
            if let Some(code) = soc_number(&row.soc_code) {
                facts.insert(code, facts_of(row));
                entries.insert(code, entries_of(row));
            }
        }
        for figure in figures {
            let Some(held) = soc_number(&figure.soc_code).and_then(|code| facts.get_mut(&code))
            else {
                continue;
            };
            let latest = Latest::new(
                &figure.period,
                figure.recorded_at,
                &figure.figure_id,
                (!figure.suppressed).then_some(figure.value),
            );
            if figure.measure == PAY_MEASURE {
                held.median_pay = Some(latest);
            } else {
                held.outlook = Some(latest);
            }
        }
        add_reference(&mut entries, titles, synonyms);
        let count = facts.len();
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.replace(facts, entries, true))
            .await
            .map_err(|error| SearchError::Task(error.to_string()))??;
        Ok(count)
    }

    /// Re-reads the named occupations from the store and re-indexes them.
    pub async fn reindex(
        &self,
        db: &impl ConnectionTrait,
        soc_codes: &[String],
    ) -> Result<(), SearchError> {
        let mut facts = HashMap::new();
        let mut entries: HashMap<u64, Vec<Entry>> = HashMap::new();
        for soc_code in soc_codes {
            let (Some(row), Some(code)) =
                (occupations::find(db, soc_code).await?, soc_number(soc_code))
            else {
                continue;
            };
            let (titles, synonyms) = reference::searchable(db, Some(soc_code)).await?;
            facts.insert(code, facts_of(&row));
            let mut own = HashMap::from([(code, entries_of(&row))]);
            add_reference(&mut own, titles, synonyms);
            entries.extend(own);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.replace(facts, entries, false))
            .await
            .map_err(|error| SearchError::Task(error.to_string()))?
    }

    /// Keeps the pay and outlook figures of published LMI, by the store's merge order.
    pub fn apply_figures(
        &self,
        published: &careers_proto::careers::lmi::events::v1::FiguresPublished,
    ) {
        let mut state = self.0.state.write().unwrap_or_else(PoisonError::into_inner);
        for figure in &published.figures {
            if figure.region != UK || figure.breakdown != ALL {
                continue;
            }
            let Some(held) =
                soc_number(&figure.soc_code).and_then(|code| state.facts.get_mut(&code))
            else {
                continue;
            };
            let recorded_at = figure
                .recorded_at
                .as_ref()
                .and_then(careers_proto::time::instant)
                .unwrap_or_default();
            let latest = Latest::new(
                &figure.period,
                recorded_at,
                &figure.figure_id,
                (!figure.suppressed).then_some(figure.value),
            );
            let slot = match figure.measure.as_str() {
                PAY_MEASURE => &mut held.median_pay,
                OUTLOOK_MEASURE => &mut held.outlook,
                _ => continue,
            };
            if slot.as_ref().is_none_or(|held| held.rank < latest.rank) {
                *slot = Some(latest);
            }
        }
    }

    /// Writes `entries` for the occupations in `facts` (all of them when `whole`).
    fn replace(
        &self,
        facts: HashMap<u64, Facts>,
        entries: HashMap<u64, Vec<Entry>>,
        whole: bool,
    ) -> Result<(), SearchError> {
        let inner = &self.0;
        let fields = inner.fields;
        let mut plain = inner.plain.clone();
        let mut vocabulary: HashMap<String, u32> = HashMap::new();
        let mut writer = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if whole {
            writer.delete_all_documents()?;
        }
        for (code, texts) in &entries {
            if !whole {
                writer.delete_term(Term::from_field_u64(fields.soc, *code));
            }
            for entry in texts {
                let words = tokens(&mut plain, &entry.text);
                for word in words.iter().collect::<HashSet<_>>() {
                    *vocabulary.entry(word.clone()).or_default() += 1;
                }
                let mut document = TantivyDocument::default();
                document.add_u64(fields.soc, *code);
                document.add_u64(fields.kind, entry.kind);
                document.add_text(fields.text, &entry.text);
                if let Some(field) = usize::try_from(entry.kind)
                    .ok()
                    .and_then(|kind| fields.by_kind.get(kind))
                {
                    document.add_text(*field, &entry.text);
                }
                if entry.kind <= SYNONYM {
                    document.add_text(fields.words, &entry.text);
                    document.add_text(fields.exact, words.join(" "));
                }
                writer.add_document(document)?;
            }
        }
        {
            // Facts before documents: a hit is never without its facts.
            let mut state = inner.state.write().unwrap_or_else(PoisonError::into_inner);
            if whole {
                state.facts = facts;
                state.vocabulary = vocabulary;
            } else {
                for (code, mut fresh) in facts {
                    if let Some(held) = state.facts.get(&code) {
                        fresh.median_pay = held.median_pay.clone();
                        fresh.outlook = held.outlook.clone();
                    }
                    state.facts.insert(code, fresh);
                }
                // Words only grow between rebuilds: a stale word can only correct a
                // query to one that finds less, never to a wrong occupation.
                for (word, count) in vocabulary {
                    *state.vocabulary.entry(word).or_default() += count;
                }
            }
        }
        writer.commit()?;
        drop(writer);
        inner.reader.reload()?;
        Ok(())
    }

    /// How many occupations the index holds.
    pub fn len(&self) -> usize {
        self.0
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .facts
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn kind_name(kind: u64) -> &'static str {
    usize::try_from(kind)
        .ok()
        .and_then(|kind| KINDS.get(kind))
        .map_or("title", |(name, _)| name)
}

fn soc_number(soc_code: &str) -> Option<u64> {
    careers_proto::soc::is_soc_code(soc_code)
        .then(|| soc_code.parse().ok())
        .flatten()
}

fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut tokens = Vec::new();
    while stream.advance() {
        tokens.push(stream.token().text.clone());
    }
    tokens
}

fn facts_of(row: &occupations::Model) -> Facts {
    let content = row.content();
    let stem = classify::stem(&content.soc_code);
    let mut routes: Vec<&'static str> = classify::entry_routes(&content.entry_routes_text)
        .routes
        .iter()
        .map(|route| route.kind)
        .collect();
    routes.sort_unstable();
    routes.dedup();
    Facts {
        soc_code: content.soc_code,
        title: content.title,
        major_group: content.major_group,
        minor_group: content.minor_group,
        is_stem: stem.is_stem,
        routes,
        median_pay: None,
        outlook: None,
    }
}

/// The occupation's own texts: its title, ONS related job titles, tasks and description.
fn entries_of(row: &occupations::Model) -> Vec<Entry> {
    let content = row.content();
    let mut entries = vec![Entry {
        kind: TITLE,
        text: content.title,
    }];
    entries.extend(content.related_job_titles.into_iter().map(|text| Entry {
        kind: ALTERNATIVE_TITLE,
        text,
    }));
    entries.extend(
        content
            .tasks
            .into_iter()
            .map(|text| Entry { kind: TASK, text }),
    );
    entries.push(Entry {
        kind: DESCRIPTION,
        text: content.description,
    });
    entries
}

/// Adds the coding index titles and synonyms, each distinct text once per occupation.
fn add_reference(
    entries: &mut HashMap<u64, Vec<Entry>>,
    titles: Vec<reference::AlternativeTitle>,
    synonyms: Vec<reference::Synonym>,
) {
    let mut seen: HashSet<(u64, String)> = entries
        .iter()
        .flat_map(|(code, texts)| {
            texts
                .iter()
                .filter(|entry| entry.kind <= SYNONYM)
                .map(|entry| (*code, entry.text.to_lowercase()))
        })
        .collect();
    let texts = titles
        .into_iter()
        .map(|title| (title.soc_code, ALTERNATIVE_TITLE, title.title))
        .chain(
            synonyms
                .into_iter()
                .map(|synonym| (synonym.soc_code, SYNONYM, synonym.term)),
        );
    for (soc_code, kind, text) in texts {
        let Some(code) = soc_number(&soc_code) else {
            continue;
        };
        let Some(own) = entries.get_mut(&code) else {
            continue;
        };
        if seen.insert((code, text.to_lowercase())) {
            own.push(Entry { kind, text });
        }
    }
}
