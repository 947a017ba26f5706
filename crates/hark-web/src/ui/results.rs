//! A search's results: hits in hark's own catalogue (on this device, so
//! they work offline) and a link to search the web.

use leptos::prelude::*;

/// A search that was run.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    pub query: String,
    /// Catalogue hits: name and kind.
    pub hits: Vec<(String, &'static str)>,
    /// The web-search link for the query.
    pub web: String,
}

#[component]
pub fn Results(results: ReadSignal<Option<SearchResults>>, online: ReadSignal<bool>) -> impl IntoView {
    view! {
        <Show when=move || results.with(Option::is_some)>
            <section id="results" aria-label="Search results">
                <h2>{move || results.get().map(|r| format!("Results for “{}”", r.query)).unwrap_or_default()}</h2>
                <Show when=move || !online.get()>
                    <p id="offline-note">"You are offline: these results come from hark's own catalogue on this device."</p>
                </Show>
                <ul id="local-results">
                    <For each=move || results.get().map(|r| r.hits).unwrap_or_default() key=|h| h.0.clone() let(h)>
                        <li><span class="kind">{h.1}</span>" "{h.0}</li>
                    </For>
                </ul>
                <Show when=move || results.with(|r| r.as_ref().is_some_and(|r| r.hits.is_empty()))>
                    <p class="muted">"Nothing in hark's catalogue matches."</p>
                </Show>
                <Show when=move || online.get()>
                    <p><a id="web-search" target="_blank" rel="noopener noreferrer" href=move || results.get().map(|r| r.web).unwrap_or_default()>
                        {move || results.get().map(|r| format!("Search the web for “{}”", r.query)).unwrap_or_default()}
                    </a></p>
                </Show>
            </section>
        </Show>
    }
}
