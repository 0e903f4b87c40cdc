//! The simulated org is as strict as Okta's documentation: a query parameter an endpoint does
//! not document, a `limit` out of its range, or a filter operator the endpoint does not take
//! is answered 400 with Okta's error body, so a query Okta would refuse fails our tests first.
//! Each rule cites `../shared/okta-api.md`. (Okta itself ignores an unknown parameter; the
//! simulator refuses it, since the collector must send only what is documented.)

use crate::config::ServiceKind;

/// A refusal: status, Okta's error code, its summary.
pub type Refusal = (u16, &'static str, String);

/// The parameters each endpoint documents (§2.1 for the System Log, §3.1 for the others).
fn documented(kind: ServiceKind) -> &'static [&'static str] {
    match kind {
        ServiceKind::Logs => &[
            "since",
            "until",
            "after",
            "filter",
            "q",
            "limit",
            "sortOrder",
        ],
        ServiceKind::Users => &[
            "q",
            "after",
            "limit",
            "filter",
            "search",
            "sortBy",
            "sortOrder",
            "fields",
        ],
        ServiceKind::Groups => &[
            "q",
            "after",
            "limit",
            "filter",
            "search",
            "expand",
            "sortBy",
            "sortOrder",
        ],
        ServiceKind::Apps => &[
            "q",
            "after",
            "limit",
            "filter",
            "expand",
            "includeNonDeleted",
            "useOptimization",
        ],
        ServiceKind::Idps => &["q", "after", "limit", "type"],
        ServiceKind::Zones => &["after", "limit", "filter"],
        ServiceKind::Clients => &["q", "after", "limit"],
        // Never asked: the simulator knows an entitlement endpoint by its path, not by kind.
        ServiceKind::GroupMembers
        | ServiceKind::AppAssignments
        | ServiceKind::AdminRoles
        | ServiceKind::Factors => &[],
    }
}

/// The largest `limit` each endpoint documents (`None`: no max stated).
fn max_limit(kind: ServiceKind) -> Option<i64> {
    match kind {
        ServiceKind::Logs => Some(1000),
        ServiceKind::Users | ServiceKind::Apps | ServiceKind::Idps | ServiceKind::Clients => {
            Some(200)
        }
        ServiceKind::Groups => Some(10_000),
        ServiceKind::Zones
        | ServiceKind::GroupMembers
        | ServiceKind::AppAssignments
        | ServiceKind::AdminRoles
        | ServiceKind::Factors => None,
    }
}

/// The operators a time field takes in `kind`'s `filter` (§3.1: users' lastUpdated takes
/// gt, ge, lt, le (and eq); groups' lastUpdated and lastMembershipUpdated take eq, lt, gt).
fn time_operators(kind: ServiceKind, field: &str) -> &'static [&'static str] {
    match (kind, field) {
        (ServiceKind::Users, "lastUpdated") => &["eq", "gt", "ge", "lt", "le"],
        (ServiceKind::Groups, "lastUpdated" | "lastMembershipUpdated") => &["eq", "lt", "gt"],
        _ => &[],
    }
}

/// Checks `kind`'s query `q` (name, decoded value) as Okta would.
///
/// # Errors
/// Okta's answer to a query it refuses.
pub fn check(kind: ServiceKind, q: &[(String, String)]) -> Result<(), Refusal> {
    let bad = |code, summary: String| Err((400, code, summary));
    for (name, value) in q {
        if !documented(kind).contains(&name.as_str()) {
            return bad(
                "E0000031",
                format!(
                    "Invalid search criteria: {name} is not a parameter of {}",
                    kind.path()
                ),
            );
        }
        match name.as_str() {
            "limit" => match value.parse::<i64>() {
                Ok(l) if l >= 0 && max_limit(kind).is_none_or(|m| l <= m) => {}
                _ => {
                    return bad(
                        "E0000001",
                        format!(
                            "Api validation failed: limit ({value:?} is outside what {} takes)",
                            kind.path()
                        ),
                    );
                }
            },
            "sortOrder" if !matches!(value.as_str(), "ASCENDING" | "DESCENDING") => {
                return bad(
                    "E0000001",
                    format!("Api validation failed: sortOrder {value:?}"),
                );
            }
            "since" | "until" if crate::time::parse_rfc3339(value).is_none() => {
                return bad("E0000001", format!("Api validation failed: {name}"));
            }
            // §2.1: the System Log filter cannot use `published`.
            "filter" if kind == ServiceKind::Logs && value.contains("published") => {
                return bad(
                    "E0000053",
                    "Invalid filter: published cannot be filtered on".into(),
                );
            }
            "filter" if kind == ServiceKind::Logs && !scim_filter(value) => {
                return bad("E0000053", format!("Invalid filter: {value}"));
            }
            "filter" | "search" if kind != ServiceKind::Logs => {
                check_expression(kind, name, value)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `expr` reads as a SCIM filter Okta's System Log takes: clauses `attr op "value"`
/// (or `attr pr`) joined by `and`/`or`, parentheses allowed, the operators of §2.1.
fn scim_filter(expr: &str) -> bool {
    let flat = expr.replace(['(', ')'], " ");
    let mut tokens = Vec::new();
    let mut rest = flat.trim();
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('"') {
            let Some(end) = q.find('"') else {
                return false;
            };
            tokens.push("\"\"");
            rest = q[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            tokens.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
    }
    let mut i = 0;
    loop {
        let (Some(attr), Some(op)) = (tokens.get(i), tokens.get(i + 1)) else {
            return false;
        };
        let op = op.to_ascii_lowercase();
        if attr.starts_with('"') || attr.is_empty() {
            return false;
        }
        if op == "pr" {
            i += 2;
        } else if matches!(
            op.as_str(),
            "eq" | "ne" | "co" | "sw" | "ew" | "gt" | "ge" | "lt" | "le"
        ) && tokens.get(i + 2) == Some(&"\"\"")
        {
            i += 3;
        } else {
            return false;
        }
        match tokens.get(i).map(|t| t.to_ascii_lowercase()) {
            None => return true,
            Some(j) if j == "and" || j == "or" => i += 1,
            Some(_) => return false,
        }
    }
}

/// A users or groups `filter`/`search`: clauses joined by `or`/`and`; a time field's operator
/// must be one the endpoint takes (`search` is SCIM and takes any operator).
fn check_expression(kind: ServiceKind, name: &str, expr: &str) -> Result<(), Refusal> {
    if !matches!(kind, ServiceKind::Users | ServiceKind::Groups) {
        // apps and zones filter on ids, status and names only; the simulator lists only.
        return Err((
            400,
            "E0000031",
            format!(
                "Invalid search criteria: {}'s {name} has no time field",
                kind.path()
            ),
        ));
    }
    for clause in expr.split(" or ").flat_map(|c| c.split(" and ")) {
        let mut t = clause.split_whitespace();
        let (Some(field), Some(op)) = (t.next(), t.next()) else {
            return Err((400, "E0000031", format!("Invalid search criteria: {expr}")));
        };
        let op = op.to_ascii_lowercase();
        let ops = time_operators(kind, field);
        if name == "filter" && !ops.is_empty() && !ops.contains(&op.as_str()) {
            return Err((
                400,
                "E0000031",
                format!(
                    "Invalid search criteria: {field} {op} is not supported by {}'s filter (only {})",
                    kind.path(),
                    ops.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Okta's error body (`errorCode`, `errorSummary`, `errorLink`, `errorId`, `errorCauses`).
pub(crate) fn error_body(code: &str, summary: &str) -> Vec<u8> {
    serde_json::json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": "oaeSimulated0000000000000",
        "errorCauses": []
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn documented_queries_pass_and_others_get_oktas_400() {
        let t = "2024-01-01T00:00:00.000Z";
        let groups_gt = format!("lastUpdated gt \"{t}\" or lastMembershipUpdated gt \"{t}\"");
        let groups_ge = format!("lastUpdated ge \"{t}\" or lastMembershipUpdated ge \"{t}\"");
        let users_ge = format!("lastUpdated ge \"{t}\"");
        assert!(
            check(
                ServiceKind::Groups,
                &q(&[("filter", &groups_gt), ("limit", "200")])
            )
            .is_ok()
        );
        let (status, code, why) =
            check(ServiceKind::Groups, &q(&[("filter", &groups_ge)])).unwrap_err();
        assert_eq!((status, code), (400, "E0000031"), "{why}");
        assert!(why.contains("lastUpdated ge"), "{why}");
        assert!(check(ServiceKind::Users, &q(&[("filter", &users_ge)])).is_ok());
        assert!(
            check(
                ServiceKind::Users,
                &q(&[("search", &users_ge), ("limit", "200")])
            )
            .is_ok()
        );
        assert!(check(ServiceKind::Users, &q(&[("limit", "201")])).is_err());
        assert!(
            check(
                ServiceKind::Logs,
                &q(&[("limit", "1000"), ("sortOrder", "ASCENDING"), ("since", t)])
            )
            .is_ok()
        );
        assert!(check(ServiceKind::Logs, &q(&[("limit", "1001")])).is_err());
        assert!(check(ServiceKind::Logs, &q(&[("sortOrder", "asc")])).is_err());
        assert!(check(ServiceKind::Logs, &q(&[("filter", "published gt \"x\"")])).is_err());
        assert!(check(ServiceKind::Apps, &q(&[("search", "x")])).is_err());
        assert!(check(ServiceKind::Apps, &q(&[("filter", &users_ge)])).is_err());
        assert!(check(ServiceKind::Zones, &q(&[("limit", "5000")])).is_ok());
        assert!(check(ServiceKind::Clients, &q(&[("limit", "200")])).is_ok());
    }
}
