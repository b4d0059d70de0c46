//! The seam the server will use: the scheduler reads a `drover-state` snapshot, and its plan is
//! committed as an FSM command (`ApplyPlanResults`) to the state store, whose job summary and
//! indexes then reflect it. A planner here plays the plan applier's part (with the shared fit
//! check) so the path is exercised before the server exists.

use std::sync::Arc;

use drover_scheduler::fit;
use drover_scheduler::{Env, Planner, SchedulerError, State, Submitted, process};
use drover_state::{AllocStopDiff, Command, StateStore};
use drover_testkit::mock;
use drover_types::{Allocation, Evaluation, Plan, PlanResult};

/// Commits plans through the state store's FSM, like the leader's plan applier.
struct FsmPlanner<'a> {
    store: &'a StateStore,
    index: u64,
    updates: Vec<Evaluation>,
}

impl FsmPlanner<'_> {
    fn next(&mut self) -> u64 {
        self.index += 1;
        self.index
    }
}

impl Planner for FsmPlanner<'_> {
    fn submit_plan(&mut self, plan: Plan) -> Result<Submitted, SchedulerError> {
        let snap = self.store.snapshot();
        // Re-check every node with the shared fit check, as the applier will.
        for (node_id, placements) in &plan.node_allocation {
            let node = snap
                .node(node_id)
                .ok_or_else(|| SchedulerError::Planner(format!("node {node_id} gone")))?;
            let stops: Vec<&str> = plan
                .node_update
                .get(node_id)
                .into_iter()
                .flatten()
                .map(|a| a.id.as_str())
                .collect();
            let existing = State::allocs_by_node(snap.as_ref(), node_id);
            let mut proposed: Vec<&Allocation> = existing
                .iter()
                .map(|a| a.as_ref())
                .filter(|a| {
                    !a.terminal()
                        && !stops.contains(&a.id.as_str())
                        && !placements.iter().any(|p| p.id == a.id)
                })
                .collect();
            proposed.extend(placements.iter());
            fit::allocs_fit(&node, &proposed, true).map_err(|m| SchedulerError::Planner(m.dimension()))?;
        }
        let stopped = plan
            .node_update
            .values()
            .flatten()
            .map(|a| AllocStopDiff {
                id: a.id.clone(),
                desired_description: a.desired_description.clone(),
                client_status: a.client_status.clone(),
                followup_eval_id: a.followup_eval_id.clone(),
                modify_time: 1,
            })
            .collect();
        let index = self.next();
        self.store
            .apply(
                index,
                Command::ApplyPlanResults {
                    job: plan.job.as_ref().map(|j| (**j).clone()),
                    allocs_updated: plan.node_allocation.values().flatten().cloned().collect(),
                    allocs_stopped: stopped,
                    allocs_preempted: Vec::new(),
                    deployment: plan.deployment.clone(),
                    deployment_updates: plan.deployment_updates.clone(),
                    eval_id: plan.eval_id.clone(),
                    preemption_evals: Vec::new(),
                },
            )
            .map_err(|e| SchedulerError::Planner(e.to_string()))?;
        let result = PlanResult {
            node_allocation: plan.node_allocation,
            node_update: plan.node_update,
            deployment: plan.deployment,
            deployment_updates: plan.deployment_updates,
            alloc_index: index,
            ..Default::default()
        };
        Ok(Submitted {
            result,
            refreshed: None,
        })
    }
    fn update_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        let index = self.next();
        self.store
            .apply(
                index,
                Command::UpsertEvals {
                    evals: vec![eval.clone()],
                },
            )
            .map_err(|e| SchedulerError::Planner(e.to_string()))?;
        self.updates.push(eval);
        Ok(())
    }
    fn create_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        self.update_eval(eval)
    }
    fn reblock_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        self.update_eval(eval)
    }
}

#[test]
fn register_schedule_commit_through_the_fsm() {
    let store = StateStore::new();
    let mut index = 0;
    let mut next = || {
        index += 1;
        index
    };
    for i in 0..5 {
        store
            .apply(next(), Command::UpsertNode { node: mock::node(i) })
            .expect("node");
    }
    let job = mock::job();
    let eval = Evaluation {
        id: mock::id(777),
        namespace: job.namespace.clone(),
        priority: job.priority,
        eval_type: job.job_type.clone(),
        triggered_by: "job-register".into(),
        job_id: job.id.clone(),
        status: "pending".into(),
        ..Default::default()
    };
    store
        .apply(
            next(),
            Command::UpsertJob {
                job: job.clone(),
                eval: Some(eval.clone()),
            },
        )
        .expect("job");

    let mut planner = FsmPlanner {
        store: &store,
        index,
        updates: Vec::new(),
    };
    let mut counter = 10_000u64;
    let mut ids = || {
        counter += 1;
        mock::id(counter)
    };
    let mut env = Env {
        now: 1_704_067_200_000_000_000,
        ids: &mut ids,
    };
    let snapshot: Arc<dyn State + Send + Sync> = store.snapshot();
    process(snapshot, &mut planner, &eval, &mut env).expect("scheduled");

    let snap = store.snapshot();
    let live: Vec<_> = State::allocs_by_job(snap.as_ref(), &job.namespace, &job.id)
        .into_iter()
        .filter(|a| !a.terminal())
        .collect();
    assert_eq!(live.len(), 10, "every allocation committed through the FSM");
    assert!(
        live.iter().all(|a| a.job.is_some() && a.create_index > 0),
        "allocations carry their job and indexes"
    );
    let by_node: usize = (0..5)
        .map(|i| State::allocs_by_node(snap.as_ref(), &mock::id(i)).len())
        .sum();
    assert_eq!(by_node, 10, "the by-node index agrees with the alloc table");
    let summary = snap.job_summary(&job.namespace, &job.id).expect("summary");
    assert_eq!(summary.summary["web"].starting, 10, "{summary:?}");
    let done = planner.updates.last().expect("eval updated");
    assert_eq!(done.status, "complete");
    assert_eq!(
        snap.eval(&eval.id).map(|e| e.status.clone()),
        Some("complete".into())
    );
}
