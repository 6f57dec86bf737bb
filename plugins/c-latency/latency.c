/* The device-latency constraint: the metric is measured elsewhere (by a device worker), so this
 * plugin only names it and keeps MnasNet's standard factor. */
#include "nas_constraint.h"

static const nas_constraint_descriptor descriptor = {
    .abi_version = NAS_CONSTRAINT_ABI_VERSION,
    .struct_size = sizeof(nas_constraint_descriptor),
    .name = "latency",
    .metric = "latency_ms",
    .unit = "ms",
    .description = "Inference latency on the target device (p50 of the worker's repetitions)",
    .measure = NULL,
    .score = NULL,
};

const nas_constraint_descriptor *nas_constraint_plugin(void) { return &descriptor; }
