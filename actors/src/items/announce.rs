//! Items as webhook deliveries show them: as `GET /api/documents/{id}` does, without
//! where the file is stored.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::ItemView;
use crate::{
    error::EngineError,
    store::{self, Tx},
    webhooks::{About, without_nulls},
};

/// An event about an item.
#[derive(Debug, Clone)]
pub enum ItemSubject {
    /// The item as it is in the change (read after its write).
    Item(Uuid),
    /// An item the transition has at hand as written (an upload): nothing to read.
    AsWritten(Box<ItemView>),
    /// An item's new annotation revision: the item and the revision.
    Annotation { item_id: Uuid, annotation: Value },
}

impl About for ItemSubject {
    fn ordering_key(&self) -> String {
        let id = match self {
            Self::Item(id) | Self::Annotation { item_id: id, .. } => *id,
            Self::AsWritten(item) => item.id,
        };
        format!("item:{id}")
    }

    async fn describe(
        &self,
        tx: &mut Tx,
        _: Uuid,
        data: &mut Map<String, Value>,
    ) -> Result<(), EngineError> {
        match self {
            Self::Item(id) => {
                data.insert("item".into(), item_object(tx, *id).await?);
            }
            Self::AsWritten(item) => {
                data.insert("item".into(), item_value(item.as_ref().clone())?);
            }
            Self::Annotation {
                item_id,
                annotation,
            } => {
                data.insert("item".into(), item_object(tx, *item_id).await?);
                data.insert("annotation".into(), annotation.clone());
            }
        }
        Ok(())
    }
}

async fn item_object(tx: &mut Tx, id: Uuid) -> Result<Value, EngineError> {
    let row = store::items::find_live_tx(tx, id)
        .await?
        .ok_or(EngineError::NotFound { what: "item" })?;
    item_value(ItemView::from(row))
}

fn item_value(item: ItemView) -> Result<Value, EngineError> {
    let mut value = serde_json::to_value(item).map_err(EngineError::internal)?;
    if let Some(object) = value.as_object_mut() {
        // Where the file is stored is not the API's business.
        object.remove("blob_key");
        object.remove("job");
    }
    Ok(without_nulls(value))
}
