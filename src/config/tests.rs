//! Unit tests of the configuration: what is refused, with which message, and the defaults.

use super::*;

const MINIMAL: &str = r#"
        [[listen]]
        type = "unix"
        path = "/run/signet/signet.sock"

        [backend]
        type = "pkcs11"
        module = "/usr/lib/softhsm/libsofthsm2.so"
        token = { label = "signet" }
        pin = { file = "/etc/signet/pin" }
    "#;

#[test]
fn errors_name_the_line_or_the_table_they_are_in() {
    let unknown = MINIMAL.replace("[backend]\n", "[backend]\n        bogus = 1\n");
    let e = Config::parse(&unknown)
        .expect_err("unknown field")
        .to_string();
    assert!(
        e.contains("the table at line 6: unknown field `bogus`"),
        "{e}"
    );
    let array = format!("{MINIMAL}\n        [limits]\n        max_batch_items = [1]\n");
    let e = Config::parse(&array).expect_err("an array").to_string();
    assert!(
        e.contains("line 13, column 27: invalid type: sequence"),
        "{e}"
    );
}

#[test]
fn minimal_config_parses_with_defaults() {
    let c = Config::parse(MINIMAL).expect("valid");
    assert_eq!(c.limits.max_message_bytes, 1 << 20);
    let Backend::Pkcs11(p) = &c.backend else {
        panic!("a pkcs11 backend");
    };
    assert_eq!(p.token, TokenSelector::Label("signet".into()));
    assert!(matches!(p.pin, SecretSource::File(_)));
}

#[test]
fn the_example_config_is_valid() {
    let text = include_str!("../../signet.example.toml");
    Config::parse(text).expect("signet.example.toml must parse");
}

fn err(text: &str) -> String {
    Config::parse(text)
        .expect_err("should be refused")
        .to_string()
}

#[test]
fn unknown_keys_are_named() {
    let e = err(&MINIMAL.replace("[backend]", "[backend]\nslot = 0"));
    assert!(e.contains("unknown field `slot`"), "{e}");
    let e = err(&format!("{MINIMAL}\n[limits]\nmax_msg = 5"));
    assert!(e.contains("unknown field `max_msg`"), "{e}");
    let e = err(&MINIMAL.replace("path =", "owner = 1\npath ="));
    assert!(e.contains("unknown field `owner`"), "{e}");
    let e = err(&format!("verbose = true\n{MINIMAL}"));
    assert!(e.contains("unknown field `verbose`"), "{e}");
}

#[test]
fn pin_on_the_command_line_style_is_not_a_source() {
    for wrong in [
        r#"pin = "1234""#,
        "pin = { file = 1234 }",
        "pin = { env = 1234 }",
        "pin = 1234",
    ] {
        let e = err(&MINIMAL.replace(r#"pin = { file = "/etc/signet/pin" }"#, wrong));
        assert!(
            !e.contains("1234"),
            "the error must not echo the value: {e}"
        );
        assert!(e.contains("a secret must be given as"), "{e}");
    }
}

#[test]
fn non_loopback_plain_tcp_is_refused() {
    let text = MINIMAL.replace(
        "type = \"unix\"\n        path = \"/run/signet/signet.sock\"",
        "type = \"tcp\"\n        address = \"0.0.0.0:50051\"",
    );
    assert!(err(&text).contains("only loopback"));
    let loopback = text.replace("0.0.0.0", "127.0.0.1");
    assert!(err(&loopback).contains("needs `plaintext = true`"));
    let ok = loopback.replace("address =", "plaintext = true\n        address =");
    Config::parse(&ok).expect("loopback with plaintext = true is fine");
}

#[test]
fn limits_and_lists_are_checked() {
    assert!(
        err(&format!("{MINIMAL}\n[limits]\nmax_message_bytes = 0")).contains("max_message_bytes")
    );
    assert!(err(&format!("{MINIMAL}\n[limits]\nmax_connections = 0"))
        .contains("limits.max_connections must be between 1 and"));
    assert!(err(&MINIMAL.replace("token =", "sessions = 0\ntoken =")).contains("sessions"));
    assert!(err(&MINIMAL.replace("token =", "keys = [\"a\", \"a\"]\ntoken =")).contains("twice"));
    assert!(err(&MINIMAL.replace(r#"{ label = "signet" }"#, "{ slot = 1 }")).contains("slot"));
    let no_listen = MINIMAL
        .replace("[[listen]]", "[unused]")
        .replace("type = \"unix\"", "");
    assert!(err(&no_listen).contains("unused") || err(&no_listen).contains("listen"));
}

const YUBIHSM: &str = r#"
        [[listen]]
        type = "unix"
        path = "/run/signet/signet.sock"

        [backend]
        type = "yubihsm"
        connector = { http = "http://127.0.0.1:12345" }
        auth_key = 1
        password = { file = "/etc/signet/yubihsm-password" }
    "#;

#[test]
fn yubihsm_backend_parses_and_is_checked() {
    let c = Config::parse(YUBIHSM).expect("valid");
    let Backend::Yubihsm(y) = &c.backend else {
        panic!("a yubihsm backend");
    };
    assert_eq!(
        y.connector,
        YubiHsmConnector::Http {
            host: "127.0.0.1".into(),
            port: 12345
        }
    );
    assert_eq!(y.domain, 1, "the default domain");
    assert!(err(&YUBIHSM.replace("http://127.0.0.1:12345", "https://h:1")).contains("http://"));
    assert!(err(&YUBIHSM.replace(":12345", "")).contains("port"));
    assert!(err(&YUBIHSM.replace("auth_key = 1", "auth_key = 0")).contains("auth_key"));
    assert!(err(&YUBIHSM.replace("auth_key = 1", "auth_key = 1\ndomain = 17")).contains("domain"));
    let e = err(&YUBIHSM.replace(
        r#"password = { file = "/etc/signet/yubihsm-password" }"#,
        r#"password = "hunter2""#,
    ));
    assert!(
        e.contains("a secret must be given as") && !e.contains("hunter2"),
        "{e}"
    );
    let e = err(&YUBIHSM.replace("auth_key = 1", "auth_key = 1\nmodule = \"x.so\""));
    assert!(e.contains("unknown field `module`"), "{e}");
    let usb = YUBIHSM.replace(
        r#"{ http = "http://127.0.0.1:12345" }"#,
        r#"{ usb = "any" }"#,
    );
    let c = Config::parse(&usb).expect("usb parses");
    let Backend::Yubihsm(y) = &c.backend else {
        panic!("a yubihsm backend");
    };
    assert_eq!(y.connector, YubiHsmConnector::Usb(None));
    let serial = Config::parse(&usb.replace("\"any\"", "\"0012345678\"")).expect("a serial");
    let Backend::Yubihsm(y) = &serial.backend else {
        panic!("a yubihsm backend");
    };
    assert!(matches!(y.connector, YubiHsmConnector::Usb(Some(_))));
    let e = err(&usb.replace("\"any\"", "\"12ab\""));
    assert!(e.contains("backend.connector: usb = '12ab'"), "{e}");
}

#[test]
fn the_socket_mode_is_parsed_when_loaded() {
    let c = Config::parse(MINIMAL).expect("valid");
    let Some(Listener::Unix { mode, .. }) = c.listen.first() else {
        panic!("a unix listener");
    };
    assert_eq!(*mode, Mode::DEFAULT);
    assert_eq!(mode.bits(), 0o660);
    let set = MINIMAL.replace("path =", "mode = \"0600\"\npath =");
    let c = Config::parse(&set).expect("valid");
    let Some(Listener::Unix { mode, .. }) = c.listen.first() else {
        panic!("a unix listener");
    };
    assert_eq!(mode.bits(), 0o600);
    assert_eq!(mode.to_string(), "0600");
    for bad in ["0999", "1777", "rw", ""] {
        let e = err(&MINIMAL.replace("path =", &format!("mode = \"{bad}\"\npath =")));
        assert!(
            e.contains(&format!("listen: mode '{bad}' is not an octal file mode")),
            "{e}"
        );
    }
}

#[test]
fn each_client_gets_the_one_matcher_it_names() {
    let with = |clients: &str| format!("{MINIMAL}\n{clients}");
    let c = Config::parse(&with(
        "[[clients]]\nname = \"a\"\nuid = 1000\n\
         [[clients]]\nname = \"b\"\ncert_san = \"b.example\"\nrate_per_second = 5.0\n",
    ))
    .expect("valid");
    assert_eq!(c.clients[0].matcher, ClientMatcher::Uid(1000));
    assert_eq!(
        c.clients[1].matcher,
        ClientMatcher::CertSan("b.example".into())
    );
    let e = err(&with("[[clients]]\nname = \"a\"\nuid = 1\ngid = 2\n"));
    assert!(e.contains("'a' must name exactly one of uid"), "{e}");
    let e = err(&with("[[clients]]\nname = \"a\"\n"));
    assert!(e.contains("'a' must name exactly one of uid"), "{e}");
    let e = err(&with(
        "[[clients]]\nname = \"a\"\ngid = 7\n[[clients]]\nname = \"b\"\ngid = 7\n",
    ));
    assert!(e.contains("two clients match the same"), "{e}");
    let e = err(&with(
        "[[clients]]\nname = \"a\"\ngid = 7\n[[clients]]\nname = \"a\"\nuid = 7\n",
    ));
    assert!(e.contains("the name 'a' is used twice"), "{e}");
    let e = err(&with(
        "[[clients]]\nname = \"a\"\nuid = 1\nrate_per_second = -1.0\n",
    ));
    assert!(
        e.contains("rate_per_second must be a positive number"),
        "{e}"
    );
}

#[test]
fn messages_name_the_types_of_the_documentation() {
    let e = err(&format!(
        "backend = 5\n{}",
        MINIMAL.replace("[backend]", "[unused]")
    ));
    assert!(e.contains("expected internally tagged enum Backend"), "{e}");
    let e = err(&format!("clients = [5]\n{MINIMAL}"));
    assert!(e.contains("expected struct Client"), "{e}");
    let e = err(&format!(
        "listen = [5]\n{}",
        MINIMAL.replace("[[listen]]", "[unused]")
    ));
    assert!(
        e.contains("expected internally tagged enum Listener"),
        "{e}"
    );
}

#[test]
fn key_rescans_default_to_30_s_and_strict_mode_to_off() {
    let c = Config::parse(MINIMAL).expect("valid");
    assert_eq!(
        c.backend.rescan_interval(),
        Some(std::time::Duration::from_secs(30))
    );
    assert!(!c.backend.require_generated());
    let set = MINIMAL.replace(
        "[backend]\n",
        "[backend]\n        rescan_interval_ms = 0\n        require_generated = true\n",
    );
    let c = Config::parse(&set).expect("valid");
    assert_eq!(c.backend.rescan_interval(), None);
    assert!(c.backend.require_generated());
    for bad in ["50", "86400001"] {
        let text = MINIMAL.replace(
            "[backend]\n",
            &format!("[backend]\n        rescan_interval_ms = {bad}\n"),
        );
        let e = Config::parse(&text).expect_err(bad).to_string();
        assert!(e.contains("backend.rescan_interval_ms"), "{e}");
    }
}
