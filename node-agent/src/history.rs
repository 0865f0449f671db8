//! Finished objects, read from the API when a reconciler needs them rather than kept in the
//! watch caches (which hold unfinished work only, so an agent's memory does not grow with the
//! history): lists by label for the few that concern one piece of work, and paged lists for
//! the leader's occasional sweeps (expiry, repository sync).

use std::fmt::Debug;

use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

/// Objects per page of a sweep: at most this many are held at once.
const PAGE: u32 = 250;

/// Every object `api` lists with `labels` (a label selector; every object when empty),
/// page by page, each handed to `each`.
pub async fn each_page<K>(
    api: &Api<K>,
    labels: &str,
    mut each: impl FnMut(Vec<K>),
) -> Result<(), kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let mut params = ListParams::default().limit(PAGE);
    if !labels.is_empty() {
        params = params.labels(labels);
    }
    loop {
        let page = api.list(&params).await?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        each(page.items);
        match next {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}

/// Every object `api` lists with `labels`, collected.
pub async fn all<K>(api: Api<K>, labels: &str) -> Result<Vec<K>, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let mut out = Vec::new();
    each_page(&api, labels, |page| out.extend(page)).await?;
    Ok(out)
}
