//! A researcher's privacy budget as every node keeps it: each node answers for its own
//! institution's data (`Node.Budget`), the coordinator only gathers the answers. Nothing in it
//! is new to the coordinator, which sees every DP query's terms.

use crate::pool::next;
use crate::Coordinator;
use concord_api::v1::{BudgetList, BudgetRequest};

impl Coordinator {
    /// `researcher`'s spending at every node; a node that does not answer is named with why.
    pub async fn budgets(&self, researcher: &str) -> BudgetList {
        let request = BudgetRequest {
            researcher: researcher.into(),
        };
        let mut calls = self.pool.call_each(
            0..self.pool.len(),
            |_| request.clone(),
            |mut client, request| async move { client.budget(request).await },
        );
        let mut list = BudgetList::default();
        while let Some((i, reply)) = next(&mut calls).await {
            match reply {
                Ok(report) => list.nodes.push(report),
                Err(e) => list.unreachable.push(format!("{}: {e}", self.pool.name(i))),
            }
        }
        list.nodes.sort_by(|a, b| a.node.cmp(&b.node));
        list.unreachable.sort();
        list
    }
}
