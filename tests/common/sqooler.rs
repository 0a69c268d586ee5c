//! Keys made by the sqooler package itself, with the callers' Python.

/// Makes a spooler key the way sqooler does (`sqoolerkey` calls `create_jwk_pair`) and returns
/// (private-key config string, public JWK as sqooler stores it).
pub fn sqooler_key(kid: &str) -> (String, String) {
    let out = super::python(
        "import sys, json\n\
         from sqooler.security import create_jwk_pair\n\
         private, public = create_jwk_pair(kid=sys.argv[1])\n\
         print(json.dumps([private.to_config_str(), public.model_dump_json()]))",
        &[kid],
    );
    let [config, public]: [String; 2] = serde_json::from_str(&out).expect("two strings");
    (config, public)
}
