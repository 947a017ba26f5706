//! "A new version of hark is ready": shown when an update of the app waits.

use leptos::prelude::*;

use crate::pwa::Updates;

#[component]
pub fn UpdateBanner(updates: Updates) -> impl IntoView {
    view! {
        <Show when=move || updates.ready.get()>
            <div id="update-banner" role="status" class="banner">
                "A new version of hark is ready. "
                <button id="reload" type="button" on:click=move |_| updates.activate()>"Reload to update"</button>
            </div>
        </Show>
    }
}
