//! ERPNext (Frappe), the ERP: find a Sales Invoice by the shop's order
//! reference (`po_no`) and create one.
//!
//! Frappe has no idempotency key: callers look up by `po_no` first, then
//! create; a create that races another one fails with
//! [`ErrorClass::AlreadyExists`].
//!
//! Errors are classified on `exc_type` first, then the HTTP status:
//!
//! | `exc_type` / status | class |
//! |---|---|
//! | `TimestampMismatchError` | ServerError (transient: reload and retry) |
//! | `RateLimitExceededError`, `TooManyRequestsError`, 429 | RateLimited (+ `Retry-After`) |
//! | `DuplicateEntryError`, 409 | AlreadyExists |
//! | `MandatoryError`, `LinkValidationError`, `UniqueValidationError`, `DocstatusTransitionError`, `*ValidationError`, 417 | Validation |
//! | `AuthenticationError`, `PermissionError`, 401, 403 | Unauthorized |
//! | `DoesNotExistError`, 404 | NotFound |
//! | 5xx (incl. 503) | ServerError |
//! | other 4xx | BadRequest |
//!
//! The message is the text of `_server_messages` (HTML stripped), else
//! `exception`, never the traceback (`exc`).

use crate::domain::Provider;
use chrono::NaiveDate;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::transport::{class_for_status, excerpt, strip_html, Account, Failure};
use super::{ErrorClass, ProviderError};

const PROVIDER: Provider = Provider::Erpnext;
/// The resource path of Sales Invoices (the doctype name has a space).
const SALES_INVOICE: &str = "api/resource/Sales%20Invoice";
/// The resource path of Payment Entries.
const PAYMENT_ENTRY: &str = "api/resource/Payment%20Entry";
/// Fields read back of an invoice.
const INVOICE_FIELDS: &str =
    r#"["name","docstatus","po_no","customer","grand_total","outstanding_amount","is_pos"]"#;

/// A Sales Invoice to create. Serialized with `set_posting_time: 1` (else
/// ERPNext replaces `posting_date` with today).
///
/// Two kinds are made (see [`SalesInvoice::live`] and
/// [`SalesInvoice::historical`]): the live sync's is submitted at once
/// (`docstatus: 1`), unpaid, and moves stock (`update_stock: 1`); the
/// backfill's is a paid POS invoice (`is_pos: 1` with its payment) that
/// moves no stock, for reporting only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SalesInvoice {
    /// The ERP customer (name of a Customer document).
    pub customer: String,
    /// Invoice date.
    pub posting_date: NaiveDate,
    /// Payment due date.
    pub due_date: NaiveDate,
    /// The shop's order reference: what [`ErpClient::find_invoice_by_po`] looks up.
    pub po_no: String,
    /// Invoice lines.
    pub items: Vec<InvoiceItem>,
    /// Payments received with the invoice (only a POS invoice has them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<InvoicePayment>,
    /// 1: paid at once through [`SalesInvoice::payments`].
    pub is_pos: u8,
    /// 1: the invoice moves stock (delivery from the warehouse).
    pub update_stock: u8,
    /// 0 draft, 1 submitted.
    pub docstatus: u8,
    /// The ERP's Mode of Payment spelling of the shop's payment method.
    pub custom_payment_method: String,
    /// The shop's order id.
    pub woo_order_id: i64,
    /// The shop's order number (as shown to the customer).
    pub woo_order_number: String,
    /// Delivery date the order carries, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_delivery_date: Option<String>,
    /// Delivery time (or window) the order carries, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_delivery_time: Option<String>,
}

/// Which of the two invoices a job makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceKind {
    /// The live sync: submitted, unpaid, full accounting and stock effects.
    Live,
    /// The backfill: paid, reporting only, no stock movement.
    Historical,
}

impl InvoiceKind {
    /// The ledger's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceKind::Live => "live",
            InvoiceKind::Historical => "historical",
        }
    }
}

impl SalesInvoice {
    /// Sets the flags of `kind`: live is submitted, unpaid and moves stock;
    /// historical is a paid POS invoice (its payment of `amount` with
    /// `mode_of_payment`) that moves no stock. Both are submitted.
    pub fn with_kind(mut self, kind: InvoiceKind, amount: f64) -> Self {
        self.docstatus = 1;
        match kind {
            InvoiceKind::Live => {
                self.is_pos = 0;
                self.update_stock = 1;
                self.payments.clear();
            }
            InvoiceKind::Historical => {
                self.is_pos = 1;
                self.update_stock = 0;
                self.payments = vec![InvoicePayment {
                    mode_of_payment: self.custom_payment_method.clone(),
                    amount,
                }];
            }
        }
        self
    }
}

/// What we read back of a Sales Invoice.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InvoiceDoc {
    /// Its name (`ACC-SINV-2026-00001`).
    pub name: String,
    /// 0 draft, 1 submitted, 2 cancelled.
    #[serde(default)]
    pub docstatus: i16,
    /// The shop reference it carries.
    #[serde(default)]
    pub po_no: Option<String>,
    /// The customer.
    #[serde(default)]
    pub customer: Option<String>,
    /// Its total.
    #[serde(default)]
    pub grand_total: f64,
    /// What remains to be paid.
    #[serde(default)]
    pub outstanding_amount: f64,
    /// 1 for a POS invoice (paid with it).
    #[serde(default)]
    pub is_pos: i64,
}

/// A Payment Entry receiving an invoice's amount: `payment_type: Receive`
/// from the customer into `paid_to`, allocated in full to the invoice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentEntry {
    /// The customer paying (the invoice's customer).
    pub party: String,
    /// The ERP account receiving the money (e.g. the company's Kashier account).
    pub paid_to: String,
    /// The amount, allocated in full to the invoice.
    pub amount: f64,
    /// Our unique key for look-ups: the order reference.
    pub reference_no: String,
    /// The date of the payment.
    pub reference_date: NaiveDate,
    /// The invoice it pays.
    pub invoice: String,
    /// Mode of Payment spelling.
    pub mode_of_payment: String,
}

/// What we read back of a Payment Entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PaymentEntryDoc {
    /// Its name.
    pub name: String,
    /// 0 draft, 1 submitted, 2 cancelled.
    #[serde(default)]
    pub docstatus: i16,
    /// Amount received.
    #[serde(default)]
    pub paid_amount: f64,
}

/// One line of a [`SalesInvoice`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceItem {
    /// ERP item code.
    pub item_code: String,
    /// Item name as printed.
    pub item_name: String,
    /// Quantity.
    pub qty: f64,
    /// Unit price.
    pub rate: f64,
}

/// One payment of a [`SalesInvoice`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoicePayment {
    /// Name of an ERP Mode of Payment, case and spelling exact (`Cash`).
    pub mode_of_payment: String,
    /// Amount paid with it.
    pub amount: f64,
}

/// What is actually POSTed: the invoice plus the fixed flag.
#[derive(Serialize)]
struct InvoiceBody<'a> {
    #[serde(flatten)]
    invoice: &'a SalesInvoice,
    set_posting_time: u8,
}

/// A client for one ERPNext site and API user.
#[derive(Debug, Clone)]
pub struct ErpClient {
    account: Account,
    base_url: String,
    api_key: SecretString,
    api_secret: SecretString,
    http: reqwest::Client,
}

impl ErpClient {
    /// A client for `account` at `base_url` (the site root, e.g.
    /// `https://erp.example.com`), with an API user's key and secret.
    pub fn new(
        account: &str,
        base_url: &str,
        api_key: SecretString,
        api_secret: SecretString,
        http: reqwest::Client,
    ) -> Self {
        Self {
            account: Account::new(PROVIDER, account, vec![api_key.clone(), api_secret.clone()]),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            api_secret,
            http,
        }
    }

    /// The configured account name.
    pub fn account(&self) -> &str {
        self.account.name()
    }

    /// The name of a Sales Invoice whose `po_no` is `po_no`, if any (draft,
    /// submitted or cancelled alike).
    ///
    /// # Errors
    ///
    /// Transient: [`ErrorClass::Timeout`], [`ErrorClass::Connection`],
    /// [`ErrorClass::ServerError`], [`ErrorClass::RateLimited`]. Permanent:
    /// [`ErrorClass::Unauthorized`], [`ErrorClass::BadRequest`],
    /// [`ErrorClass::Decode`]. See the module docs for the full table.
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), po_no = %po_no), err(Display, level = "debug"))]
    pub async fn find_invoice_by_po(&self, po_no: &str) -> Result<Option<String>, ProviderError> {
        #[derive(Deserialize)]
        struct Row {
            name: String,
        }
        #[derive(Deserialize)]
        struct List {
            data: Vec<Row>,
        }
        let filters = serde_json::json!([["po_no", "=", po_no]]).to_string();
        let request = self
            .http
            .get(format!("{}/{SALES_INVOICE}", self.base_url))
            .query(&[
                ("filters", filters.as_str()),
                ("fields", r#"["name","po_no"]"#),
                ("limit_page_length", "1"),
            ]);
        let list: List = self
            .send(request, &format!("invoice lookup for po_no {po_no:?}"))
            .await?;
        Ok(list.data.into_iter().next().map(|row| row.name))
    }

    /// Creates a Sales Invoice (draft or submitted, as its `docstatus` says)
    /// and returns its name:
    /// `POST /api/resource/Sales Invoice`.
    ///
    /// # Errors
    ///
    /// [`ErrorClass::AlreadyExists`] (409 / `DuplicateEntryError`): the
    /// invoice is already there. [`ErrorClass::Validation`] (417 family:
    /// `MandatoryError`, `LinkValidationError`, `UniqueValidationError`,
    /// `DocstatusTransitionError`, ...): permanent, with ERPNext's own
    /// message (e.g. an unknown Mode of Payment). Transient:
    /// `TimestampMismatchError` ([`ErrorClass::ServerError`]),
    /// `RateLimitExceededError` and 429 ([`ErrorClass::RateLimited`]), 5xx,
    /// timeouts and connection errors. See the module docs.
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), po_no = %invoice.po_no), err(Display, level = "debug"))]
    pub async fn create_invoice(&self, invoice: &SalesInvoice) -> Result<String, ProviderError> {
        #[derive(Deserialize)]
        struct Created {
            name: String,
        }
        #[derive(Deserialize)]
        struct Envelope {
            data: Created,
        }
        let body = InvoiceBody {
            invoice,
            set_posting_time: 1,
        };
        let request = self
            .http
            .post(format!("{}/{SALES_INVOICE}", self.base_url))
            .json(&body);
        let created: Envelope = self
            .send(request, &format!("invoice for po_no {:?}", invoice.po_no))
            .await?;
        Ok(created.data.name)
    }

    /// The Sales Invoice whose `po_no` is `po_no`, if any, with its
    /// docstatus and amounts. When several carry it (made by hand), the one
    /// not cancelled is preferred.
    ///
    /// # Errors
    /// As for [`ErpClient::find_invoice_by_po`].
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), po_no = %po_no), err(Display, level = "debug"))]
    pub async fn invoice_by_po(&self, po_no: &str) -> Result<Option<InvoiceDoc>, ProviderError> {
        let filters = serde_json::json!([["po_no", "=", po_no]]).to_string();
        let request = self
            .http
            .get(format!("{}/{SALES_INVOICE}", self.base_url))
            .query(&[
                ("filters", filters.as_str()),
                ("fields", INVOICE_FIELDS),
                ("limit_page_length", "20"),
            ]);
        let list: List<InvoiceDoc> = self
            .send(request, &format!("invoice lookup for po_no {po_no:?}"))
            .await?;
        let mut docs = list.data;
        docs.sort_by_key(|d| d.docstatus == 2);
        Ok(docs.into_iter().next())
    }

    /// The Sales Invoice `name`: `GET /api/resource/Sales Invoice/{name}`.
    ///
    /// # Errors
    /// [`ErrorClass::NotFound`] if it does not exist; otherwise as for
    /// [`ErpClient::find_invoice_by_po`].
    pub async fn invoice(&self, name: &str) -> Result<InvoiceDoc, ProviderError> {
        let request = self.http.get(format!(
            "{}/{SALES_INVOICE}/{}",
            self.base_url,
            encode_segment(name)
        ));
        let doc: Data<InvoiceDoc> = self.send(request, &format!("invoice {name}")).await?;
        Ok(doc.data)
    }

    /// Moves the Sales Invoice `name` to `docstatus` (1 submit, 2 cancel):
    /// `PUT /api/resource/Sales Invoice/{name}` with `{"docstatus": n}`.
    /// Frappe allows 0->1 and 1->2 only (a draft is submitted before it is
    /// cancelled); any other move is a `DocstatusTransitionError`.
    ///
    /// # Errors
    /// [`ErrorClass::Validation`] for a refused transition or a linked
    /// document (`LinkExistsError`); otherwise as for
    /// [`ErpClient::create_invoice`].
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), invoice = %name, docstatus), err(Display, level = "debug"))]
    pub async fn set_invoice_docstatus(
        &self,
        name: &str,
        docstatus: u8,
    ) -> Result<InvoiceDoc, ProviderError> {
        let request = self
            .http
            .put(format!(
                "{}/{SALES_INVOICE}/{}",
                self.base_url,
                encode_segment(name)
            ))
            .json(&serde_json::json!({ "docstatus": docstatus }));
        let doc: Data<InvoiceDoc> = self
            .send(request, &format!("docstatus {docstatus} of invoice {name}"))
            .await?;
        Ok(doc.data)
    }

    /// Payment Entries whose `reference_no` is `reference_no` (ours carry the
    /// order reference), any docstatus.
    ///
    /// # Errors
    /// As for [`ErpClient::find_invoice_by_po`].
    pub async fn payment_entries(
        &self,
        reference_no: &str,
    ) -> Result<Vec<PaymentEntryDoc>, ProviderError> {
        let filters = serde_json::json!([["reference_no", "=", reference_no]]).to_string();
        let request = self
            .http
            .get(format!("{}/{PAYMENT_ENTRY}", self.base_url))
            .query(&[
                ("filters", filters.as_str()),
                ("fields", r#"["name","docstatus","paid_amount"]"#),
                ("limit_page_length", "0"),
            ]);
        let list: List<PaymentEntryDoc> = self
            .send(
                request,
                &format!("payment lookup for reference_no {reference_no:?}"),
            )
            .await?;
        Ok(list.data)
    }

    /// Creates and submits a Payment Entry receiving `entry.amount` from the
    /// customer into `entry.paid_to`, allocated in full to `entry.invoice`;
    /// returns its name.
    ///
    /// # Errors
    /// [`ErrorClass::Validation`] when the ERP refuses it (unknown account,
    /// an allocation above the outstanding amount, a cancelled invoice);
    /// otherwise as for [`ErpClient::create_invoice`].
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), invoice = %entry.invoice), err(Display, level = "debug"))]
    pub async fn create_payment_entry(
        &self,
        entry: &PaymentEntry,
    ) -> Result<String, ProviderError> {
        let body = serde_json::json!({
            "payment_type": "Receive",
            "party_type": "Customer",
            "party": entry.party,
            "paid_to": entry.paid_to,
            "paid_amount": entry.amount,
            "received_amount": entry.amount,
            "mode_of_payment": entry.mode_of_payment,
            "reference_no": entry.reference_no,
            "reference_date": entry.reference_date,
            "posting_date": entry.reference_date,
            "references": [{
                "reference_doctype": "Sales Invoice",
                "reference_name": entry.invoice,
                "allocated_amount": entry.amount,
            }],
            "docstatus": 1,
        });
        let request = self
            .http
            .post(format!("{}/{PAYMENT_ENTRY}", self.base_url))
            .json(&body);
        let created: Data<PaymentEntryDoc> = self
            .send(
                request,
                &format!("payment entry for {}", entry.reference_no),
            )
            .await?;
        Ok(created.data.name)
    }

    /// Cancels the submitted Payment Entry `name` (docstatus 1 -> 2).
    ///
    /// # Errors
    /// As for [`ErpClient::set_invoice_docstatus`].
    pub async fn cancel_payment_entry(&self, name: &str) -> Result<(), ProviderError> {
        let request = self
            .http
            .put(format!(
                "{}/{PAYMENT_ENTRY}/{}",
                self.base_url,
                encode_segment(name)
            ))
            .json(&serde_json::json!({ "docstatus": 2 }));
        self.send::<serde_json::Value>(request, &format!("cancel of payment entry {name}"))
            .await
            .map(drop)
    }

    /// Checks the URL and credentials by listing at most one Sales Invoice
    /// (which also proves the user may read invoices).
    ///
    /// # Errors
    ///
    /// As for [`ErpClient::find_invoice_by_po`]; [`ErrorClass::Unauthorized`]
    /// means the key, the secret or the user's permissions are wrong.
    pub async fn check(&self) -> Result<(), ProviderError> {
        let request = self
            .http
            .get(format!("{}/{SALES_INVOICE}", self.base_url))
            .query(&[("fields", r#"["name"]"#), ("limit_page_length", "1")]);
        self.send::<serde_json::Value>(request, "invoice list")
            .await
            .map(drop)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, ProviderError> {
        let auth = self.account.auth_header(&format!(
            "token {}:{}",
            self.api_key.expose_secret(),
            self.api_secret.expose_secret()
        ))?;
        let request = request.header(AUTHORIZATION, auth);
        let (_, value) = self.account.fetch_json(request, classify, what).await?;
        Ok(value)
    }
}

/// Frappe's `{"data": [...]}` list envelope.
#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

/// Frappe's `{"data": {...}}` document envelope.
#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

/// A document name as one URL path segment (names may hold spaces or `/`).
fn encode_segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Frappe's error body: the fields we read.
#[derive(Debug, Default, Deserialize)]
struct FrappeError {
    #[serde(default)]
    exc_type: Option<String>,
    #[serde(default)]
    exception: Option<String>,
    #[serde(default, rename = "_server_messages")]
    server_messages: Option<String>,
    #[serde(default)]
    message: Option<serde_json::Value>,
}

/// Classifies an ERPNext response: `None` for a success (2xx), otherwise the
/// failure, by the table in the module docs.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
    if status.is_success() {
        return None;
    }
    let error: FrappeError = serde_json::from_slice(body).unwrap_or_default();
    // Frappe sends the bare class name; accept a dotted path too.
    let exc_type = error
        .exc_type
        .as_deref()
        .map(|t| t.rsplit('.').next().unwrap_or(t));
    let class = match exc_type {
        Some("TimestampMismatchError") => ErrorClass::ServerError,
        Some("RateLimitExceededError" | "TooManyRequestsError") => ErrorClass::RateLimited,
        Some("DuplicateEntryError") => ErrorClass::AlreadyExists,
        Some("MandatoryError" | "DocstatusTransitionError") => ErrorClass::Validation,
        Some(t) if t.ends_with("ValidationError") => ErrorClass::Validation,
        Some("AuthenticationError" | "PermissionError") => ErrorClass::Unauthorized,
        Some("DoesNotExistError") => ErrorClass::NotFound,
        _ => match status.as_u16() {
            409 => ErrorClass::AlreadyExists,
            417 => ErrorClass::Validation,
            _ => class_for_status(status),
        },
    };
    let text = server_messages(error.server_messages.as_deref())
        .or_else(|| error.exception.as_deref().map(strip_html))
        .or_else(|| match &error.message {
            Some(serde_json::Value::String(m)) => Some(strip_html(m)),
            _ => None,
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| excerpt(body));
    let message = match exc_type {
        Some(t) if !text.starts_with(t) && !text.contains(&format!(".{t}")) => {
            format!("{t}: {text}")
        }
        _ => text,
    };
    Some(Failure::http(status, headers, class, message))
}

/// Decodes `_server_messages`: a JSON string holding a list of JSON strings,
/// each `{"message","title","indicator"}`. Returns the messages, HTML
/// stripped, joined with "; ".
fn server_messages(raw: Option<&str>) -> Option<String> {
    let list: Vec<String> = serde_json::from_str(raw?).ok()?;
    let texts: Vec<String> = list
        .iter()
        .map(|item| {
            match serde_json::from_str::<serde_json::Value>(item) {
                Ok(serde_json::Value::Object(obj)) => match obj.get("message") {
                    Some(serde_json::Value::String(m)) => m.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
                // Older sites send plain strings.
                _ => item.clone(),
            }
        })
        .map(|m| strip_html(&m))
        .filter(|m| !m.is_empty())
        .collect();
    (!texts.is_empty()).then(|| texts.join("; "))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::extract::{Path, Query};
    use axum::http::HeaderMap as AxHeaders;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::{json, Value};

    use super::*;
    use crate::providers::testing;

    /// A Frappe error body as the server builds it.
    fn frappe_error(exc_type: &str, message: &str) -> Value {
        let inner = json!({"message": message, "title": "Message", "indicator": "red"}).to_string();
        json!({
            "exc_type": exc_type,
            "exception": format!("frappe.exceptions.{exc_type}: {message}"),
            "exc": "[\"Traceback (most recent call last):\\n  File \\\"app.py\\\"\"]",
            "_server_messages": json!([inner]).to_string(),
        })
    }

    fn classify_body(status: u16, body: &Value, headers: &HeaderMap) -> Failure {
        classify(
            StatusCode::from_u16(status).unwrap(),
            headers,
            body.to_string().as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn error_table_classifies_on_exc_type_first() {
        let rows = [
            (417, "MandatoryError", ErrorClass::Validation),
            (417, "LinkValidationError", ErrorClass::Validation),
            (417, "UniqueValidationError", ErrorClass::Validation),
            (417, "DocstatusTransitionError", ErrorClass::Validation),
            (417, "ValidationError", ErrorClass::Validation),
            (417, "TimestampMismatchError", ErrorClass::ServerError),
            (417, "RateLimitExceededError", ErrorClass::RateLimited),
            (409, "DuplicateEntryError", ErrorClass::AlreadyExists),
            (500, "DuplicateEntryError", ErrorClass::AlreadyExists),
            (401, "AuthenticationError", ErrorClass::Unauthorized),
            (403, "PermissionError", ErrorClass::Unauthorized),
            (404, "DoesNotExistError", ErrorClass::NotFound),
            (429, "TooManyRequestsError", ErrorClass::RateLimited),
            (503, "ServiceUnavailable", ErrorClass::ServerError),
            (500, "OperationalError", ErrorClass::ServerError),
        ];
        for (status, exc_type, class) in rows {
            let f = classify_body(status, &frappe_error(exc_type, "boom"), &HeaderMap::new());
            assert_eq!(f.class, class, "{status} {exc_type}");
            assert_eq!(f.http_status, Some(status));
        }
    }

    #[test]
    fn status_alone_decides_without_exc_type() {
        let rows = [
            (401, ErrorClass::Unauthorized),
            (403, ErrorClass::Unauthorized),
            (404, ErrorClass::NotFound),
            (409, ErrorClass::AlreadyExists),
            (417, ErrorClass::Validation),
            (429, ErrorClass::RateLimited),
            (500, ErrorClass::ServerError),
            (503, ErrorClass::ServerError),
            (400, ErrorClass::BadRequest),
        ];
        for (status, class) in rows {
            let f = classify_body(status, &json!({}), &HeaderMap::new());
            assert_eq!(f.class, class, "{status}");
        }
        assert_eq!(classify(StatusCode::OK, &HeaderMap::new(), b"{}"), None);
    }

    #[test]
    fn message_is_the_server_message_without_html_or_traceback() {
        let body = frappe_error(
            "LinkValidationError",
            "Could not find Mode of Payment: <strong>cash</strong>",
        );
        let f = classify_body(417, &body, &HeaderMap::new());
        assert_eq!(
            f.message,
            "LinkValidationError: Could not find Mode of Payment: cash"
        );
        assert!(!f.message.contains("Traceback"));

        let mut two = body.clone();
        let msgs = json!([
            json!({"message": "Row 1: <b>qty</b> missing"}).to_string(),
            "plain text from an old site"
        ]);
        two["_server_messages"] = json!(msgs.to_string());
        let f = classify_body(417, &two, &HeaderMap::new());
        assert_eq!(
            f.message,
            "LinkValidationError: Row 1: qty missing; plain text from an old site"
        );
    }

    #[test]
    fn message_falls_back_to_exception_then_body() {
        let body = json!({"exc_type": "MandatoryError",
            "exception": "frappe.exceptions.MandatoryError: [Sales Invoice, new-1]: customer",
            "exc": "[\"Traceback ...\"]"});
        let f = classify_body(417, &body, &HeaderMap::new());
        assert_eq!(
            f.message,
            "frappe.exceptions.MandatoryError: [Sales Invoice, new-1]: customer"
        );
        let f = classify(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<h1>Bad Gateway</h1>",
        )
        .unwrap();
        assert_eq!(f.message, "Bad Gateway");
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "42".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let f = classify_body(429, &frappe_error("TooManyRequestsError", "slow"), &headers);
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.retry_after, Some(Duration::from_secs(42)));
    }

    fn invoice(po_no: &str, mode: &str) -> SalesInvoice {
        SalesInvoice {
            customer: "Amina B".into(),
            posting_date: NaiveDate::from_ymd_opt(2024, 5, 1).unwrap(),
            due_date: NaiveDate::from_ymd_opt(2024, 5, 31).unwrap(),
            po_no: po_no.into(),
            items: vec![InvoiceItem {
                item_code: "TSHIRT".into(),
                item_name: "T-shirt".into(),
                qty: 2.0,
                rate: 1250.0,
            }],
            payments: Vec::new(),
            is_pos: 0,
            update_stock: 0,
            docstatus: 0,
            custom_payment_method: mode.into(),
            woo_order_id: 1,
            woo_order_number: "1".into(),
            custom_delivery_date: None,
            custom_delivery_time: None,
        }
        .with_kind(InvoiceKind::Historical, 2500.0)
    }

    #[test]
    fn historical_invoice_is_paid_and_moves_no_stock() {
        let inv = invoice("WC-1", "Cash");
        let body = serde_json::to_value(InvoiceBody {
            invoice: &inv,
            set_posting_time: 1,
        })
        .unwrap();
        assert_eq!(body["posting_date"], "2024-05-01");
        assert_eq!(body["set_posting_time"], 1);
        assert_eq!(body["is_pos"], 1);
        assert_eq!(body["update_stock"], 0);
        assert_eq!(body["docstatus"], 1);
        assert_eq!(body["items"][0]["rate"], 1250.0);
        assert_eq!(body["payments"][0]["mode_of_payment"], "Cash");
        assert_eq!(body["payments"][0]["amount"], 2500.0);
        assert_eq!(body["custom_payment_method"], "Cash");
        assert_eq!(body["woo_order_id"], 1);
        assert!(body.get("custom_delivery_date").is_none());
    }

    #[test]
    fn live_invoice_is_submitted_unpaid_and_moves_stock() {
        let mut inv = invoice("WC-1", "Kashier Card").with_kind(InvoiceKind::Live, 2500.0);
        inv.custom_delivery_date = Some("2024-05-03".into());
        let body = serde_json::to_value(InvoiceBody {
            invoice: &inv,
            set_posting_time: 1,
        })
        .unwrap();
        assert_eq!(body["is_pos"], 0);
        assert_eq!(body["update_stock"], 1);
        assert_eq!(body["docstatus"], 1);
        assert!(body.get("payments").is_none(), "{body}");
        assert_eq!(body["custom_payment_method"], "Kashier Card");
        assert_eq!(body["custom_delivery_date"], "2024-05-03");
    }

    #[test]
    fn document_names_are_one_path_segment() {
        assert_eq!(encode_segment("ACC-SINV-2024-00001"), "ACC-SINV-2024-00001");
        assert_eq!(encode_segment("SINV 1/2+3"), "SINV%201%2F2%2B3");
    }

    const TOKEN: &str = "token key123:secret456";
    /// A po_no that needs encoding in a query string.
    const TRICKY_PO: &str = "WC #1042 & co";

    async fn erp() -> ErpClient {
        let app = Router::new().route(
            "/erp/api/resource/{doctype}",
            get(
                |headers: AxHeaders,
                 Path(doctype): Path<String>,
                 Query(q): Query<HashMap<String, String>>| async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
                        let body = json!({"exc_type": "AuthenticationError", "exception": "Invalid token"});
                        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
                    }
                    if doctype != "Sales Invoice"
                        || q.get("fields").map(String::as_str) != Some(r#"["name","po_no"]"#)
                        || q.get("limit_page_length").map(String::as_str) != Some("1")
                    {
                        return (StatusCode::BAD_REQUEST, format!("{doctype} {q:?}")).into_response();
                    }
                    let filters: Value =
                        serde_json::from_str(q.get("filters").map_or("", String::as_str))
                            .unwrap_or_default();
                    let data = if filters == json!([["po_no", "=", TRICKY_PO]]) {
                        json!([{"name": "ACC-SINV-2024-00007", "po_no": TRICKY_PO}])
                    } else {
                        json!([])
                    };
                    Json(json!({"data": data})).into_response()
                },
            )
            .post(|Json(body): Json<Value>| async move {
                match body["payments"][0]["mode_of_payment"].as_str() {
                    Some("Cash") if body["set_posting_time"] == 1 => Json(json!({"data": {
                        "name": "ACC-SINV-2024-00008", "po_no": body["po_no"], "docstatus": 0
                    }}))
                    .into_response(),
                    Some("Dup") => (
                        StatusCode::CONFLICT,
                        Json(frappe_error("DuplicateEntryError", "Sales Invoice exists")),
                    )
                        .into_response(),
                    _ => (
                        StatusCode::EXPECTATION_FAILED,
                        Json(frappe_error("LinkValidationError", "Could not find Mode of Payment: <b>cash</b>")),
                    )
                        .into_response(),
                }
            }),
        );
        let base = testing::serve(app).await;
        ErpClient::new(
            "main",
            &format!("{base}/erp"),
            "key123".into(),
            "secret456".into(),
            testing::client(),
        )
    }

    #[tokio::test]
    async fn finds_an_invoice_by_an_encoded_po_no() {
        let client = erp().await;
        assert_eq!(
            client
                .find_invoice_by_po(TRICKY_PO)
                .await
                .unwrap()
                .as_deref(),
            Some("ACC-SINV-2024-00007")
        );
        assert_eq!(client.find_invoice_by_po("WC-9").await.unwrap(), None);
    }

    #[tokio::test]
    async fn creates_an_invoice_or_reports_why_not() {
        let client = erp().await;
        let name = client
            .create_invoice(&invoice("WC-2", "Cash"))
            .await
            .unwrap();
        assert_eq!(name, "ACC-SINV-2024-00008");

        let err = client
            .create_invoice(&invoice("WC-2", "Dup"))
            .await
            .unwrap_err();
        assert_eq!(
            (err.class, err.http_status),
            (ErrorClass::AlreadyExists, Some(409))
        );

        let err = client
            .create_invoice(&invoice("WC-3", "cash"))
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Validation);
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "erpnext/main validation (HTTP 417): invoice for po_no \"WC-3\": \
             LinkValidationError: Could not find Mode of Payment: cash"
        );
    }

    #[tokio::test]
    async fn wrong_credentials_are_unauthorized_and_never_quoted() {
        let base = erp().await.base_url;
        let client = ErpClient::new(
            "main",
            &base,
            "key123".into(),
            "nope-secret".into(),
            testing::client(),
        );
        let err = client.find_invoice_by_po("WC-1").await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Unauthorized);
        assert!(!format!("{err:?} {client:?}").contains("nope-secret"));
    }

    #[tokio::test]
    async fn outage_rate_limit_timestamp_conflict_and_hang_are_transient() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = Router::new().route(
            "/api/resource/{doctype}",
            get(move || {
                let call = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    match call {
                        0 => (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response(),
                        1 => (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "9")],
                            Json(frappe_error("TooManyRequestsError", "slow down")),
                        )
                            .into_response(),
                        2 => (
                            StatusCode::EXPECTATION_FAILED,
                            Json(frappe_error(
                                "TimestampMismatchError",
                                "Document has been modified",
                            )),
                        )
                            .into_response(),
                        3 => Json(json!({"data": []})).into_response(),
                        _ => {
                            tokio::time::sleep(testing::HANG).await;
                            Json(json!({"data": []})).into_response()
                        }
                    }
                }
            }),
        );
        let base = testing::serve(app).await;
        let client = ErpClient::new("main", &base, "k".into(), "s".into(), testing::client());
        let mut errors = Vec::new();
        for _ in 0..3 {
            errors.push(client.check().await.unwrap_err());
        }
        assert_eq!(
            errors.iter().map(|e| e.class).collect::<Vec<_>>(),
            [
                ErrorClass::ServerError,
                ErrorClass::RateLimited,
                ErrorClass::ServerError
            ]
        );
        assert!(errors.iter().all(ProviderError::is_transient));
        assert_eq!(errors[1].retry_after, Some(Duration::from_secs(9)));
        client.check().await.unwrap();
        assert_eq!(client.check().await.unwrap_err().class, ErrorClass::Timeout);
    }
}
