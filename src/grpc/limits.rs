//! The size bound of a whole `SignBatch`: its items' messages count together against
//! `limits.max_message_bytes`, as one `Sign`'s message does.
//!
//! Why together and not each: `max_message_bytes` is what an operator allows one call to make
//! the agent hold and sign. Counted per item, one batch could carry `max_batch_items` times
//! that (1000 MiB with the defaults), more than `limits.max_queued_bytes` holds, so an
//! accepted batch would fail item by item on an idle agent. Counted together, a batch within
//! the bound always fits the queue's byte budget (which is at least `max_message_bytes`), and
//! the encoded request fits tonic's decoding limit (`max_message_bytes` + 64 KiB for key ids
//! and framing) unless its key ids alone take more than that room.

use crate::error::Error;
use crate::grpc::proto::SignBatchRequest;

/// Refuses, with `RESOURCE_EXHAUSTED`, a batch whose items' messages total more than
/// `max_message_bytes`; nothing of such a batch may be signed. Call it before any item is
/// authorised or audited, like the item-count check.
pub fn check_batch_bytes(
    request: &SignBatchRequest,
    max_message_bytes: usize,
) -> Result<(), Error> {
    let total = request
        .items
        .iter()
        .fold(0usize, |sum, item| sum.saturating_add(item.message.len()));
    if total > max_message_bytes {
        return Err(Error::ResourceExhausted(format!(
            "the batch's messages total {total} bytes, over this agent's limit of \
             {max_message_bytes} bytes for one request; nothing was signed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::grpc::proto::SignRequest;

    fn batch(sizes: &[usize]) -> SignBatchRequest {
        SignBatchRequest {
            items: sizes
                .iter()
                .map(|&n| SignRequest {
                    key_id: "ed".into(),
                    message: vec![7; n],
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn the_messages_of_a_batch_count_together() {
        assert!(check_batch_bytes(&batch(&[]), 100).is_ok());
        assert!(check_batch_bytes(&batch(&[100]), 100).is_ok());
        assert!(check_batch_bytes(&batch(&[40, 0, 60]), 100).is_ok());
        for over in [&[101][..], &[40, 61], &[1; 101]] {
            let err = check_batch_bytes(&batch(over), 100).expect_err("over the bound");
            assert_eq!(err.kind(), ErrorKind::ResourceExhausted);
        }
        let err = check_batch_bytes(&batch(&[60, 41]), 100).expect_err("101 bytes");
        assert_eq!(
            err.to_string(),
            "the batch's messages total 101 bytes, over this agent's limit of 100 bytes for \
             one request; nothing was signed"
        );
    }
}
