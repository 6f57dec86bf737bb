/*
 * A constraint plugin to copy: the model's size on disk.
 *
 * `measure` computes the metric from the model's ONNX bytes, so the tool can score it without a
 * device; `score` shows how to replace MnasNet's factor (here: a smooth step at the target).
 * Rename the constraint, change the metric, keep the entry symbol. See ../include/nas_constraint.h.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nas_constraint.h"

static int32_t measure(const uint8_t *model, size_t model_size, const char *format, double *value,
                       char *error, size_t error_capacity) {
    if (format == NULL || strcmp(format, "onnx") != 0) {
        snprintf(error, error_capacity, "model_size reads ONNX models, not '%s'", format ? format : "?");
        return NAS_STATUS_UNSUPPORTED;
    }
    (void)model;
    *value = (double)model_size;
    return NAS_STATUS_OK;
}

/* factor = 1 / (1 + (measured/target)^(4*weight)): ~1 well under the target, 0.5 at it, ~0 far over. */
static int32_t score(const nas_score_args *args, double *factor, char *error, size_t error_capacity) {
    if (!(args->target > 0)) {
        snprintf(error, error_capacity, "target must be > 0, got %g", args->target);
        return NAS_STATUS_INVALID_INPUT;
    }
    *factor = 1.0 / (1.0 + pow(args->measured / args->target, 4.0 * args->weight));
    return NAS_STATUS_OK;
}

static const nas_constraint_descriptor descriptor = {
    .abi_version = NAS_CONSTRAINT_ABI_VERSION,
    .struct_size = sizeof(nas_constraint_descriptor),
    .name = "model_size",
    .metric = "model_size_bytes",
    .unit = "bytes",
    .description = "Size of the ONNX model file; smooth-step score at the target",
    .measure = measure,
    .score = score,
};

const nas_constraint_descriptor *nas_constraint_plugin(void) { return &descriptor; }
