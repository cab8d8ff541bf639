//! The collector behind search and related occupations: per occupation, its best
//! documents.

use rustc_hash::FxHashMap;
use tantivy::{
    DocAddress, DocId, Score, SegmentOrdinal, SegmentReader,
    collector::{Collector, SegmentCollector},
};

/// An occupation's matching documents: where the best is, and the three best scores.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    pub(super) address: DocAddress,
    top: [Score; 3],
}

impl Found {
    /// The best document's score, plus a half of the second's and a quarter of the
    /// third's: several matching titles are evidence, with diminishing returns.
    pub(super) fn score(&self) -> Score {
        self.top[0] + 0.5 * self.top[1] + 0.25 * self.top[2]
    }

    fn add(&mut self, score: Score, address: DocAddress) {
        if score > self.top[0] {
            self.address = address;
        }
        if let Some(slot) = self.top.iter().position(|held| score > *held) {
            self.top.copy_within(slot..2, slot + 1);
            self.top[slot] = score;
        }
    }

    fn merge(&mut self, other: &Found) {
        for (position, score) in other.top.iter().enumerate() {
            if *score > 0.0 {
                let address = if position == 0 {
                    other.address
                } else {
                    self.address
                };
                self.add(*score, address);
            }
        }
    }
}

/// Keeps, per occupation, its best-scoring documents.
pub(super) struct BestPerOccupation;

pub(super) struct BestInSegment {
    segment: SegmentOrdinal,
    socs: tantivy::columnar::Column<u64>,
    best: FxHashMap<u64, Found>,
}

impl Collector for BestPerOccupation {
    type Fruit = FxHashMap<u64, Found>;
    type Child = BestInSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<BestInSegment> {
        Ok(BestInSegment {
            segment,
            socs: reader.fast_fields().u64("soc")?,
            best: FxHashMap::default(),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<FxHashMap<u64, Found>>) -> tantivy::Result<Self::Fruit> {
        let mut merged: FxHashMap<u64, Found> = FxHashMap::default();
        for fruit in fruits {
            for (code, found) in fruit {
                match merged.get_mut(&code) {
                    Some(held) => held.merge(&found),
                    None => {
                        merged.insert(code, found);
                    }
                }
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for BestInSegment {
    type Fruit = FxHashMap<u64, Found>;

    fn collect(&mut self, doc: DocId, score: Score) {
        if let Some(code) = self.socs.first(doc) {
            let address = DocAddress::new(self.segment, doc);
            self.best
                .entry(code)
                .or_insert(Found {
                    address,
                    top: [0.0; 3],
                })
                .add(score, address);
        }
    }

    fn harvest(self) -> Self::Fruit {
        self.best
    }
}
