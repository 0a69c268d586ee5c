//! Real faults on a real SoftHSM2 token, the agent in this process (see `hsm_faults/scenario.rs`).
//! One test in its own binary: the module's state is process-wide.

mod common;
#[path = "hsm_faults/scenario.rs"]
mod scenario;

#[test]
fn the_agent_rides_out_closed_sessions_and_a_finalised_module() {
    scenario::run(common::TestToken::new());
}
