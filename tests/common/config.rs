//! The part of a Signet configuration that every test agent shares.

/// A unix socket `signet.sock` in the configuration's directory, and the client `tests`: this
/// test's uid, every key, sign, fingerprint and verify. The backend and any other tables follow.
pub fn unix_listener_and_test_client() -> String {
    format!(
        "[[listen]]\ntype = \"unix\"\npath = \"signet.sock\"\n\n\
         [[clients]]\nname = \"tests\"\nuid = {}\nkeys = [\"*\"]\n\
         operations = [\"sign\", \"fingerprint\", \"verify\"]\n\n",
        super::own_uid()
    )
}
