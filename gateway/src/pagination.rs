//! Cursor pages over resources sorted by (`created_at`, id): opaque `page` tokens that point just after (next) or
//! just before (prev) an item, so pages stay stable while objects are added or removed.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jiff::Timestamp;

use crate::{error::ApiError, query::Order};

/// Where an item sorts: creation time, then id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    /// Creation time.
    pub created: Timestamp,
    /// The id, breaking ties.
    pub id: String,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct PageOut<T> {
    /// The items.
    pub data: Vec<T>,
    /// Token of the next page, `None` on the last.
    pub next_page: Option<String>,
    /// Token of the previous page, `None` on the first.
    pub prev_page: Option<String>,
}

fn encode(forward: bool, key: &SortKey) -> String {
    let raw = format!(
        "{}|{}|{}",
        if forward { "n" } else { "p" },
        key.created.as_millisecond(),
        key.id
    );
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode(token: &str) -> Result<(bool, SortKey), ApiError> {
    let invalid = || ApiError::field("page", "invalid page token");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let mut parts = raw.splitn(3, '|');
    let forward = match parts.next() {
        Some("n") => true,
        Some("p") => false,
        _ => return Err(invalid()),
    };
    let millis: i64 = parts.next().and_then(|m| m.parse().ok()).ok_or_else(invalid)?;
    let id = parts.next().ok_or_else(invalid)?.to_owned();
    let created = Timestamp::from_millisecond(millis).map_err(|_| invalid())?;
    Ok((forward, SortKey { created, id }))
}

/// Sorts `items` by `order` and cuts the page `page` (a token from an earlier page, or the first page when `None`)
/// of at most `limit` items.
pub fn paginate<T>(
    mut items: Vec<(SortKey, T)>,
    order: Order,
    limit: usize,
    page: Option<&str>,
) -> Result<PageOut<T>, ApiError> {
    items.sort_by(|a, b| match order {
        Order::Asc => a.0.cmp(&b.0),
        Order::Desc => b.0.cmp(&a.0),
    });
    let after = |item: &SortKey, mark: &SortKey| match order {
        Order::Asc => item > mark,
        Order::Desc => item < mark,
    };
    let (start, end) = match page.filter(|p| !p.is_empty()).map(decode).transpose()? {
        None => (0, limit.min(items.len())),
        Some((true, mark)) => {
            let start = items
                .iter()
                .position(|(k, _)| after(k, &mark))
                .unwrap_or(items.len());
            (start, (start + limit).min(items.len()))
        }
        Some((false, mark)) => {
            let end = items
                .iter()
                .position(|(k, _)| !after(&mark, k))
                .unwrap_or(items.len());
            (end.saturating_sub(limit), end)
        }
    };
    let next_page = (end < items.len() && end > start).then(|| encode(true, &items[end - 1].0));
    let prev_page = (start > 0 && start < items.len()).then(|| encode(false, &items[start].0));
    let data = items.drain(start..end).map(|(_, t)| t).collect();
    Ok(PageOut {
        data,
        next_page,
        prev_page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: i64) -> Vec<(SortKey, i64)> {
        (0..n)
            .map(|i| {
                let key = SortKey {
                    created: Timestamp::from_second(1000 + i / 2).unwrap(),
                    id: format!("x{i:02}"),
                };
                (key, i)
            })
            .collect()
    }

    #[test]
    fn walks_forward_and_back_in_both_orders() {
        for order in [Order::Asc, Order::Desc] {
            let mut seen = vec![];
            let mut page = None;
            let mut pages = vec![];
            loop {
                let out = paginate(items(7), order, 3, page.as_deref()).unwrap();
                seen.extend(out.data.clone());
                pages.push(out.clone());
                match out.next_page {
                    Some(next) => page = Some(next),
                    None => break,
                }
            }
            let mut expected: Vec<i64> = (0..7).collect();
            if order == Order::Desc {
                expected.reverse();
            }
            assert_eq!(seen, expected, "{order:?}");
            assert_eq!(pages.len(), 3);
            assert!(pages[0].prev_page.is_none());
            // Back from the last page gives the middle one.
            let back = paginate(items(7), order, 3, pages[2].prev_page.as_deref()).unwrap();
            assert_eq!(back.data, pages[1].data);
        }
    }

    #[test]
    fn bad_tokens_are_400() {
        let err = paginate(items(3), Order::Asc, 2, Some("!!")).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.starts_with("page:"));
        assert!(paginate(items(3), Order::Asc, 2, Some(&URL_SAFE_NO_PAD.encode("q|1|x"))).is_err());
    }

    #[test]
    fn an_empty_list_is_one_empty_page() {
        let out = paginate(Vec::<(SortKey, ())>::new(), Order::Asc, 5, None).unwrap();
        assert!(out.data.is_empty() && out.next_page.is_none() && out.prev_page.is_none());
    }
}
