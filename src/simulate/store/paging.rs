//! Filters and cursor paging for the Admin API's order list, kept free of HTTP so the rules
//! read in one place: a `page_info` cursor carries the whole query and the position, a request
//! that has one may add only `limit` and `fields` (as on Shopify), and the sort order is fixed
//! by the first request.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admin::decode_cursor;
use super::book::Stored;

/// Shopify's default page size and its maximum.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 250;

/// The `status` filter. Shopify's default is `open`: a reconciler that forgets `status=any`
/// misses cancelled and closed orders, as it would on Shopify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Status {
    Open,
    Closed,
    Cancelled,
    Any,
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Filter {
    status: Status,
    updated_min: Option<DateTime<Utc>>,
    updated_max: Option<DateTime<Utc>>,
    created_min: Option<DateTime<Utc>>,
    created_max: Option<DateTime<Utc>>,
    ids: Option<Vec<i64>>,
    since_id: Option<i64>,
}

impl Filter {
    fn keeps(&self, order: &Stored) -> bool {
        let status = match self.status {
            Status::Open => !order.closed && !order.cancelled,
            Status::Closed => order.closed,
            Status::Cancelled => order.cancelled,
            Status::Any => true,
        };
        status
            && self.updated_min.is_none_or(|min| order.updated_at >= min)
            && self.updated_max.is_none_or(|max| order.updated_at <= max)
            && self.created_min.is_none_or(|min| order.created_at >= min)
            && self.created_max.is_none_or(|max| order.created_at <= max)
            && self.since_id.is_none_or(|since| order.id > since)
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&order.id))
    }
}

/// The field a list is sorted on (the order id breaks ties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum SortField {
    CreatedAt,
    UpdatedAt,
    Id,
}

/// A sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Sort {
    field: SortField,
    descending: bool,
}

impl Sort {
    /// The order's position in the list: ascending in this key is the list's order.
    fn key(self, order: &Stored) -> (i64, i64) {
        let value = match self.field {
            SortField::CreatedAt => order.created_at.timestamp_millis(),
            SortField::UpdatedAt => order.updated_at.timestamp_millis(),
            SortField::Id => order.id,
        };
        if self.descending {
            (-value, -order.id)
        } else {
            (value, order.id)
        }
    }
}

/// What a `page_info` token holds: the query of the first request and where the page it
/// leads to starts (after `key`) or ends (before `key`, when `backwards`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Cursor {
    filter: Filter,
    sort: Sort,
    key: (i64, i64),
    backwards: bool,
}

/// One list request, read.
#[derive(Debug, Clone)]
pub(super) struct ListQuery {
    pub(super) limit: usize,
    pub(super) fields: Option<Vec<String>>,
    filter: Filter,
    sort: Sort,
    from: Option<(i64, i64, bool)>,
}

/// A page and the cursors of its neighbours.
#[derive(Debug)]
pub(super) struct Page {
    pub(super) orders: Vec<Arc<Value>>,
    pub(super) previous: Option<Cursor>,
    pub(super) next: Option<Cursor>,
}

/// A parameter at fault and why.
pub(super) type ParamError = (&'static str, String);

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// `fields=a,b`, if given.
pub(super) fn fields_param(params: &[(String, String)]) -> Option<Vec<String>> {
    param(params, "fields").map(|fields| {
        fields
            .split(',')
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    })
}

fn time_param(
    params: &[(String, String)],
    name: &'static str,
) -> Result<Option<DateTime<Utc>>, ParamError> {
    param(params, name)
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| (name, format!("{text:?} is not an ISO 8601 date-time")))
        })
        .transpose()
}

/// The filter parameters of a list or count request.
pub(super) fn parse_filter(params: &[(String, String)]) -> Result<Filter, ParamError> {
    let status = match param(params, "status").unwrap_or("open") {
        "open" => Status::Open,
        "closed" => Status::Closed,
        "cancelled" => Status::Cancelled,
        "any" => Status::Any,
        other => {
            return Err((
                "status",
                format!("{other:?} is not open, closed, cancelled or any"),
            ));
        }
    };
    let ids = param(params, "ids")
        .map(|ids| {
            ids.split(',')
                .map(|id| id.trim().parse::<i64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    (
                        "ids",
                        "must be a comma-separated list of order ids".to_owned(),
                    )
                })
        })
        .transpose()?;
    let since_id = param(params, "since_id")
        .map(|id| {
            id.parse::<i64>()
                .map_err(|_| ("since_id", "must be an order id".to_owned()))
        })
        .transpose()?;
    Ok(Filter {
        status,
        updated_min: time_param(params, "updated_at_min")?,
        updated_max: time_param(params, "updated_at_max")?,
        created_min: time_param(params, "created_at_min")?,
        created_max: time_param(params, "created_at_max")?,
        ids,
        since_id,
    })
}

/// A list request: a first page (filters, `order`, `limit`, `fields`) or a later one
/// (`page_info` with only `limit` and `fields`).
pub(super) fn parse_list(params: &[(String, String)]) -> Result<ListQuery, ParamError> {
    let limit = match param(params, "limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ("limit", format!("{text:?} is not a number")))?
            .clamp(1, MAX_LIMIT),
    };
    let fields = fields_param(params);
    if let Some(token) = param(params, "page_info") {
        if let Some((extra, _)) = params
            .iter()
            .find(|(key, _)| !matches!(key.as_str(), "page_info" | "limit" | "fields"))
        {
            return Err((
                "page_info",
                format!("cannot be combined with {extra}: only limit and fields may accompany it"),
            ));
        }
        let cursor = decode_cursor(token).ok_or((
            "page_info",
            "is not a page_info this shop issued".to_owned(),
        ))?;
        return Ok(ListQuery {
            limit,
            fields,
            filter: cursor.filter,
            sort: cursor.sort,
            from: Some((cursor.key.0, cursor.key.1, cursor.backwards)),
        });
    }
    let filter = parse_filter(params)?;
    let sort = match param(params, "order") {
        None if filter.since_id.is_some() => Sort {
            field: SortField::Id,
            descending: false,
        },
        None => Sort {
            field: SortField::CreatedAt,
            descending: true,
        },
        Some(text) => parse_sort(text)?,
    };
    Ok(ListQuery {
        limit,
        fields,
        filter,
        sort,
        from: None,
    })
}

fn parse_sort(text: &str) -> Result<Sort, ParamError> {
    let mut words = text.split_whitespace();
    let field = match words.next() {
        Some("created_at") => SortField::CreatedAt,
        Some("updated_at") => SortField::UpdatedAt,
        Some("id") => SortField::Id,
        _ => return Err(("order", format!("cannot sort by {text:?}"))),
    };
    let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(("order", format!("{text:?} is not asc or desc"))),
    };
    Ok(Sort { field, descending })
}

/// How many orders `filter` keeps.
pub(super) fn count(orders: Vec<Stored>, filter: &Filter) -> usize {
    orders.iter().filter(|order| filter.keeps(order)).count()
}

/// The page `query` asks for.
pub(super) fn page(orders: Vec<Stored>, query: &ListQuery) -> Page {
    let sort = query.sort;
    let mut kept: Vec<((i64, i64), Arc<Value>)> = orders
        .into_iter()
        .filter(|order| query.filter.keeps(order))
        .map(|order| (sort.key(&order), order.json))
        .collect();
    kept.sort_unstable_by_key(|(key, _)| *key);
    let (start, end) = match query.from {
        None => (0, query.limit.min(kept.len())),
        Some((a, b, false)) => {
            let start = kept.partition_point(|(key, _)| *key <= (a, b));
            (start, (start + query.limit).min(kept.len()))
        }
        Some((a, b, true)) => {
            let end = kept.partition_point(|(key, _)| *key < (a, b));
            (end.saturating_sub(query.limit), end)
        }
    };
    let cursor = |key: (i64, i64), backwards: bool| Cursor {
        filter: query.filter.clone(),
        sort,
        key,
        backwards,
    };
    let previous = (start > 0 && query.from.is_some())
        .then(|| kept.get(start).map(|(key, _)| cursor(*key, true)))
        .flatten();
    let next = (end < kept.len())
        .then(|| {
            end.checked_sub(1)
                .and_then(|last| kept.get(last))
                .map(|(key, _)| cursor(*key, false))
        })
        .flatten();
    let orders = kept
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|(_, json)| json.clone())
        .collect();
    Page {
        orders,
        previous,
        next,
    }
}
