// Module Search: a search or train job from its first trial to its report.
//
// It owns the job store (SQLite in the job's folder: `JobStore`, `Database`), the proposals (random, grid,
// regularized evolution: `SearchAlgorithm`; NSGA-II and multi-objective TPE over accuracy and the constraints'
// metrics, and the hypervolume history: `MultiObjective/`), the job loop (`Job/JobLoop.swift`: launch, reap,
// record, failure budget, interrupts, resume) and the whole job around it (`Job/JobRunner.swift`: `job_status.json`, report,
// summary; `Job/JobFleet.swift`: the coordinator a job embeds), the per-trial pipeline (`Trial/TrialPipeline.swift`:
// train, FLOPs, measure, score), and the results (`ResultsTable`, `Report`). Each step of a trial's journey is a
// small protocol with the implementations of today beside it: a `TrialLauncher` (where trial runs go: local
// processes), a `TrialTrainer` (who trains: `BuiltInTrainer`), a `DeviceMeasurer` (how a model reaches a device:
// push, file exchange, in process). It builds on Constraints (the reward), Trainer (the built-in trainer and the
// search spaces) and Fleet (coordinator, workers, storage); it never parses flags: the CLI does that and calls it.
