//! Pagination: `?page=1&per_page=50` in, `{items, page, per_page, total}` out.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    #[serde(default = "one")]
    pub page: i64,
    #[serde(default = "fifty")]
    pub per_page: i64,
}

fn one() -> i64 {
    1
}

fn fifty() -> i64 {
    50
}

impl Default for PageParams {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: 50,
        }
    }
}

/// The highest page number served; past it is empty anyway, and keeping page
/// numbers small keeps every `page ± 1` and offset far from overflowing.
pub const MAX_PAGE: i64 = 1_000_000;

impl PageParams {
    pub fn page(&self) -> i64 {
        self.page.clamp(1, MAX_PAGE)
    }

    pub fn limit(&self) -> i64 {
        self.per_page.clamp(1, 500)
    }

    pub fn offset(&self) -> i64 {
        (self.page() - 1).saturating_mul(self.limit())
    }

    pub fn with<T>(self, items: Vec<T>) -> Page<T> {
        Page {
            items,
            page: self.page(),
            per_page: self.limit(),
            total: None,
            total_capped: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: i64,
    pub per_page: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// `total` stopped counting at [`COUNT_CAP`]: there are at least that many.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub total_capped: bool,
}

/// Big lists are counted up to here ("1,000+"): an exact count of a million
/// log rows on every page view costs more than the page itself, and past a
/// thousand an admin filters rather than pages.
pub const COUNT_CAP: i64 = 1_000;

/// One page of `table` (newest first) as `T`, with its capped total, in one
/// statement: the count is an uncorrelated scalar subquery (run once) beside the
/// rows (`columns` are the row's, unqualified; `filters` pushes ` WHERE ...`
/// with only the filters present, for both). A page past the end has no row
/// to carry the count, so only then is it asked for on its own.
pub async fn fetch_page<T>(
    db: impl sqlx::PgExecutor<'_> + Copy,
    columns: &str,
    table: &str,
    filters: impl Fn(&mut sqlx::QueryBuilder<sqlx::Postgres>),
    page: PageParams,
) -> Result<Page<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let mut list = sqlx::QueryBuilder::new(format!(
        "SELECT {columns}, (SELECT count(*) FROM (SELECT 1 FROM {table}"
    ));
    filters(&mut list);
    list.push(format_args!(
        " LIMIT {}) matched) AS page_matched FROM {table}",
        COUNT_CAP + 1
    ));
    filters(&mut list);
    // LIMIT and OFFSET are written into the statement, not bound: with them
    // as parameters PostgreSQL never trusts a generic plan and plans the
    // statement again on every call (a quarter of a millisecond for the
    // filtered log). Both are clamped integers, and page 1, the page that is
    // polled, is one statement.
    list.push(format_args!(
        " ORDER BY id DESC LIMIT {} OFFSET {}",
        page.limit(),
        page.offset()
    ));
    let rows: Vec<Counted<T>> = list.build_query_as().fetch_all(db).await?;
    let matched = match rows.first() {
        Some(first) => first.matched,
        None if page.offset() == 0 => 0,
        None => capped_count(db, table, filters).await?,
    };
    Ok(page
        .with(rows.into_iter().map(|r| r.row).collect())
        .counted(matched))
}

/// A page's row with the capped count of all matching rows beside it.
struct Counted<T> {
    row: T,
    matched: i64,
}

impl<'r, T> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Counted<T>
where
    T: sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(Self {
            row: T::from_row(row)?,
            matched: row.try_get("page_matched")?,
        })
    }
}

/// Counts the rows of `table` that `filters` selects (it pushes ` WHERE ...`),
/// stopping past [`COUNT_CAP`].
pub async fn capped_count(
    db: impl sqlx::PgExecutor<'_>,
    table: &str,
    filters: impl FnOnce(&mut sqlx::QueryBuilder<sqlx::Postgres>),
) -> Result<i64, sqlx::Error> {
    let mut count = sqlx::QueryBuilder::new(format!("SELECT count(*) FROM (SELECT 1 FROM {table}"));
    filters(&mut count);
    count.push(format_args!(" LIMIT {}) matched", COUNT_CAP + 1));
    count.build_query_scalar().fetch_one(db).await
}

impl<T> Page<T> {
    pub fn total(mut self, total: i64) -> Self {
        self.total = Some(total);
        self
    }

    /// The same page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            page: self.page,
            per_page: self.per_page,
            total: self.total,
            total_capped: self.total_capped,
        }
    }

    /// The count as [`capped_count`] gives it: past [`COUNT_CAP`], one more.
    pub fn matched(&self) -> i64 {
        match self.total {
            Some(_) if self.total_capped => COUNT_CAP + 1,
            Some(n) => n,
            None => 0,
        }
    }

    /// Sets the total from a capped count (see [`capped_count`]).
    pub fn counted(mut self, n: i64) -> Self {
        self.total = Some(n.min(COUNT_CAP));
        self.total_capped = n > COUNT_CAP;
        self
    }
}

/// Query-string helper: an empty value (`?server_id=`) means "not given".
pub fn empty_as_none<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let raw: Option<String> = Option::deserialize(de)?;
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Page fields that sit beside filters in one query string.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[serde(default, deserialize_with = "empty_as_none")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub per_page: Option<i64>,
}

impl PageQuery {
    pub fn params(self) -> PageParams {
        PageParams {
            page: self.page.unwrap_or(1),
            per_page: self.per_page.unwrap_or(50),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_and_negative_pages_are_clamped() {
        let p = PageParams {
            page: i64::MAX,
            per_page: i64::MAX,
        };
        assert_eq!((p.page(), p.limit()), (MAX_PAGE, 500));
        assert_eq!(p.offset(), (MAX_PAGE - 1) * 500);
        let p = PageParams {
            page: i64::MIN,
            per_page: i64::MIN,
        };
        assert_eq!((p.page(), p.limit(), p.offset()), (1, 1, 0));
    }

    #[test]
    fn totals_past_the_cap_are_reported_as_a_lower_bound() {
        let exact = PageParams::default().with(vec![1]).counted(42);
        assert_eq!((exact.total, exact.total_capped), (Some(42), false));
        let capped = PageParams::default().with(vec![1]).counted(COUNT_CAP + 1);
        assert_eq!((capped.total, capped.total_capped), (Some(COUNT_CAP), true));
    }

    #[test]
    fn matched_gives_back_the_capped_count_a_page_was_counted_with() {
        for n in [0, 1, COUNT_CAP, COUNT_CAP + 1] {
            let page = PageParams::default().with(vec![1]).counted(n);
            assert_eq!(page.matched(), n);
        }
        assert_eq!(PageParams::default().with(vec![1]).matched(), 0);
    }
}
