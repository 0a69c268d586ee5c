//! What every batch shares: one `Item` per request item (its record, its early error), the
//! batch's bounds, and its records written with one sync and counted item by item.

use super::{Call, Rpc, Service};
use crate::audit::{Outcome, Record};
use crate::error::Error;

impl Service {
    /// Refuses a batch that is late or has more items than allowed (no record: nothing was
    /// attempted).
    pub(super) fn check_batch(&self, call: &Call, items: usize) -> Result<(), Error> {
        Self::in_time(call)?;
        if items > self.max_batch_items {
            return Err(Error::ResourceExhausted(format!(
                "the batch has {items} items; at most {} are allowed",
                self.max_batch_items
            )));
        }
        Ok(())
    }

    /// Writes a batch's records (one per item, one sync) and counts each item.
    pub(super) async fn finish_items(
        &self,
        call: &Call,
        rpc: Rpc,
        items: Vec<Item>,
    ) -> Result<(), Error> {
        let counted: Vec<(Rpc, String, &'static str)> = items
            .iter()
            .map(|i| (rpc, i.record.key_id.clone(), i.record.code))
            .collect();
        self.write(call, items.into_iter().map(|i| i.record).collect())
            .await?;
        self.count_items(&counted);
        Ok(())
    }
}

/// One batch item on its way through the gate: its record, and the error found before the
/// HSM, if any.
pub(super) struct Item {
    pub(super) record: Record,
    pub(super) key_id: String,
    pub(super) crc32c_checked: bool,
    pub(super) early: Option<Error>,
}

/// Pairs each item with its result: its early error, or the next HSM result (in order), and
/// settles its record.
pub(super) fn settle_items<T, R>(
    service: &Service,
    items: &mut [Item],
    done: Vec<Result<T, Error>>,
    mut answer: impl FnMut(&mut Item, T) -> R,
) -> Vec<Result<R, Error>> {
    let mut done = done.into_iter();
    items
        .iter_mut()
        .map(|item| {
            let result = match item.early.take() {
                Some(e) => Err(e),
                None => done
                    .next()
                    .unwrap_or_else(|| Err(Error::Internal("a batch item got no result".into()))),
            };
            if item.record.outcome != Outcome::Denied {
                service.settle(&mut item.record, &result);
            }
            result.map(|value| answer(item, value))
        })
        .collect()
}
