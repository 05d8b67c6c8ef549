//! Given/when/then tests of every rule and error of the reference bank service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bank::domain::{Account, AccountCommand, AccountError, AccountEvent, OpenAccountCommand};
use bank::money::{Amount, Money};
use factum_testing::AggregateTestFixture;

fn fixture() -> AggregateTestFixture<Account> {
    AggregateTestFixture::new(()).with_aggregate_id("acc-001")
}

fn cents(c: i64) -> Money {
    Money::from_cents(c)
}

fn amount(json: &str) -> Amount {
    serde_json::from_str(json).unwrap()
}

fn open(owner: &str, initial: &str) -> OpenAccountCommand {
    OpenAccountCommand::OpenAccount {
        owner: owner.to_owned(),
        initial_balance: amount(initial),
    }
}

fn opened(balance: i64) -> AccountEvent {
    AccountEvent::AccountOpened {
        owner: "Alice".to_owned(),
        initial_balance: cents(balance),
        opened_by: None,
    }
}

fn deposited(c: i64) -> AccountEvent {
    AccountEvent::MoneyDeposited { amount: cents(c) }
}

fn withdrawn(c: i64) -> AccountEvent {
    AccountEvent::MoneyWithdrawn { amount: cents(c) }
}

fn deposit(json: &str) -> AccountCommand {
    AccountCommand::Deposit {
        amount: amount(json),
    }
}

fn withdraw(json: &str) -> AccountCommand {
    AccountCommand::Withdraw {
        amount: amount(json),
    }
}

#[tokio::test]
async fn open_account_records_the_owner_and_opening_balance() {
    let state = fixture()
        .given_no_previous_events()
        .when_create(open("Alice", "1000.0"))
        .await
        .then_expect_events(vec![opened(100_000)]);
    assert_eq!(state.balance, cents(100_000));
    assert_eq!(state.owner, "Alice");
}

#[tokio::test]
async fn an_opening_balance_of_zero_is_allowed() {
    fixture()
        .given_no_previous_events()
        .when_create(open("Bob", "0"))
        .await
        .then_expect_events(vec![AccountEvent::AccountOpened {
            owner: "Bob".to_owned(),
            initial_balance: Money::ZERO,
            opened_by: None,
        }]);
}

#[tokio::test]
async fn opening_an_existing_account_is_a_conflict() {
    fixture()
        .given(vec![opened(100)])
        .when_create(open("Alice", "10"))
        .await
        .then_expect_error(AccountError::AlreadyExists {
            id: "acc-001".to_owned(),
        });
}

#[tokio::test]
async fn owner_must_be_present_and_at_most_200_characters() {
    for owner in ["", "   "] {
        fixture()
            .given_no_previous_events()
            .when_create(open(owner, "10"))
            .await
            .then_expect_error_code("ACCOUNT_INVALID_OWNER");
    }
    fixture()
        .given_no_previous_events()
        .when_create(open(&"é".repeat(201), "10"))
        .await
        .then_expect_error_code("ACCOUNT_INVALID_OWNER");
    fixture()
        .given_no_previous_events()
        .when_create(open(&"é".repeat(200), "10"))
        .await
        .inspect_result()
        .expect("200 characters are fine, whatever their byte length");
}

#[tokio::test]
async fn opening_balance_must_be_a_valid_amount() {
    for bad in ["-0.01", "0.001", "1e16", "\"100\"", "null", "true"] {
        fixture()
            .given_no_previous_events()
            .when_create(open("Alice", bad))
            .await
            .then_expect_error_matching(|e| {
                matches!(
                    e,
                    AccountError::InvalidAmount {
                        field: "initial_balance",
                        ..
                    }
                )
            });
    }
}

#[tokio::test]
async fn deposit_adds_money() {
    let state = fixture()
        .given(vec![opened(100_000)])
        .when_update(deposit("500.0"))
        .await
        .then_expect_events(vec![deposited(50_000)]);
    assert_eq!(state.balance, cents(150_000));
}

#[tokio::test]
async fn deposits_are_exact() {
    let state = fixture()
        .given(vec![opened(0), deposited(10)])
        .when_update(deposit("0.2"))
        .await
        .then_expect_events(vec![deposited(20)]);
    assert_eq!(state.balance, cents(30));
    assert_eq!(serde_json::to_string(&state.balance).unwrap(), "0.3");
}

#[tokio::test]
async fn deposit_amount_must_be_positive_finite_and_at_most_two_decimals() {
    for bad in [
        "0",
        "-5",
        "0.001",
        "1000000000000001",
        "\"ten\"",
        "[]",
        "{}",
    ] {
        fixture()
            .given(vec![opened(100)])
            .when_update(deposit(bad))
            .await
            .then_expect_error_code("ACCOUNT_INVALID_AMOUNT");
    }
    fixture()
        .given(vec![opened(100)])
        .when_update(deposit("1e15"))
        .await
        .then_expect_events(vec![deposited(100_000_000_000_000_000)]);
}

#[tokio::test]
async fn withdraw_takes_money_out() {
    let state = fixture()
        .given(vec![opened(100_000), deposited(50_000)])
        .when_update(withdraw("200.0"))
        .await
        .then_expect_events(vec![withdrawn(20_000)]);
    assert_eq!(state.balance, cents(130_000));
}

#[tokio::test]
async fn withdrawing_exactly_the_balance_is_allowed() {
    let state = fixture()
        .given(vec![opened(1234)])
        .when_update(withdraw("12.34"))
        .await
        .then_expect_events(vec![withdrawn(1234)]);
    assert_eq!(state.balance, Money::ZERO);
}

#[tokio::test]
async fn withdrawing_more_than_the_balance_is_refused() {
    fixture()
        .given(vec![opened(1234)])
        .when_update(withdraw("12.35"))
        .await
        .then_expect_error(AccountError::InsufficientFunds {
            balance: cents(1234),
            requested: cents(1235),
        });
}

#[tokio::test]
async fn withdraw_amount_must_be_valid() {
    for bad in ["0", "-1", "0.015", "\"1\""] {
        fixture()
            .given(vec![opened(100_000)])
            .when_update(withdraw(bad))
            .await
            .then_expect_error_code("ACCOUNT_INVALID_AMOUNT");
    }
}

#[tokio::test]
async fn commands_on_a_missing_account_are_not_found() {
    fixture()
        .given_no_previous_events()
        .when_update(deposit("1"))
        .await
        .then_expect_error(AccountError::NotFound {
            id: "acc-001".to_owned(),
        });
    fixture()
        .given_no_previous_events()
        .when_update(withdraw("1"))
        .await
        .then_expect_error_code("ACCOUNT_NOT_FOUND");
}

#[tokio::test]
async fn a_balance_past_the_representable_range_is_refused() {
    fixture()
        .given(vec![opened(i64::MAX - 10)])
        .when_update(deposit("1"))
        .await
        .then_expect_error_code("ACCOUNT_BALANCE_LIMIT");
}

#[tokio::test]
async fn error_codes_and_statuses_match_the_reference() {
    use factum_core::DomainError;
    let cases: [(AccountError, &str, u16, u64); 5] = [
        (
            AccountError::InsufficientFunds {
                balance: cents(1),
                requested: cents(2),
            },
            "ACCOUNT_INSUFFICIENT_FUNDS",
            400,
            10001,
        ),
        (
            AccountError::NotFound { id: "x".into() },
            "ACCOUNT_NOT_FOUND",
            404,
            10002,
        ),
        (
            AccountError::AlreadyExists { id: "x".into() },
            "ACCOUNT_ALREADY_EXISTS",
            409,
            10003,
        ),
        (
            AccountError::InvalidAmount {
                field: "amount",
                reason: "r".into(),
            },
            "ACCOUNT_INVALID_AMOUNT",
            400,
            10004,
        ),
        (
            AccountError::InvalidOwner { reason: "r" },
            "ACCOUNT_INVALID_OWNER",
            400,
            10005,
        ),
    ];
    for (error, code, status, internal) in cases {
        let shown = error.to_cqrs_error();
        assert_eq!(
            (
                shown.domain.as_str(),
                shown.code.as_str(),
                shown.status,
                shown.internal_code
            ),
            ("ACCOUNT", code, status, internal)
        );
    }
}

#[tokio::test]
async fn events_serialize_in_the_reference_shape() {
    let json =
        serde_json::to_value([opened(100_000), deposited(50_000), withdrawn(20_000)]).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"type": "AccountOpened", "owner": "Alice", "initial_balance": 1000.0},
            {"type": "MoneyDeposited", "amount": 500.0},
            {"type": "MoneyWithdrawn", "amount": 200.0}
        ])
    );
}
