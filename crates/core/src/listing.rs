//! Pages of records, read from the index snapshot.
//!
//! A page is defined by a position, not an offset: the sort key and name of
//! the last record shown. Records created or deleted between two requests
//! therefore never shift a page (nothing is skipped or shown twice), and the
//! default order — by name — walks the index's ordered map from the
//! position, so a page costs what it shows plus a count of what follows.

use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::index::Index;
use crate::registry::Registry;

/// Columns a list can be ordered by; ties are broken by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SortBy {
    /// The record's name, the default: a page walks the index in order,
    /// with nothing to sort.
    #[default]
    Name,
    /// The normalized server address, scheme included.
    Server,
    /// The login user; records without one come first.
    Username,
    /// How many namespaces the record authorizes.
    Namespaces,
    /// Failed, then not checked, then verified.
    Status,
    /// When the record was created.
    Created,
}

/// Which way a list runs; ties by name run the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SortOrder {
    /// Smallest first (A to Z, oldest first); the default.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The column the page was sorted by: a position is refused under
    /// another ([`ForeignPosition`]).
    pub sort: SortBy,
    /// The order the page ran in, held to the same rule.
    pub order: SortOrder,
    /// The last record's sort key (empty when sorting by name).
    pub key: String,
    /// The last record's name: the tie-breaker, and the whole position
    /// when sorting by name.
    pub name: String,
}

/// Which records to list, in which order, and from where.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Case-insensitive substring of the name or the server.
    pub q: Option<String>,
    /// Only records authorizing this namespace.
    pub namespace: Option<String>,
    /// The column to order by; ties are broken by name.
    pub sort: SortBy,
    /// Ascending or descending.
    pub order: SortOrder,
    /// `None`: every match.
    pub limit: Option<usize>,
    /// Start after this position (a previous page's `next`); `None`
    /// starts at the beginning.
    pub after: Option<Position>,
}

/// One page of a list, and where the next one starts.
#[derive(Debug, Clone)]
pub struct Page {
    /// The records, in the query's order; at most its `limit`.
    pub items: Vec<Arc<Registry>>,
    /// Where this page ended, when more follow.
    pub next: Option<Position>,
    /// Matches after this page.
    pub remaining: usize,
}

/// The position does not belong to this query's order.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the continue token was issued for a different sort or order; start again without it")]
pub struct ForeignPosition;

/// One page of the records matching `query`.
pub fn page(index: &Index, query: &Query) -> Result<Page, ForeignPosition> {
    if let Some(after) = &query.after
        && (after.sort != query.sort || after.order != query.order)
    {
        return Err(ForeignPosition);
    }
    let needle = query.q.as_deref().map(str::to_lowercase);
    let matches = |record: &Registry| {
        needle.as_deref().is_none_or(|needle| {
            contains_ignoring_case(&record.name, needle)
                || contains_ignoring_case(&record.server, needle)
        })
    };
    let limit = query.limit.unwrap_or(usize::MAX);

    // By name, over the whole store: walk the ordered map from the position.
    if query.sort == SortBy::Name && query.namespace.is_none() {
        let after = query.after.as_ref().map(|p| p.name.clone());
        let walk: Box<dyn Iterator<Item = &Arc<Registry>>> = match query.order {
            SortOrder::Asc => Box::new(index.records_range(
                after.map_or(Bound::Unbounded, Bound::Excluded),
                Bound::Unbounded,
            )),
            SortOrder::Desc => Box::new(
                index
                    .records_range(
                        Bound::Unbounded,
                        after.map_or(Bound::Unbounded, Bound::Excluded),
                    )
                    .rev(),
            ),
        };
        return Ok(take(walk.filter(|r| matches(r)), limit, |r| {
            position(query, r)
        }));
    }

    // Otherwise sort the candidates: a namespace's members (few), or every
    // match when ordering by another column.
    let candidates: Vec<&Arc<Registry>> = match &query.namespace {
        Some(ns) => index
            .namespace(ns)
            .map(|view| {
                view.members()
                    .filter_map(|name| index.record(name))
                    .filter(|r| matches(r))
                    .collect()
            })
            .unwrap_or_default(),
        None => index
            .records_range(Bound::Unbounded, Bound::Unbounded)
            .filter(|r| matches(r))
            .collect(),
    };
    let mut keyed: Vec<(String, &Arc<Registry>)> = candidates
        .into_iter()
        .map(|r| (sort_key(query.sort, r), r))
        .collect();
    let by_key = |a: &(String, &Arc<Registry>), b: &(String, &Arc<Registry>)| {
        a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name))
    };
    keyed.sort_by(by_key);
    if query.order == SortOrder::Desc {
        keyed.reverse();
    }
    let start = match &query.after {
        None => 0,
        Some(after) => keyed.partition_point(|(key, r)| {
            let here = (key.as_str(), r.name.as_str());
            let there = (after.key.as_str(), after.name.as_str());
            match query.order {
                SortOrder::Asc => here <= there,
                SortOrder::Desc => here >= there,
            }
        }),
    };
    Ok(take(
        keyed.into_iter().skip(start).map(|(_, r)| r),
        limit,
        |r| position(query, r),
    ))
}

/// The first `limit` items, where the last one ended, and how many follow.
fn take<'a>(
    mut matches: impl Iterator<Item = &'a Arc<Registry>>,
    limit: usize,
    position: impl Fn(&Registry) -> Position,
) -> Page {
    let items: Vec<Arc<Registry>> = matches.by_ref().take(limit).cloned().collect();
    let remaining = matches.count();
    let next = match items.last() {
        Some(last) if remaining > 0 => Some(position(last)),
        _ => None,
    };
    Page {
        items,
        next,
        remaining,
    }
}

fn position(query: &Query, record: &Registry) -> Position {
    Position {
        sort: query.sort,
        order: query.order,
        key: sort_key(query.sort, record),
        name: record.name.clone(),
    }
}

/// The record's value in the sort column, as text that sorts like the value.
fn sort_key(sort: SortBy, record: &Registry) -> String {
    match sort {
        SortBy::Name => String::new(),
        SortBy::Server => record.server.clone(),
        SortBy::Username => record.username.clone().unwrap_or_default(),
        SortBy::Namespaces => format!("{:010}", record.namespaces.len()),
        // Failed first: what needs attention (the order of `Health`).
        SortBy::Status => (record.status.health() as u8).to_string(),
        // RFC 3339 in UTC with fixed digits sorts as text.
        SortBy::Created => record
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    }
}

fn contains_ignoring_case(haystack: &str, lowercase_needle: &str) -> bool {
    if lowercase_needle.is_empty() {
        return true;
    }
    if haystack.is_ascii() && lowercase_needle.is_ascii() {
        // The common case, without allocating a lowercase copy per record.
        haystack
            .as_bytes()
            .windows(lowercase_needle.len())
            .any(|window| window.eq_ignore_ascii_case(lowercase_needle.as_bytes()))
    } else {
        haystack.to_lowercase().contains(lowercase_needle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::record;

    fn names(page: &Page) -> Vec<&str> {
        page.items.iter().map(|r| r.name.as_str()).collect()
    }

    fn sample() -> Index {
        let mut records = Vec::new();
        for i in 0..25 {
            let mut r = record(
                &format!("reg-{i:02}"),
                &format!("https://host{}.example", i % 4),
                &[&format!("team-{}", i % 3), "shared"],
                &[],
                i % 2 == 0,
            );
            r.created_at = chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(100 - i);
            r.status.verified = i % 5 == 0;
            records.push(r);
        }
        Index::build(&records)
    }

    /// Every page in turn, as a client following `next` would.
    fn walk(index: &Index, mut query: Query) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let page = page(index, &query).expect("page");
            seen.extend(page.items.iter().map(|r| r.name.clone()));
            match page.next {
                Some(next) => query.after = Some(next),
                None => {
                    assert_eq!(page.remaining, 0);
                    return seen;
                }
            }
        }
    }

    #[test]
    fn pages_walk_every_match_once_in_every_order() {
        let index = sample();
        for sort in [
            SortBy::Name,
            SortBy::Server,
            SortBy::Username,
            SortBy::Namespaces,
            SortBy::Status,
            SortBy::Created,
        ] {
            for order in [SortOrder::Asc, SortOrder::Desc] {
                for namespace in [None, Some("team-1".to_string())] {
                    let all = walk(
                        &index,
                        Query {
                            sort,
                            order,
                            namespace: namespace.clone(),
                            ..Query::default()
                        },
                    );
                    let paged = walk(
                        &index,
                        Query {
                            sort,
                            order,
                            namespace: namespace.clone(),
                            limit: Some(4),
                            ..Query::default()
                        },
                    );
                    assert_eq!(paged, all, "{sort:?} {order:?} {namespace:?}");
                    let expected = if namespace.is_some() { 8 } else { 25 };
                    assert_eq!(all.len(), expected);
                    let mut sorted = all.clone();
                    sorted.sort();
                    sorted.dedup();
                    assert_eq!(sorted.len(), expected, "no record twice");
                }
            }
        }
    }

    #[test]
    fn orders_follow_the_column_then_the_name() {
        let index = sample();
        let first = |sort, order| {
            page(
                &index,
                &Query {
                    sort,
                    order,
                    limit: Some(3),
                    ..Query::default()
                },
            )
            .map(|p| names(&p).iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("page")
        };
        assert_eq!(
            first(SortBy::Name, SortOrder::Asc),
            ["reg-00", "reg-01", "reg-02"]
        );
        assert_eq!(
            first(SortBy::Name, SortOrder::Desc),
            ["reg-24", "reg-23", "reg-22"]
        );
        // Newest first: the highest i was created first (100 - i).
        assert_eq!(
            first(SortBy::Created, SortOrder::Desc),
            ["reg-00", "reg-01", "reg-02"]
        );
        // Verified records last in ascending status order.
        let by_status = walk(
            &index,
            Query {
                sort: SortBy::Status,
                ..Query::default()
            },
        );
        assert_eq!(
            &by_status[20..],
            ["reg-00", "reg-05", "reg-10", "reg-15", "reg-20"]
        );
    }

    #[test]
    fn the_filter_matches_name_or_server_ignoring_case() {
        let index = sample();
        let found = walk(
            &index,
            Query {
                q: Some("HOST3".into()),
                ..Query::default()
            },
        );
        assert_eq!(
            found,
            ["reg-03", "reg-07", "reg-11", "reg-15", "reg-19", "reg-23"]
        );
        let found = walk(
            &index,
            Query {
                q: Some("g-2".into()),
                limit: Some(2),
                ..Query::default()
            },
        );
        assert_eq!(found, ["reg-20", "reg-21", "reg-22", "reg-23", "reg-24"]);
        let page = page(
            &index,
            &Query {
                q: Some("g-2".into()),
                limit: Some(2),
                ..Query::default()
            },
        )
        .expect("page");
        assert_eq!(page.remaining, 3);
    }

    #[test]
    fn a_page_is_anchored_to_a_record_not_an_offset() {
        let index = sample();
        let query = Query {
            limit: Some(5),
            ..Query::default()
        };
        let first = page(&index, &query).expect("page");
        // Records before the position vanish meanwhile: the next page still
        // starts right after the last one shown.
        let index = index.apply(
            ["reg-00", "reg-01", "reg-02"].map(|n| crate::index::Change::Remove(n.to_string())),
        );
        let second = page(
            &index,
            &Query {
                after: first.next.clone(),
                ..query
            },
        )
        .expect("page");
        assert_eq!(
            names(&second),
            ["reg-05", "reg-06", "reg-07", "reg-08", "reg-09"]
        );
    }

    #[test]
    fn a_position_from_another_order_is_refused() {
        let index = sample();
        let first = page(
            &index,
            &Query {
                limit: Some(2),
                ..Query::default()
            },
        )
        .expect("page");
        let other = Query {
            sort: SortBy::Server,
            limit: Some(2),
            after: first.next,
            ..Query::default()
        };
        assert_eq!(page(&index, &other).err(), Some(ForeignPosition));
    }
}
