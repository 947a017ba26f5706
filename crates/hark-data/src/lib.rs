//! hark's data: the voice-search query corpus and the text normaliser that
//! every piece of model text goes through, plus (coming in this crate)
//! augmentation and the dataset manifest.
//!
//! Entry points: [`Corpus`] (templates × entities, unseen-name splits),
//! [`normalize`](normalize::normalize), [`corpus::new_names`] (the drift pool).

pub mod augment;
pub mod corpus;
pub mod normalize;

pub use corpus::{Corpus, Query, Split};
pub use normalize::normalize;
