//! Recent searches (this visit), each one click from running again.

use leptos::prelude::*;

#[component]
pub fn History<F>(history: ReadSignal<Vec<String>>, on_pick: F) -> impl IntoView
where
    F: Fn(String) + Copy + Send + Sync + 'static,
{
    view! {
        <Show when=move || !history.with(Vec::is_empty)>
            <section aria-label="Recent searches">
                <h2>"Recent searches"</h2>
                <ul id="history">
                    <For each=move || history.get() key=|q| q.clone() let(q)>
                        <li><button type="button" class="link" on:click={ let q = q.clone(); move |_| on_pick(q.clone()) }>{q.clone()}</button></li>
                    </For>
                </ul>
            </section>
        </Show>
    }
}
