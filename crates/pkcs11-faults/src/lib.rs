//! Test support for Signet: PKCS#11 calls that `cryptoki` does not expose, used only to inject
//! real faults into a token that the agent is using in the same process. It lives outside the
//! agent crate because it needs `unsafe` (FFI), which the agent crate forbids.

use std::path::Path;

/// Calls `C_CloseAllSessions(slot)` on the module at `module` (already loaded and initialised
/// in this process): every session of this application on that token closes, and the token
/// logs the application out. The call goes through the module's function list, since some
/// modules (Kryoptic) export only `C_GetFunctionList` and `C_GetInterface*`.
pub fn close_all_sessions(module: &Path, slot: u64) -> Result<(), String> {
    // SAFETY: loading a PKCS#11 module runs its initialisers, as cryptoki's own loading does;
    // the module is already loaded in this process, so this only takes another reference.
    let library = unsafe { cryptoki_sys::Pkcs11::new(module) }.map_err(|e| e.to_string())?;
    let mut list: *mut cryptoki_sys::CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: C_GetFunctionList writes one pointer to the module's static function list.
    let rv = unsafe { library.C_GetFunctionList(&mut list) };
    if rv != cryptoki_sys::CKR_OK || list.is_null() {
        return Err(format!("C_GetFunctionList returned {rv:#x}"));
    }
    // SAFETY: the list is the module's own, valid while the module stays loaded (it is: the
    // caller holds it, and so does `library`).
    let close = unsafe { (*list).C_CloseAllSessions }
        .ok_or_else(|| "the module has no C_CloseAllSessions".to_owned())?;
    // SAFETY: C_CloseAllSessions takes a slot id by value and touches no caller memory.
    let rv = unsafe { close(slot as cryptoki_sys::CK_SLOT_ID) };
    if rv == cryptoki_sys::CKR_OK {
        Ok(())
    } else {
        Err(format!("C_CloseAllSessions returned {rv:#x}"))
    }
}
