// Module Constraints: the reward and its vocabulary, pure Swift with no I/O.
//
// It owns the metric names trials report (`MetricName`), constraint specs and their parsing (`Constraint`,
// `Constraint+Parsing.swift`: `[NAME=]METRIC<=TARGET[:OPTIONS]`), the MnasNet-style reward and the feasibility of
// each constraint (`Reward`), vertex-ai-nas's `compute_reward` (`SeedReward`), the Pareto front, the exact
// hypervolume of a front (`Hypervolume`), and the JSON and JSON-lines forms that `nas reward` scores
// (`JSONLines/`). Every other module depends on it; it depends on none.
