//! The app's own search catalogue: every open-class entity of the corpus
//! (places, people, organisations, landmarks, products, streets), which the
//! browser searches locally — the results a person gets when offline, next
//! to the web-search link.
//!
//! Matching is on [`normalize`]d words: an entry ranks by the share of its
//! words the query contains, and a query word of three or more letters also
//! matches as the start of an entry word ("lisb" finds Lisbon), so results
//! appear while a person types.

use crate::corpus::Corpus;
use crate::normalize::normalize;

/// One thing the catalogue knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// As written in the corpus ("Baker Street").
    pub name: String,
    /// Entity kind, the corpus slot ("place", "person", ...).
    pub kind: &'static str,
    words: Vec<String>,
}

/// Every open-class entity name, searchable.
#[derive(Debug, Clone)]
pub struct Catalogue {
    entries: Vec<Entry>,
}

impl Catalogue {
    pub fn from_corpus(corpus: &Corpus) -> Self {
        let entries = corpus
            .open_names()
            .map(|(kind, name, _)| Entry {
                name: name.to_owned(),
                kind,
                words: normalize(name).split_whitespace().map(str::to_owned).collect(),
            })
            .filter(|e| !e.words.is_empty())
            .collect();
        Self { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries matching `query`, best first, at most `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Vec<&Entry> {
        let query = normalize(query);
        let words: Vec<&str> = query.split_whitespace().collect();
        if words.is_empty() {
            return Vec::new();
        }
        let mut scored: Vec<(f32, &Entry)> = self
            .entries
            .iter()
            .filter_map(|entry| {
                let matched = entry
                    .words
                    .iter()
                    .map(|w| {
                        if words.contains(&w.as_str()) {
                            1.0
                        } else if words.iter().any(|q| q.len() >= 3 && w.starts_with(q)) {
                            0.5
                        } else {
                            0.0
                        }
                    })
                    .sum::<f32>();
                (matched > 0.0).then(|| (matched / entry.words.len() as f32, entry))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
        scored.into_iter().take(limit).map(|(_, e)| e).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the page builds it: from the entity lists alone.
    fn catalogue() -> Catalogue {
        Catalogue::from_corpus(&Corpus::entity_lists())
    }

    #[test]
    fn holds_every_open_name_and_no_closed_list() {
        let c = catalogue();
        let corpus = Corpus::load();
        assert!(Corpus::entity_lists().templates().is_empty() && !corpus.templates().is_empty());
        assert_eq!(c.len(), corpus.open_names().count());
        assert_eq!(c.len(), Catalogue::from_corpus(&corpus).len());
        assert!(c.entries.iter().all(|e| e.kind != "day" && e.kind != "unit"));
    }

    #[test]
    fn a_spoken_query_finds_the_entity_it_names() {
        let c = catalogue();
        let hits = c.search("weather in lisbon tomorrow", 5);
        assert_eq!(hits.first().map(|e| (e.name.as_str(), e.kind)), Some(("lisbon", "place")), "{hits:?}");
    }

    #[test]
    fn full_matches_rank_before_partial_ones_and_prefixes_match_while_typing() {
        let c = catalogue();
        let street = c.entries.iter().find(|e| e.kind == "street" && e.words.len() >= 2).expect("a street");
        let hits = c.search(&format!("directions to {}", street.name), 10);
        assert_eq!(hits.first().map(|e| &e.name), Some(&street.name), "{hits:?}");
        let prefix = &street.words[0][..3];
        assert!(c.search(prefix, 100).iter().any(|e| e.name == street.name), "prefix {prefix:?}");
    }

    #[test]
    fn nothing_matches_nothing() {
        let c = catalogue();
        assert!(c.search("", 5).is_empty());
        assert!(c.search("   ", 5).is_empty());
        assert!(c.search("zzqx", 5).is_empty());
        assert!(c.search("lisbon", 0).is_empty());
    }
}
