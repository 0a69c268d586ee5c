//! The PKCS#11 backend: loads the module, finds the token by label or serial, logs in (one
//! attempt), checks the served keys against the Tier 4 rule ([`discover`]), and signs through a
//! session pool that recovers from device loss ([`Pkcs11Backend`]).

pub mod admin;
mod ckr;
pub mod discover;
mod lookup;
pub mod mechanisms;
pub mod provision;
pub mod raw;
mod serving;
mod session;

use std::path::Path;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

pub use ckr::classify;
pub use serving::{Pkcs11Backend, PROBE_INTERVAL};

use crate::config::{self, TokenSelector};
use crate::error::Error;
use crate::key::Algorithm;
use crate::secret::Secret;

/// A logged-in token, before any key is chosen: what both the agent and the key commands use.
pub struct Token {
    /// The loaded and initialised module.
    pub pkcs11: Pkcs11,
    /// The token's slot (found by label or serial; slot ids are not stable).
    pub slot: Slot,
    /// The session the login was made on.
    pub session: Session,
}

impl Token {
    /// Loads the module, finds the token, opens a session (read-write if asked) and logs in as
    /// the user, making exactly one `C_Login` attempt.
    pub fn open(config: &config::Pkcs11, pin: &Secret, read_write: bool) -> Result<Self, Error> {
        let pkcs11 = load(&config.module)?;
        let slot = find_token(&pkcs11, &config.token)?;
        let session = if read_write {
            pkcs11.open_rw_session(slot)
        } else {
            pkcs11.open_ro_session(slot)
        }
        .map_err(|e| Error::Startup(format!("opening a session on the token: {}", classify(e))))?;
        login(&session, pin)?;
        Ok(Token {
            pkcs11,
            slot,
            session,
        })
    }

    /// Closes the session and finalises the module.
    pub fn close(self) {
        let Token {
            pkcs11, session, ..
        } = self;
        drop(session);
        finalize(pkcs11);
    }
}

/// What [`initialize_token`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenInit {
    /// A free slot was initialised with the label and the user PIN was set.
    Created,
    /// A token with this label already existed and was left as it was.
    AlreadyExists,
}

/// Initialises a token with `label` in the module's first free slot, with `so_pin` for the
/// security officer and the configured user PIN. For development tokens (SoftHSM2); production
/// HSMs are initialised with the vendor's tools. Idempotent: an existing token is left alone.
pub fn initialize_token(
    config: &config::Pkcs11,
    so_pin: &Secret,
    user_pin: &Secret,
) -> Result<TokenInit, Error> {
    let TokenSelector::Label(label) = &config.token else {
        return Err(Error::Config(
            "backend.token must name a label to initialise a token".into(),
        ));
    };
    let pkcs11 = load(&config.module)?;
    let result = (|| {
        if find_token(&pkcs11, &config.token).is_ok() {
            return Ok(TokenInit::AlreadyExists);
        }
        let with_token = pkcs11.get_slots_with_token().map_err(classify)?;
        let initialised = pkcs11
            .get_slots_with_initialized_token()
            .map_err(classify)?;
        let free = with_token
            .into_iter()
            .find(|s| !initialised.contains(s))
            .ok_or_else(|| Error::Startup("the module has no free slot for a new token".into()))?;
        let so = AuthPin::from(so_pin.expose().to_owned());
        pkcs11.init_token(free, &so, label).map_err(classify)?;
        // The token moves to a new slot id after initialisation (SoftHSM2), so find it by label.
        let slot = find_token(&pkcs11, &config.token)?;
        let session = pkcs11.open_rw_session(slot).map_err(classify)?;
        session.login(UserType::So, Some(&so)).map_err(classify)?;
        session
            .init_pin(&AuthPin::from(user_pin.expose().to_owned()))
            .map_err(classify)?;
        session.logout().map_err(classify)?;
        Ok(TokenInit::Created)
    })();
    finalize(pkcs11);
    result
}

/// The signing mechanism of each algorithm; ECDSA takes the digest, computed by the caller.
/// ML-DSA is pure ML-DSA (`CKM_ML_DSA`) with no parameter: an empty context and the token's
/// preferred hedging (PKCS#11 3.2, section 6.67.5), the message signed as given.
fn mechanism(algorithm: Algorithm) -> Mechanism<'static> {
    match algorithm {
        Algorithm::Ed25519 => Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
        Algorithm::EcdsaP256Sha256 => Mechanism::Ecdsa,
        Algorithm::HmacSha256 => Mechanism::Sha256Hmac,
        Algorithm::MlDsa65 => {
            Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None))
        }
    }
}

fn load(module: &Path) -> Result<Pkcs11, Error> {
    let pkcs11 = Pkcs11::new(module).map_err(|e| {
        Error::Startup(format!(
            "cannot load the PKCS#11 module {}: {e}. Check backend.module; for SoftHSM2 install \
             the softhsm2 package (Debian/Ubuntu: apt-get install softhsm2)",
            module.display()
        ))
    })?;
    initialize(&pkcs11).map_err(|e| {
        Error::Startup(format!(
            "the PKCS#11 module {} failed to initialise: {e}",
            module.display()
        ))
    })?;
    Ok(pkcs11)
}

/// `C_Initialize` with OS locking; a module that is already initialised is fine.
fn initialize(pkcs11: &Pkcs11) -> Result<(), Error> {
    ckr::initialized(pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)))
}

fn find_token(pkcs11: &Pkcs11, selector: &TokenSelector) -> Result<Slot, Error> {
    let slots = pkcs11
        .get_slots_with_initialized_token()
        .map_err(|e| Error::Startup(format!("listing the module's slots: {e}")))?;
    let mut present = Vec::new();
    let mut matching = Vec::new();
    for slot in slots {
        let info = pkcs11
            .get_token_info(slot)
            .map_err(|e| Error::Startup(format!("reading token information: {e}")))?;
        let (label, serial) = (
            info.label().trim().to_owned(),
            info.serial_number().trim().to_owned(),
        );
        let hit = match selector {
            TokenSelector::Label(want) => &label == want,
            TokenSelector::Serial(want) => &serial == want,
        };
        if hit {
            matching.push(slot);
        }
        present.push(format!("'{label}' (serial {serial})"));
    }
    let wanted = match selector {
        TokenSelector::Label(l) => format!("label '{l}'"),
        TokenSelector::Serial(s) => format!("serial '{s}'"),
    };
    match matching[..] {
        [slot] => Ok(slot),
        [] => Err(Error::Startup(format!(
            "no initialised token with {wanted} was found; tokens present: {}{}",
            if present.is_empty() {
                "none".to_owned()
            } else {
                present.join(", ")
            },
            softhsm_hint(pkcs11)
        ))),
        _ => Err(Error::Startup(format!(
            "several tokens have {wanted}; select the token by serial instead"
        ))),
    }
}

/// Where SoftHSM2 looks for its tokens, when the module is SoftHSM2: the usual reason a
/// token that exists is not found.
fn softhsm_hint(pkcs11: &Pkcs11) -> String {
    let is_softhsm = pkcs11
        .get_library_info()
        .is_ok_and(|info| info.manufacturer_id().contains("SoftHSM"));
    if !is_softhsm {
        return String::new();
    }
    match std::env::var_os("SOFTHSM2_CONF") {
        Some(conf) => format!(
            ". SoftHSM2 reads its tokens from the directories.tokendir of SOFTHSM2_CONF ({})",
            std::path::Path::new(&conf).display()
        ),
        None => ". SoftHSM2 reads its tokens from the directories.tokendir of \
                  /etc/softhsm/softhsm2.conf; SOFTHSM2_CONF is not set (the dev token needs \
                  SOFTHSM2_CONF=softhsm/state/softhsm2.conf)"
            .to_owned(),
    }
}

/// Logs in as the user: exactly one `C_Login` attempt (see [`ckr::logged_in`]).
fn login(session: &Session, pin: &Secret) -> Result<(), Error> {
    let auth = AuthPin::from(pin.expose().to_owned());
    ckr::logged_in(session.login(UserType::User, Some(&auth)))
}

fn finalize(pkcs11: Pkcs11) {
    if let Err(e) = pkcs11.finalize() {
        tracing::warn!(error = %e, "finalising the PKCS#11 module failed");
    }
}
