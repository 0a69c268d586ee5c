//! Test and benchmark support: a PKCS#11 module that forwards every call to a real module
//! (SoftHSM2) and makes signing slow and scarce, the way a real HSM is: each `C_Sign`,
//! `C_SignFinal`, `C_Verify` and `C_VerifyFinal` sleeps a configured latency, and no more than
//! a configured number of them run at once (1 for a YubiHSM-like device, 32 for a network HSM).
//!
//! Configured by environment variables:
//! - `SLOW_P11_MODULE`: the real module (required), loaded at the first `C_GetFunctionList`;
//! - `SLOW_P11_LATENCY_US`: the latency per call in microseconds (default 0), and
//! - `SLOW_P11_PARALLEL`: how many such calls the device runs at once (default 0: no limit),
//!
//! the last two read at each `C_Initialize`. A bad value makes `C_Initialize` fail with
//! `CKR_ARGUMENTS_BAD` and a message on standard error.
//!
//! The latency is slept (never spun) while holding one of the device's `SLOW_P11_PARALLEL`
//! places, taken from a counting semaphore shared by all threads; a caller waiting for a place
//! sleeps on a condition variable. A length query (`C_Sign`/`C_SignFinal` with no output
//! buffer) is answered at once, as a vendor library answers it without the device. The agent
//! signs with `C_SignInit` + `C_Sign`, and its Verify RPC uses `C_VerifyInit` + `C_Verify`;
//! the multi-part `Update` calls and every other call forward untouched.
//!
//! The module exports only `C_GetFunctionList` (the PKCS#11 2.40 interface), so a caller that
//! prefers `C_GetInterface` (cryptoki does) falls back to it.

use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use cryptoki_sys::{
    CKR_ARGUMENTS_BAD, CKR_FUNCTION_FAILED, CKR_GENERAL_ERROR, CKR_OK, CK_BYTE, CK_FUNCTION_LIST,
    CK_RV, CK_SESSION_HANDLE, CK_ULONG,
};

/// The real module, loaded once, with its function list and ours.
struct Module {
    /// Keeps the real module loaded for as long as this one is.
    _library: cryptoki_sys::Pkcs11,
    /// The real module's function list (a copy).
    real: CK_FUNCTION_LIST,
    /// The list handed out: the real one with the slow calls (and `C_Initialize`) replaced.
    ours: CK_FUNCTION_LIST,
}

/// The simulated device: its latency and its places.
struct Device {
    config: Mutex<Config>,
    freed: Condvar,
}

#[derive(Clone, Copy)]
struct Config {
    latency: Duration,
    /// How many slow calls may run at once; 0 means no limit.
    parallel: usize,
    /// How many are running now.
    busy: usize,
}

static MODULE: OnceLock<Result<Module, String>> = OnceLock::new();
static DEVICE: Device = Device {
    config: Mutex::new(Config {
        latency: Duration::ZERO,
        parallel: 0,
        busy: 0,
    }),
    freed: Condvar::new(),
};

/// One of the device's places, given back when dropped.
struct Place;

impl Device {
    /// Waits for a place, then returns it with the latency to sleep.
    fn take(&self) -> (Place, Duration) {
        let mut config = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        while config.parallel != 0 && config.busy >= config.parallel {
            config = self
                .freed
                .wait(config)
                .unwrap_or_else(PoisonError::into_inner);
        }
        config.busy += 1;
        (Place, config.latency)
    }

    fn configure(&self, latency: Duration, parallel: usize) {
        let mut config = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        config.latency = latency;
        config.parallel = parallel;
        self.freed.notify_all();
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut config = DEVICE.config.lock().unwrap_or_else(PoisonError::into_inner);
        config.busy = config.busy.saturating_sub(1);
        DEVICE.freed.notify_one();
    }
}

/// Runs `call` on the device: takes a place, sleeps the latency, then forwards.
fn on_device(call: impl FnOnce() -> CK_RV) -> CK_RV {
    let (place, latency) = DEVICE.take();
    if !latency.is_zero() {
        std::thread::sleep(latency);
    }
    let rv = call();
    drop(place);
    rv
}

fn load() -> Result<Module, String> {
    let path = std::env::var_os("SLOW_P11_MODULE")
        .ok_or("SLOW_P11_MODULE is not set: it must name the real PKCS#11 module")?;
    // SAFETY: loading a PKCS#11 module runs its initialisers, as any PKCS#11 application does.
    let library = unsafe { cryptoki_sys::Pkcs11::new(&path) }
        .map_err(|e| format!("SLOW_P11_MODULE {}: {e}", path.to_string_lossy()))?;
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: C_GetFunctionList writes one pointer to the module's static function list.
    let rv = unsafe { library.C_GetFunctionList(&mut list) };
    if rv != CKR_OK || list.is_null() {
        return Err(format!(
            "the real module's C_GetFunctionList returned {rv:#x}"
        ));
    }
    // SAFETY: the list is the module's own, valid while it stays loaded; this copies it.
    let real = unsafe { *list };
    let mut ours = real;
    ours.C_Initialize = Some(initialize);
    ours.C_GetFunctionList = Some(C_GetFunctionList);
    ours.C_Sign = Some(sign);
    ours.C_SignFinal = Some(sign_final);
    ours.C_Verify = Some(verify);
    ours.C_VerifyFinal = Some(verify_final);
    Ok(Module {
        _library: library,
        real,
        ours,
    })
}

fn module() -> Option<&'static Module> {
    match MODULE.get_or_init(load) {
        Ok(module) => Some(module),
        Err(message) => {
            eprintln!("pkcs11-slow: {message}");
            None
        }
    }
}

/// The real module's list; only reached through our list, so the module is loaded.
fn real() -> Option<&'static CK_FUNCTION_LIST> {
    match MODULE.get() {
        Some(Ok(module)) => Some(&module.real),
        _ => None,
    }
}

fn env_number(name: &str) -> Result<u64, String> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(0),
        Err(e) => Err(format!("{name}: {e}")),
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|e| format!("{name} = {text:?}: {e}")),
    }
}

/// The PKCS#11 entry point: the real module's function list with the slow calls replaced.
///
/// # Safety
/// `list` must be null or point to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    match module() {
        Some(module) => {
            // SAFETY: the caller gives room for one pointer. Callers only read the list.
            unsafe { *list = std::ptr::from_ref(&module.ours).cast_mut() };
            CKR_OK
        }
        None => CKR_GENERAL_ERROR,
    }
}

unsafe extern "C" fn initialize(args: *mut std::ffi::c_void) -> CK_RV {
    let config = env_number("SLOW_P11_LATENCY_US").and_then(|latency| {
        let parallel = env_number("SLOW_P11_PARALLEL")?;
        let parallel = usize::try_from(parallel).map_err(|e| format!("SLOW_P11_PARALLEL: {e}"))?;
        Ok((Duration::from_micros(latency), parallel))
    });
    match config {
        Ok((latency, parallel)) => DEVICE.configure(latency, parallel),
        Err(message) => {
            eprintln!("pkcs11-slow: {message}");
            return CKR_ARGUMENTS_BAD;
        }
    }
    match real().and_then(|r| r.C_Initialize) {
        // SAFETY: forwards the caller's arguments unchanged.
        Some(f) => unsafe { f(args) },
        None => CKR_FUNCTION_FAILED,
    }
}

unsafe extern "C" fn sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    let Some(f) = real().and_then(|r| r.C_Sign) else {
        return CKR_FUNCTION_FAILED;
    };
    // SAFETY (both): forwards the caller's arguments unchanged.
    if signature.is_null() {
        return unsafe { f(session, data, data_len, signature, signature_len) };
    }
    on_device(|| unsafe { f(session, data, data_len, signature, signature_len) })
}

unsafe extern "C" fn sign_final(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    let Some(f) = real().and_then(|r| r.C_SignFinal) else {
        return CKR_FUNCTION_FAILED;
    };
    // SAFETY (both): forwards the caller's arguments unchanged.
    if signature.is_null() {
        return unsafe { f(session, signature, signature_len) };
    }
    on_device(|| unsafe { f(session, signature, signature_len) })
}

unsafe extern "C" fn verify(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> CK_RV {
    let Some(f) = real().and_then(|r| r.C_Verify) else {
        return CKR_FUNCTION_FAILED;
    };
    // SAFETY: forwards the caller's arguments unchanged.
    on_device(|| unsafe { f(session, data, data_len, signature, signature_len) })
}

unsafe extern "C" fn verify_final(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> CK_RV {
    let Some(f) = real().and_then(|r| r.C_VerifyFinal) else {
        return CKR_FUNCTION_FAILED;
    };
    // SAFETY: forwards the caller's arguments unchanged.
    on_device(|| unsafe { f(session, signature, signature_len) })
}
