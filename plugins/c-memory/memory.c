/* The memory constraint: peak working memory of the inference engine, reported by a device
 * worker; the standard factor applies. */
#include "nas_constraint.h"

static const nas_constraint_descriptor descriptor = {
    .abi_version = NAS_CONSTRAINT_ABI_VERSION,
    .struct_size = sizeof(nas_constraint_descriptor),
    .name = "memory",
    .metric = "memory_bytes",
    .unit = "bytes",
    .description = "Peak working memory of one inference on the target device",
    .measure = NULL,
    .score = NULL,
};

const nas_constraint_descriptor *nas_constraint_plugin(void) { return &descriptor; }
