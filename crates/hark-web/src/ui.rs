//! The page's components, named after what a person sees. Each takes the
//! state it shows as props; the state itself is owned by [`crate::App`].

mod engine_status;
mod history;
mod mic_button;
mod results;
mod settings_panel;
mod transcript;
mod update_banner;

pub use engine_status::{AboutModel, EngineStatus};
pub use history::History;
pub use mic_button::{LevelMeter, MicButton, MicError};
pub use results::{Results, SearchResults};
pub use settings_panel::SettingsPanel;
pub use transcript::Transcript;
pub use update_banner::UpdateBanner;
