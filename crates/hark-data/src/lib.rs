//! hark's data: the voice-search query corpus, the text normaliser that every
//! piece of model text goes through, augmentation, and the dataset manifest.
//! Speech synthesis itself (running the Debian synthesizers) is in `hark-cli`.
//!
//! Entry points: [`Corpus`] (templates × entities, unseen-name splits),
//! [`normalize`](normalize::normalize), [`corpus::new_names`] (the drift pool),
//! [`augment`] (noises, channels, SNR mixing, SpecAugment), [`manifest`]
//! (JSONL dataset format, loader, stats), [`catalogue`] (the app's local
//! search index of the corpus's entities), [`text`] (the free-form evaluation
//! set and the English training text: text no template produced).

pub mod augment;
pub mod catalogue;
pub mod corpus;
pub mod manifest;
pub mod normalize;
pub mod text;

pub use corpus::{Corpus, Query, Split};
pub use normalize::normalize;
