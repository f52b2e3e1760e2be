//! The answer to each write, rendered inside the writer's transaction so that it can be stored
//! for idempotent replay together with the change it describes.

use axum::http::StatusCode;
use serde::Serialize;

use credits_store::{Command, EventData, Outcome, Rendered, Renderer};

use crate::dto::{
    AccountDto, ApiKeyDto, BudgetDto, CreditDto, DeletedDto, DeliveryDto, MemberDto,
    ReservationDto, ServiceDto, UsageDto, WebhookEndpointDto,
};
use crate::error::{ApiError, ErrorCode};
use crate::extract::now;

fn json(status: StatusCode, value: &impl Serialize) -> Rendered {
    Rendered { status: status.as_u16(), body: serde_json::to_vec(value).unwrap_or_default() }
}

pub fn error(error: &ApiError) -> Rendered {
    Rendered { status: error.code.status().as_u16(), body: error.body() }
}

/// Creations answer 201, every other successful write 200.
fn success_status(command: &Command) -> StatusCode {
    match command {
        Command::CreateAccount(_)
        | Command::CreateService { .. }
        | Command::CreateCredit(_)
        | Command::RecordUsage(_)
        | Command::CreateReservation(_)
        | Command::CreateMember { .. }
        | Command::CreateApiKey(_)
        | Command::CreateBudget(_)
        | Command::CreateWebhookEndpoint { .. }
        | Command::Redeliver { .. } => StatusCode::CREATED,
        Command::UpdateAccount { .. }
        | Command::UpdateService { .. }
        | Command::VoidCredit { .. }
        | Command::CaptureReservation { .. }
        | Command::ReleaseReservation { .. }
        | Command::UpdateMember { .. }
        | Command::DeleteMember { .. }
        | Command::RevokeApiKey { .. }
        | Command::TouchApiKeys { .. }
        | Command::UpdateBudget { .. }
        | Command::DeleteBudget { .. }
        | Command::DeleteWebhookEndpoint { .. }
        | Command::RecordAttempts { .. }
        | Command::Sweep
        | Command::SetAdminKey { .. }
        | Command::CreateSession { .. }
        | Command::DeleteSession { .. } => StatusCode::OK,
    }
}

/// The API's renderer for the store: answers and event data as JSON.
pub struct JsonRenderer;

impl Renderer for JsonRenderer {
    fn answer(&self, command: &Command, outcome: &Outcome) -> Rendered {
        render(command, outcome)
    }

    fn event_data(&self, data: &EventData) -> String {
        let value = match data {
            EventData::Credit(record) => serde_json::to_value(CreditDto::from(record)),
            EventData::Reservation(hold) => serde_json::to_value(ReservationDto::at(hold, now())),
            EventData::Usage(usage) => serde_json::to_value(UsageDto::from(usage)),
            EventData::Balance { account_id, available, threshold, top_up } => {
                Ok(serde_json::json!({
                    "accountId": account_id,
                    "available": available,
                    "threshold": threshold,
                    "autoTopUp": top_up.as_ref().map(crate::dto::AutoTopUpDto::from),
                }))
            }
            EventData::Budget { budget, threshold, spent } => Ok(serde_json::json!({
                "budget": BudgetDto::at(budget, now()),
                "threshold": threshold,
                "spent": spent,
            })),
        };
        value.map(|v| v.to_string()).unwrap_or_else(|_| "null".to_string())
    }
}

pub fn render(command: &Command, outcome: &Outcome) -> Rendered {
    let status = success_status(command);
    match outcome {
        Outcome::Account(account) => json(status, &AccountDto::from(account)),
        Outcome::Service(service) => json(status, &ServiceDto::from(service)),
        Outcome::Credit(record) => json(status, &CreditDto::from(record)),
        Outcome::Usage(usage) => json(status, &UsageDto::from(usage)),
        Outcome::Reservation(hold) => json(status, &ReservationDto::at(hold, now())),
        Outcome::Member(member) => json(status, &MemberDto::from(member)),
        Outcome::ApiKey(key) => json(status, &ApiKeyDto::from(key)),
        Outcome::Budget(budget) => json(status, &BudgetDto::at(budget, now())),
        Outcome::Deleted { id } => json(status, &DeletedDto { id: id.clone(), deleted: true }),
        Outcome::WebhookEndpoint(endpoint) => json(status, &WebhookEndpointDto::from(endpoint)),
        Outcome::Delivery(delivery) => json(status, &DeliveryDto::from(delivery)),
        Outcome::Swept { .. }
        | Outcome::AdminKeySet
        | Outcome::Touched
        | Outcome::AttemptsRecorded
        | Outcome::SessionCreated
        | Outcome::SessionDeleted => Rendered { status: 200, body: Vec::new() },
        Outcome::Rejected(rejection) => error(&ApiError::from(rejection.clone())),
        Outcome::IdempotencyConflict => error(&ApiError::new(
            ErrorCode::IdempotencyConflict,
            "this Idempotency-Key was used with another request in the last 24 hours",
        )),
    }
}
