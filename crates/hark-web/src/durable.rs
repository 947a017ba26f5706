//! The telemetry queue's durable copy: IndexedDB database `hark-telemetry`,
//! object store `events`, one record per waiting event keyed by its
//! `event_id` (the [`Entry`] as a plain object). The page applies the
//! queue's [`Change`]s here in order, each batch of them in one
//! transaction, so what waits survives a reload, a crash or an offline
//! day. Uses the `idb` crate (futures over the IndexedDB request API).

use hark_web::outbox::{Change, Entry};
use idb::event::DatabaseEvent;
use idb::{Database, Factory, KeyPath, ObjectStoreParams, TransactionMode};
use serde::Serialize;
use wasm_bindgen::JsValue;

const DATABASE: &str = "hark-telemetry";
const EVENTS: &str = "events";
const VERSION: u32 = 1;

pub struct Durable {
    db: Database,
}

fn explain(what: &str, e: impl std::fmt::Debug) -> String {
    format!("IndexedDB could not {what}: {e:?}")
}

impl Durable {
    /// Opens (creating on first use) the database.
    pub async fn open() -> Result<Self, String> {
        let factory = Factory::new().map_err(|e| explain("be reached", e))?;
        let mut request = factory.open(DATABASE, Some(VERSION)).map_err(|e| explain("open the queue", e))?;
        request.on_upgrade_needed(|event| {
            let Ok(db) = event.database() else { return };
            if !db.store_names().iter().any(|n| n == EVENTS) {
                let mut params = ObjectStoreParams::new();
                params.key_path(Some(KeyPath::new_single("event_id")));
                let _ = db.create_object_store(EVENTS, params);
            }
        });
        let db = request.await.map_err(|e| explain("open the queue", e))?;
        Ok(Self { db })
    }

    /// Every stored entry (any order); records that cannot be read (a
    /// newer app's format) are left out, and named in the second value.
    pub async fn load(&self) -> Result<(Vec<Entry>, usize), String> {
        let tx = self.db.transaction(&[EVENTS], TransactionMode::ReadOnly).map_err(|e| explain("read", e))?;
        let store = tx.object_store(EVENTS).map_err(|e| explain("read", e))?;
        let values =
            store.get_all(None, None).map_err(|e| explain("read", e))?.await.map_err(|e| explain("read", e))?;
        let total = values.len();
        let entries: Vec<Entry> =
            values.into_iter().filter_map(|v| serde_wasm_bindgen::from_value::<Entry>(v).ok()).collect();
        let unreadable = total - entries.len();
        Ok((entries, unreadable))
    }

    /// Applies `changes`, in order, in one transaction.
    pub async fn apply(&self, changes: &[Change]) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self.db.transaction(&[EVENTS], TransactionMode::ReadWrite).map_err(|e| explain("write", e))?;
        let store = tx.object_store(EVENTS).map_err(|e| explain("write", e))?;
        let serializer = serde_wasm_bindgen::Serializer::json_compatible();
        for change in changes {
            match change {
                Change::Put(entry) => {
                    let value = entry.serialize(&serializer).map_err(|e| explain("encode an event", e))?;
                    store.put(&value, None).map_err(|e| explain("write", e))?;
                }
                Change::Delete(keys) => {
                    for key in keys {
                        store.delete(JsValue::from_str(key)).map_err(|e| explain("delete", e))?;
                    }
                }
                Change::Clear => {
                    store.clear().map_err(|e| explain("clear the queue", e))?;
                }
            }
        }
        let done = tx.commit().map_err(|e| explain("commit", e))?.await.map_err(|e| explain("commit", e))?;
        if done.is_committed() { Ok(()) } else { Err("IndexedDB aborted the queue's transaction".into()) }
    }
}
