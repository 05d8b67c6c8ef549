use std::process::ExitCode;

use factum_http::Api;

use super::options::{Command, LogFormat};
use super::*;

fn demo() -> Service {
    Service::new("demo").app(|_store, _config| Ok(App::new(|http| Ok(Api::new(http)))))
}

fn config_error(service: Service) -> String {
    match service.build() {
        Err(ServiceError::Config(message)) => message,
        Err(other) => panic!("not a configuration error: {other}"),
        Ok(_) => panic!("built"),
    }
}

#[test]
fn the_builder_refuses_what_could_not_run() {
    let missing = config_error(Service::new("demo"));
    assert!(missing.contains("Service::app"), "{missing}");
    let name = config_error(demo().app_named("my service"));
    assert!(name.contains("\"my service\""), "{name}");
    let store = config_error(demo().default_store("ftp://nowhere"));
    assert!(
        store.contains("unsupported store URL 'ftp://nowhere'"),
        "{store}"
    );
    for address in [
        "8080",
        "localhost",
        ":8080",
        "127.0.0.1:http",
        "127.0.0.1:70000",
    ] {
        let listen = config_error(demo().default_listen(address));
        assert!(listen.contains("not HOST:PORT"), "{address}: {listen}");
    }
    for address in ["127.0.0.1:0", "localhost:8081", "[::1]:8080"] {
        assert!(demo().default_listen(address).build().is_ok(), "{address}");
    }
}

impl Service {
    /// The same service under another name.
    fn app_named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }
}

#[test]
fn the_options_default_to_the_binary_s_own() {
    let built = demo().build().unwrap();
    let options = built.parse(["demo"]).unwrap();
    assert_eq!(options.store, "sqlite://data/demo.db");
    assert_eq!(options.serve.listen, DEFAULT_LISTEN);
    assert_eq!(options.log_format, LogFormat::Text);
    assert_eq!(
        (
            options.serve.publish.as_deref(),
            options.serve.publish_stream.as_str(),
            options.serve.publish_subject_prefix.as_str()
        ),
        (None, "FACTUM", "factum")
    );
    assert!(options.command.is_none());
    assert!(options.claims_store(), "serving claims the store");
    assert_eq!(options.serve.engine_config().max_attempts, 100);
    assert!(options.serve.auth.jwt_secret.is_none());

    let built = demo()
        .default_store("memory")
        .default_listen("127.0.0.1:8081")
        .build()
        .unwrap();
    let options = built.parse(["demo"]).unwrap();
    assert_eq!(options.store, "memory");
    assert_eq!(options.serve.listen, "127.0.0.1:8081");
}

#[test]
fn the_options_parse_every_flag() {
    let built = demo().build().unwrap();
    let options = built
        .parse([
            "demo",
            "--listen",
            "0.0.0.0:9000",
            "--store",
            "memory",
            "--jwt-secret",
            "s3cret",
            "--jwt-issuer",
            "https://idp/",
            "--jwt-audience",
            "api",
            "--public-docs",
            "--max-attempts",
            "7",
            "--body-limit",
            "1024",
            "--request-timeout",
            "5",
            "--max-in-flight",
            "3",
            "--header-read-timeout",
            "2",
            "--idempotency-ttl",
            "60",
            "--projection-poll-ms",
            "20",
            "--log-format",
            "json",
            "--publish",
            "nats://127.0.0.1:4222",
            "--publish-stream",
            "ORDERS",
            "--publish-subject-prefix",
            "acme.orders",
        ])
        .unwrap();
    assert_eq!(options.serve.listen, "0.0.0.0:9000");
    assert_eq!(
        (
            options.serve.publish.as_deref(),
            options.serve.publish_stream.as_str(),
            options.serve.publish_subject_prefix.as_str()
        ),
        (Some("nats://127.0.0.1:4222"), "ORDERS", "acme.orders")
    );
    assert_eq!(options.store, "memory");
    assert_eq!(options.log_format, LogFormat::Json);
    assert_eq!(options.serve.auth.jwt_secret.as_deref(), Some("s3cret"));
    assert_eq!(
        options.serve.auth.jwt_issuer.as_deref(),
        Some("https://idp/")
    );
    assert!(options.serve.auth.public_docs);
    assert_eq!(options.serve.engine_config().max_attempts, 7);
    assert_eq!(options.serve.body_limit, 1024);
    assert_eq!(options.serve.max_in_flight, 3);
    assert_eq!(
        options.serve.serve_config().header_read_timeout,
        std::time::Duration::from_secs(2)
    );
    assert_eq!(
        options.serve.projection_poll(),
        std::time::Duration::from_millis(20)
    );
    assert!(built.parse(["demo", "--max-attempts", "many"]).is_err());
    assert!(built.parse(["demo", "--log-format", "xml"]).is_err());
    assert!(
        built
            .parse(["demo", "--jwks-file", "k.json", "--jwks-url", "http://k"])
            .is_err(),
        "one JWKS source"
    );
}

#[test]
fn subcommands_take_the_store_and_claim_it_only_to_write_inline_views() {
    let built = demo().build().unwrap();
    let rebuild = built
        .parse(["demo", "rebuild-views", "--store", "memory"])
        .unwrap();
    assert!(matches!(
        rebuild.command,
        Some(Command::RebuildViews {
            include_inline: false
        })
    ));
    assert_eq!(rebuild.store, "memory");
    assert!(!rebuild.claims_store());
    let inline = built
        .parse(["demo", "rebuild-views", "--include-inline"])
        .unwrap();
    assert!(inline.claims_store());
    let status = built.parse(["demo", "status"]).unwrap();
    assert!(matches!(status.command, Some(Command::Status)));
    assert!(!status.claims_store());
    assert!(
        built.parse(["demo", "status", "--listen", "x:1"]).is_err(),
        "serving options are not the subcommands'"
    );
}

#[test]
fn the_help_is_the_binary_s() {
    let built = demo()
        .about("The demo service.\n\n  Try:  curl localhost:8081/things\n")
        .default_listen("127.0.0.1:8081")
        .build()
        .unwrap();
    let Err(help) = built.parse(["demo", "--help"]) else {
        panic!("--help parsed");
    };
    assert_eq!(help.exit_code(), 0);
    let text = help.render().to_string();
    for needle in [
        "Usage: demo",
        "  Try:  curl localhost:8081/things",
        "--listen",
        "FACTUM_LISTEN",
        "127.0.0.1:8081",
        "--store",
        "FACTUM_STORE",
        "sqlite://data/demo.db",
        "postgres://",
        "--log-format",
        "rebuild-views",
        "status",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    let Err(short) = built.parse(["demo", "-h"]) else {
        panic!("-h parsed");
    };
    let short = short.render().to_string();
    assert!(short.contains("The demo service."), "{short}");
    assert!(!short.contains("Try:"), "{short}");
}

#[test]
fn exit_codes_look_through_causes() {
    let unfinished = ServiceError::UnfinishedRebuild {
        service: "demo".into(),
        views: vec!["accounts".into()],
    };
    assert!(unfinished.to_string().contains("accounts"));
    assert!(
        unfinished
            .to_string()
            .contains("demo rebuild-views --include-inline")
    );
    assert_eq!(unfinished.exit_code(), EXIT_REBUILD_UNFINISHED);
    let wrapped = ServiceError::failed("starting", unfinished);
    assert_eq!(wrapped.exit_code(), EXIT_REBUILD_UNFINISHED);
    assert_eq!(ServiceError::Config("no".into()).exit_code(), 1);

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    let _first = crate::claim_store(&url).unwrap();
    let second = crate::claim_store(&url).unwrap_err();
    assert_eq!(
        ServiceError::failed("claiming", second).exit_code(),
        EXIT_STORE_IN_USE
    );
}

#[tokio::test]
async fn a_run_reports_its_failure_by_exit_code() {
    assert_eq!(
        demo()
            .run_from(["demo", "status", "--store", "memory"])
            .await,
        ExitCode::SUCCESS
    );
    assert_eq!(
        demo()
            .run_from(["demo", "status", "--store", "ftp://x"])
            .await,
        ExitCode::FAILURE
    );
    assert_eq!(
        demo().run_from(["demo", "--no-such-flag"]).await,
        ExitCode::from(2)
    );
    assert_eq!(
        Service::new("demo").run_from(["demo"]).await,
        ExitCode::FAILURE,
        "an unchecked builder does not run"
    );
}
