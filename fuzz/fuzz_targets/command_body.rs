//! Command bodies of the bank, decoded as the HTTP layer decodes them
//! (`factum_http::decode_json_body`, then `AggregateService::parse`): no input panics; a
//! refusal is a 400; an accepted body has only the fields its documented schema lists, and
//! the command it gives re-encodes to a body that decodes to the same command.
#![no_main]

use std::sync::{Arc, OnceLock};

use bank::domain::{Account, AccountCommand, OpenAccountCommand};
use bank::money::{Amount, AmountProblem, Money};
use factum_core::{CqrsCommandEngine, InMemoryEventStore};
use factum_http::{decode_json_body, AggregateService, CommandSpec, ParsedCommand};
use libfuzzer_sys::fuzz_target;

fn service() -> &'static AggregateService<Account> {
    static SERVICE: OnceLock<AggregateService<Account>> = OnceLock::new();
    SERVICE.get_or_init(|| {
        AggregateService::new(CqrsCommandEngine::new(
            Arc::new(InMemoryEventStore::new()),
            (),
        ))
    })
}

fn spec(name: &str) -> CommandSpec {
    CommandSpec::all::<OpenAccountCommand>()
        .into_iter()
        .chain(CommandSpec::all::<AccountCommand>())
        .find(|spec| spec.name() == name)
        .unwrap()
}

/// The money an amount stands for; every refusal counts as one.
fn money(amount: &Amount) -> Result<Money, ()> {
    amount.to_money().map_err(|_: AmountProblem| ())
}

/// What a command means: its name, owner and money.
fn meaning(command: &ParsedCommand<Account>) -> (&'static str, Option<String>, Result<Money, ()>) {
    match command {
        ParsedCommand::Create {
            command:
                OpenAccountCommand::OpenAccount {
                    owner,
                    initial_balance,
                },
            ..
        } => ("OpenAccount", Some(owner.clone()), money(initial_balance)),
        ParsedCommand::Update {
            command: AccountCommand::Deposit { amount },
            ..
        } => ("Deposit", None, money(amount)),
        ParsedCommand::Update {
            command: AccountCommand::Withdraw { amount },
            ..
        } => ("Withdraw", None, money(amount)),
    }
}

fn parse(name: &str, body: &[u8]) -> Option<ParsedCommand<Account>> {
    let value = match decode_json_body(body) {
        Ok(value) => value,
        Err(error) => {
            assert_eq!(error.status(), 400, "{error:?}");
            return None;
        }
    };
    match service().parse(name, value.clone()) {
        Ok(command) => {
            let allowed = spec(name)
                .closed_fields()
                .expect("the bank's bodies are closed");
            for key in value.as_object().expect("a command is an object").keys() {
                assert!(
                    key == "type" || allowed.contains(key),
                    "{name} accepted the undocumented field {key:?}"
                );
            }
            Some(command)
        }
        Err(error) => {
            assert_eq!(error.status(), 400, "{error:?}");
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let name = match selector % 4 {
        // The reference route: the body names its command in `type`.
        0 => {
            let Ok(value) = decode_json_body(body) else {
                return;
            };
            match service().command_name_in(&value) {
                Ok(name) => name.to_owned(),
                Err(error) => {
                    assert_eq!(error.status(), 400, "{error:?}");
                    return;
                }
            }
        }
        1 => "OpenAccount".to_owned(),
        2 => "Deposit".to_owned(),
        _ => "Withdraw".to_owned(),
    };
    let Some(command) = parse(&name, body) else {
        return;
    };
    let (kind, owner, amount) = meaning(&command);
    assert_eq!(kind, name);
    assert_eq!(command.name(), name);
    let encoded = match &command {
        ParsedCommand::Create { command, .. } => serde_json::to_vec(command),
        ParsedCommand::Update { command, .. } => serde_json::to_vec(command),
    }
    .unwrap();
    let again = parse(&name, &encoded).unwrap_or_else(|| {
        panic!(
            "{} does not decode again",
            String::from_utf8_lossy(&encoded)
        )
    });
    let (_, owner_again, amount_again) = meaning(&again);
    assert_eq!(owner_again, owner);
    match amount {
        Ok(money) => assert_eq!(
            amount_again,
            Ok(money),
            "{}",
            String::from_utf8_lossy(&encoded)
        ),
        Err(()) => assert!(amount_again.is_err()),
    }
});
