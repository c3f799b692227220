//! Streaming of values made of many ciphertexts: a contribution, an aggregate to decrypt, and
//! its decryption shares travel as streams of messages of the same protobuf type, one
//! ciphertext (or share) per message, so that every message stays far below
//! [`MAX_MESSAGE_BYTES`](crate::tls::MAX_MESSAGE_BYTES) whatever the size of the query. The
//! first message carries every other field; [`Chunked::split`] and [`collect`] are each
//! other's inverse.

use crate::v1::{
    CombineRequest, Contribution, DecryptRequest, DecryptShares, PinRequest, RelinearizeRequest,
    Resharings,
};
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

/// A message whose repeated part can be sent one element per message.
pub trait Chunked: Sized {
    /// How many elements (ciphertexts or shares) the message carries.
    fn parts(&self) -> usize;
    /// One message per element; the first keeps every other field (an empty value is one
    /// message).
    fn split(self) -> Vec<Self>;
    /// Appends the elements of a later message.
    fn join(&mut self, next: Self) -> Result<(), Status>;
    /// Message `k` of [`Self::split`], made from a borrowed whole: element `k` alone, and for
    /// `k = 0` every other field too.
    fn message(&self, k: usize) -> Self;
}

macro_rules! chunked {
    ($message:ty, $parts:ident $(, $field:ident)*) => {
        impl Chunked for $message {
            fn parts(&self) -> usize {
                self.$parts.len()
            }
            fn split(mut self) -> Vec<Self> {
                let mut parts = std::mem::take(&mut self.$parts).into_iter();
                let mut first = self;
                first.$parts.extend(parts.next());
                std::iter::once(first)
                    .chain(parts.map(|part| {
                        let mut later = Self::default();
                        later.$parts.push(part);
                        later
                    }))
                    .collect()
            }
            fn message(&self, k: usize) -> Self {
                let mut out = if k == 0 {
                    Self {
                        $parts: Vec::new(),
                        $($field: self.$field.clone()),*
                    }
                } else {
                    Self::default()
                };
                out.$parts.extend(self.$parts.get(k).cloned());
                out
            }
            fn join(&mut self, next: Self) -> Result<(), Status> {
                let Self { $parts, $($field),* } = next;
                if false $(|| $field != Self::default().$field)* {
                    return Err(Status::invalid_argument(concat!(
                        "a later message of a streamed ",
                        stringify!($message),
                        " may carry only ",
                        stringify!($parts)
                    )));
                }
                self.$parts.extend($parts);
                Ok(())
            }
        }
    };
}

chunked!(Contribution, ciphertexts, roster_signature);
chunked!(
    DecryptRequest,
    ciphertexts,
    query_id,
    roster,
    roster_signatures,
    active_parties
);
chunked!(DecryptShares, shares);
chunked!(Resharings, sealed);
chunked!(CombineRequest, sealed, setup);
chunked!(PinRequest, shares, deployment);
chunked!(RelinearizeRequest, shares, deployment, parties, sealed);

/// Reassembles a streamed message. `limit` sees the first message and says how many elements
/// the whole may have; a stream with more, or with none at all, is an error.
pub async fn collect<T: Chunked>(
    stream: impl Stream<Item = Result<T, Status>>,
    limit: impl FnOnce(&T) -> Result<usize, Status>,
) -> Result<T, Status> {
    tokio::pin!(stream);
    let mut whole = stream
        .next()
        .await
        .ok_or_else(|| Status::invalid_argument("empty stream"))??;
    let limit = limit(&whole)?;
    loop {
        if whole.parts() > limit {
            return Err(Status::invalid_argument(format!(
                "more than the {limit} ciphertexts expected"
            )));
        }
        match stream.next().await {
            Some(next) => whole.join(next?)?,
            None => return Ok(whole),
        }
    }
}

/// A message as a stream of its parts, for a streamed request.
pub fn stream<T: Chunked>(message: T) -> tokio_stream::Iter<std::vec::IntoIter<T>> {
    tokio_stream::iter(message.split())
}

/// A shared message as a stream of its parts, each made only when the stream is polled: one
/// whole in memory however many receivers stream it (the coordinator sends every contribution
/// to every releasing node).
pub fn shared_stream<T: Chunked + Send + Sync + 'static>(
    message: std::sync::Arc<T>,
) -> impl Stream<Item = T> + Send + 'static {
    tokio_stream::iter(0..message.parts().max(1)).map(move |k| message.message(k))
}

/// The stream type of a streamed reply.
pub type Replies<T> = tokio_stream::Iter<std::vec::IntoIter<Result<T, Status>>>;

/// A message as a stream of its parts, for a streamed reply.
pub fn replies<T: Chunked>(message: T) -> Replies<T> {
    tokio_stream::iter(message.split().into_iter().map(Ok).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::Commitment;

    fn ok<T>(items: Vec<T>) -> impl Stream<Item = Result<T, Status>> {
        tokio_stream::iter(items.into_iter().map(Ok))
    }

    #[tokio::test]
    async fn split_and_collect_are_inverse_and_bounded() {
        let request = DecryptRequest {
            query_id: "q".into(),
            ciphertexts: vec![vec![1; 10], vec![2; 20], vec![3]],
            roster: vec![Commitment::default(); 3],
            roster_signatures: vec![vec![5; 64]; 3],
            active_parties: vec![1, 2],
        };
        let parts = request.clone().split();
        assert_eq!(parts.len(), 3);
        assert!(parts[1..]
            .iter()
            .all(|p| p.query_id.is_empty() && p.roster.is_empty()));
        assert_eq!(
            collect(ok(parts.clone()), |_| Ok(3)).await.unwrap(),
            request
        );
        // too many ciphertexts, an empty stream, a later message with header fields
        let err = collect(ok(parts.clone()), |_| Ok(2)).await.unwrap_err();
        assert!(err.message().contains("more than the 2"), "{err}");
        assert!(collect(ok(Vec::<DecryptRequest>::new()), |_| Ok(3))
            .await
            .is_err());
        let mut bad = parts.clone();
        bad[2].active_parties = vec![9];
        let err = collect(ok(bad), |_| Ok(3)).await.unwrap_err();
        assert!(
            err.message().contains("may carry only ciphertexts"),
            "{err}"
        );
        // the limit sees the first message and may refuse
        let err = collect(ok(parts), |first| {
            Err(Status::not_found(first.query_id.clone()))
        })
        .await
        .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        // an empty value is one message
        let empty = Contribution {
            ciphertexts: vec![],
            roster_signature: vec![5],
        };
        assert_eq!(empty.clone().split(), vec![empty]);
        let shares = DecryptShares {
            shares: vec![vec![1], vec![2]],
        };
        assert_eq!(
            collect(replies(shares.clone()), |_| Ok(2)).await.unwrap(),
            shares
        );
    }
}
