//! Phone output symbols and the pronunciation lexicon that turns words into
//! them (training targets) and phone strings back into words (decoding).
//!
//! The phone set is festival's US English set (CMUdict's 39 ARPAbet phones
//! with schwa `ax` apart from `ah`: 40), the one Debian's `festlex-cmu`
//! lexicon and festival's letter-to-sound rules write, so one tool gives a
//! pronunciation to every word, in a dictionary or not (`hark lexicon`).
//! Symbols 0 (CTC blank) and 2 (word boundary) mean the same as in
//! [`crate::Alphabet`], so the search code is shared; symbol 1 is never a
//! target.

use std::collections::HashMap;
use std::sync::Arc;

/// Which symbols an acoustic model writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Units {
    /// Letters, apostrophe and space ([`crate::Alphabet`]).
    #[default]
    Letters,
    /// Phones and a word boundary ([`Phones`]), read back into words through
    /// a pronunciation [`Lexicon`].
    Phones,
}

impl Units {
    /// Whether these are letters (the default; for `skip_serializing_if`).
    pub fn is_letters(&self) -> bool {
        *self == Units::Letters
    }

    /// Output symbols, blank included.
    pub fn size(self) -> usize {
        match self {
            Units::Letters => crate::Alphabet::SIZE,
            Units::Phones => Phones::SIZE,
        }
    }

    /// A symbol as text: a letter, or a phone's name followed by a space
    /// (word boundaries as `| `).
    pub fn render(self, symbols: &[u32]) -> String {
        match self {
            Units::Letters => symbols.iter().map(|&s| crate::Alphabet::char_of(s)).collect(),
            Units::Phones => {
                let names: Vec<&str> = symbols.iter().map(|&s| Phones::name_of(s)).collect();
                names.join(" ")
            }
        }
    }
}

/// The phone symbol table.
pub struct Phones;

impl Phones {
    /// festival's US English phones (`radio` phone set, no pauses).
    pub const NAMES: [&'static str; 40] = [
        "aa", "ae", "ah", "ao", "aw", "ax", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g", "hh", "ih", "iy",
        "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th", "uh", "uw", "v", "w", "y", "z",
        "zh",
    ];
    /// Blank, one unused symbol, the word boundary, then [`Phones::NAMES`].
    pub const SIZE: usize = 3 + Self::NAMES.len();
    const FIRST: u32 = 3;

    /// Symbol of a phone name (`"k"`); `"|"` is the word boundary.
    pub fn symbol_of(name: &str) -> Option<u32> {
        if name == "|" {
            return Some(crate::Alphabet::SPACE);
        }
        Self::NAMES.iter().position(|&n| n == name).map(|i| Self::FIRST + i as u32)
    }

    /// Name of a non-blank symbol (`"|"` for the word boundary).
    pub fn name_of(symbol: u32) -> &'static str {
        match symbol {
            crate::Alphabet::SPACE => "|",
            s if (Self::FIRST..Self::SIZE as u32).contains(&s) => Self::NAMES[(s - Self::FIRST) as usize],
            _ => "?",
        }
    }
}

/// Words and their pronunciations, both ways.
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    /// Each word's pronunciations, most usual first.
    words: HashMap<Arc<str>, Vec<Vec<u32>>>,
}

/// A lexicon file line that is not `WORD<TAB>PHONES`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexiconError {
    #[error("line {line}: expected WORD<TAB>PHONES (e.g. \"cat\tk ae t\"), got {text:?}")]
    Line { line: usize, text: String },
    #[error("line {line}: {phone:?} is not a phone of festival's US English set (aa ae ah … zh)")]
    Phone { line: usize, phone: String },
}

/// A word the lexicon has no pronunciation for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the word {0:?} has no pronunciation in the lexicon; rebuild it with `hark lexicon` over this text")]
pub struct MissingWord(pub String);

impl Lexicon {
    /// Reads `WORD<TAB>PHONE PHONE …` lines (a word may have several lines,
    /// most usual first; `#` starts a comment line).
    pub fn parse(text: &str) -> Result<Self, LexiconError> {
        let mut lexicon = Self::default();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((word, phones)) = line.split_once('\t').filter(|(w, p)| !w.is_empty() && !p.trim().is_empty())
            else {
                return Err(LexiconError::Line { line: line_no, text: line.to_owned() });
            };
            let symbols = phones
                .split_whitespace()
                .map(|p| {
                    Phones::symbol_of(p)
                        .filter(|&s| s != crate::Alphabet::SPACE)
                        .ok_or_else(|| LexiconError::Phone { line: line_no, phone: p.to_owned() })
                })
                .collect::<Result<Vec<u32>, _>>()?;
            lexicon.insert(word, symbols);
        }
        Ok(lexicon)
    }

    /// Adds a pronunciation of `word` (after the ones it has).
    pub fn insert(&mut self, word: &str, phones: Vec<u32>) {
        let list = self.words.entry(word.into()).or_default();
        if !list.contains(&phones) {
            list.push(phones);
        }
    }

    /// The lexicon as `parse` reads it, words sorted.
    pub fn to_text(&self) -> String {
        let mut words: Vec<&Arc<str>> = self.words.keys().collect();
        words.sort();
        let mut out = String::new();
        for w in words {
            for p in &self.words[w] {
                out.push_str(w);
                out.push('\t');
                out.push_str(&Units::Phones.render(p));
                out.push('\n');
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn contains(&self, word: &str) -> bool {
        self.words.contains_key(word)
    }

    /// A word's pronunciations, most usual first.
    pub fn pronunciations(&self, word: &str) -> &[Vec<u32>] {
        self.words.get(word).map_or(&[], Vec::as_slice)
    }

    /// Every `(word, pronunciation)`.
    pub fn entries(&self) -> impl Iterator<Item = (&Arc<str>, &Vec<u32>)> {
        self.words.iter().flat_map(|(w, ps)| ps.iter().map(move |p| (w, p)))
    }

    /// CTC targets of a normalised sentence: each word's first
    /// pronunciation, words apart by the boundary symbol.
    pub fn encode(&self, sentence: &str) -> Result<Vec<u32>, MissingWord> {
        let mut out = Vec::new();
        for word in sentence.split(' ').filter(|w| !w.is_empty()) {
            let phones = self.pronunciations(word).first().ok_or_else(|| MissingWord(word.to_owned()))?;
            if !out.is_empty() {
                out.push(crate::Alphabet::SPACE);
            }
            out.extend_from_slice(phones);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_symbols_round_trip_and_keep_blank_and_boundary() {
        for s in 3..Phones::SIZE as u32 {
            assert_eq!(Phones::symbol_of(Phones::name_of(s)), Some(s));
        }
        assert_eq!(Phones::symbol_of("|"), Some(crate::Alphabet::SPACE));
        assert_eq!(Phones::symbol_of("xx"), None);
        assert_eq!(Units::Phones.size(), 43);
    }

    #[test]
    fn a_lexicon_encodes_sentences_and_names_what_it_lacks() {
        let lexicon = Lexicon::parse("# test\ncat\tk ae t\nthe\tdh ax\nthe\tdh iy\n").unwrap();
        let targets = lexicon.encode("the cat").unwrap();
        assert_eq!(Units::Phones.render(&targets), "dh ax | k ae t");
        assert_eq!(lexicon.pronunciations("the").len(), 2);
        assert_eq!(lexicon.encode("the dog"), Err(MissingWord("dog".into())));
        assert_eq!(Lexicon::parse(&lexicon.to_text()).unwrap().to_text(), lexicon.to_text());
        assert!(matches!(Lexicon::parse("cat k ae t"), Err(LexiconError::Line { line: 1, .. })));
        assert!(matches!(Lexicon::parse("cat\tk q t"), Err(LexiconError::Phone { line: 1, .. })));
    }
}
