//! The entity list as word tries, one per class (the corpus slot: `place`,
//! `person`, ...), for a class-based language model (Brown et al. 1992).
//!
//! The LM is trained on sentences whose names are replaced by their class
//! token ([`class_sentence`]: "weather in <place>"), and a name scores
//! `P(<place> | context) · 1/|place|` in the beam search. So a name added to
//! the list at run time is exactly as likely in its slot as a name the LM was
//! built with, and a name's words earn nothing outside a slot of its class
//! ("set a timer" cannot turn into "sagan" because Sagan is a person).

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

/// The LM token that stands for any name of `class`: `<class>`. Never a word
/// the model can spell (`<` is outside the alphabet).
pub fn class_token(class: &str) -> String {
    format!("<{class}>")
}

/// `text` (normalised words) with each `(class, name)` replaced by the class
/// token: the first not yet replaced occurrence of the name's words. Names
/// not found as whole words are left alone.
pub fn class_sentence(text: &str, names: &[(&str, &str)]) -> String {
    let mut words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    for (class, name) in names {
        let name: Vec<&str> = name.split_whitespace().collect();
        if name.is_empty() || name.len() > words.len() {
            continue;
        }
        if let Some(at) = (0..=words.len() - name.len()).find(|&i| words[i..i + name.len()].iter().eq(name.iter())) {
            words.splice(at..at + name.len(), [class_token(class)]);
        }
    }
    words.join(" ")
}

#[derive(Debug, Clone)]
struct Class {
    token: Arc<str>,
    root: u32,
    /// ln(1 / number of names): names are equally likely within a class.
    log_share: f32,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    class: u32,
    /// A whole name ends here.
    complete: bool,
}

/// Names by class, as word tries.
#[derive(Debug, Clone, Default)]
pub(crate) struct EntityTries {
    words: HashMap<String, u32>,
    /// (node, word) → child node.
    edges: HashMap<(u32, u32), u32>,
    nodes: Vec<Node>,
    classes: Vec<Class>,
}

impl EntityTries {
    /// Tries of `(class, name)` pairs (normalised names, words separated by
    /// spaces). Duplicates count once.
    pub fn new<'a>(names: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut tries = Self::default();
        let mut by_class: HashMap<&str, u32> = HashMap::default();
        let mut counts: Vec<u32> = Vec::new();
        for (class, name) in names {
            if name.split_whitespace().next().is_none() {
                continue;
            }
            let c = *by_class.entry(class).or_insert_with(|| {
                let root = tries.nodes.len() as u32;
                tries.nodes.push(Node { class: tries.classes.len() as u32, complete: false });
                tries.classes.push(Class { token: class_token(class).into(), root, log_share: 0.0 });
                counts.push(0);
                tries.classes.len() as u32 - 1
            });
            let mut node = tries.classes[c as usize].root;
            for word in name.split_whitespace() {
                let next_id = tries.words.len() as u32;
                let w = *tries.words.entry(word.to_owned()).or_insert(next_id);
                node = match tries.edges.get(&(node, w)) {
                    Some(&child) => child,
                    None => {
                        let child = tries.nodes.len() as u32;
                        tries.nodes.push(Node { class: c, complete: false });
                        tries.edges.insert((node, w), child);
                        child
                    }
                };
            }
            if !tries.nodes[node as usize].complete {
                tries.nodes[node as usize].complete = true;
                counts[c as usize] += 1;
            }
        }
        for (class, n) in tries.classes.iter_mut().zip(counts) {
            class.log_share = -(n.max(1) as f32).ln();
        }
        tries
    }

    /// Every word of every name.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.words.keys().map(String::as_str)
    }

    pub fn word_id(&self, word: &str) -> Option<u32> {
        self.words.get(word).copied()
    }

    /// The class tokens (`<place>`), by class number.
    pub fn class_tokens(&self) -> impl Iterator<Item = &Arc<str>> {
        self.classes.iter().map(|c| &c.token)
    }

    /// Names that `word` begins: (class number, ln share of a name in its
    /// class, node after the word), one per class.
    pub fn starts(&self, word: u32) -> impl Iterator<Item = (u32, f32, u32)> {
        self.classes
            .iter()
            .enumerate()
            .filter_map(move |(i, c)| self.edges.get(&(c.root, word)).map(|&n| (i as u32, c.log_share, n)))
    }

    /// The node after `word` within a name, if a name goes on that way.
    pub fn next(&self, node: u32, word: u32) -> Option<u32> {
        self.edges.get(&(node, word)).copied()
    }

    /// Whether a whole name ends at `node`.
    pub fn is_complete(&self, node: u32) -> bool {
        self.nodes[node as usize].complete
    }

    /// The class number of the name that `node` is in.
    pub fn class_of(&self, node: u32) -> u32 {
        self.nodes[node as usize].class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_their_class_token() {
        let s = class_sentence("flights from new york to paris", &[("place", "new york"), ("place", "paris")]);
        assert_eq!(s, "flights from <place> to <place>");
        // The same name twice is replaced twice; a missing name is ignored.
        let s = class_sentence("paris vs paris", &[("place", "paris"), ("place", "paris"), ("person", "ada")]);
        assert_eq!(s, "<place> vs <place>");
        // Whole words only.
        assert_eq!(class_sentence("parisian food", &[("place", "paris")]), "parisian food");
    }

    #[test]
    fn tries_follow_multi_word_names_per_class() {
        let t =
            EntityTries::new([("place", "new york"), ("place", "new delhi"), ("place", "paris"), ("person", "paris")]);
        let new = t.word_id("new").unwrap();
        let starts: Vec<_> = t.starts(new).collect();
        assert_eq!(starts.len(), 1);
        let (class, share, node) = starts[0];
        let tokens: Vec<&str> = t.class_tokens().map(|c| &**c).collect();
        assert_eq!(tokens[class as usize], "<place>");
        assert_eq!(t.class_of(node), class);
        assert!((share - (1.0f32 / 3.0).ln()).abs() < 1e-6);
        assert!(!t.is_complete(node));
        let york = t.next(node, t.word_id("york").unwrap()).unwrap();
        assert!(t.is_complete(york));
        assert_eq!(t.next(node, t.word_id("paris").unwrap()), None);
        // "paris" is a place and a person: one start per class.
        let classes: Vec<&str> = t.starts(t.word_id("paris").unwrap()).map(|s| tokens[s.0 as usize]).collect();
        assert_eq!(classes.len(), 2, "{classes:?}");
        assert_eq!(t.starts(t.word_id("paris").unwrap()).filter(|s| t.is_complete(s.2)).count(), 2);
    }
}
